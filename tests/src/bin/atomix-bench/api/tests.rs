//! The options, the table and the JSON of `atomix-bench api`, pinned; the JSON is
//! `golden/api.json`.

use clap::{Parser as _, ValueEnum as _};

use super::*;

fn args() -> Args {
    Args {
        ours: Server { port: 1, pid: 2 },
        original: Server { port: 3, pid: 4 },
        key: PathBuf::from("/k"),
        seconds: 3.0,
        rounds: 3,
        max_requests: 200_000,
        concurrency: vec![1, 200],
        routes: vec![Kind::Health, Kind::Nonce, Kind::Validate],
        client_threads: 1,
        one_address: false,
        json: false,
    }
}

fn cell(ms: &[f64], secs: u64, errors: &[(&str, u64)]) -> Cell {
    Cell {
        latencies: ms
            .iter()
            .map(|m| Duration::from_secs_f64(m / 1e3))
            .collect(),
        elapsed: Duration::from_secs(secs),
        errors: errors.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect(),
    }
}

fn sample() -> (Vec<CellPair>, Vec<Row>) {
    let cells = vec![
        (
            Kind::Health,
            1,
            cell(&[1.0, 2.0, 3.0, 4.0], 1, &[]),
            cell(&[10.0, 20.0], 1, &[("health: HTTP 503", 2)]),
        ),
        (
            Kind::Nonce,
            200,
            cell(&[], 1, &[("connect: refused", 200)]),
            cell(&[1.0], 1, &[]),
        ),
        (
            Kind::Validate,
            200,
            cell(&[5.0, 7.5], 2, &[]),
            cell(&[400.0], 2, &[("validate: HTTP 401", 3)]),
        ),
    ];
    let rows = rows(
        [(8192, 8192), (40960, 41000)],
        [(9216, 9300), (51200, 52000)],
        [(10752, 20480), (61440, 81920)],
        &cells,
    );
    (cells, rows)
}

/// `atomix-bench api` with the required options.
const BASE: [&str; 8] = [
    "atomix-bench",
    "api",
    "--ours",
    "1:2",
    "--original",
    "3:4",
    "--key",
    "/k",
];

fn parse(extra: &[&str]) -> Args {
    let cli = crate::Cli::try_parse_from(BASE.iter().chain(extra)).unwrap();
    match cli.command {
        crate::Command::Api(args) => args,
        other => panic!("{other:?}"),
    }
}

#[test]
fn options_as_before() {
    let defaults = parse(&[]);
    assert_eq!((defaults.ours.port, defaults.ours.pid), (1, 2));
    assert_eq!((defaults.original.port, defaults.original.pid), (3, 4));
    assert_eq!(defaults.seconds, 3.0);
    assert_eq!((defaults.rounds, defaults.max_requests), (3, 200_000));
    assert_eq!(defaults.concurrency, [1, TARGET_CONCURRENCY]);
    assert_eq!(defaults.routes, Kind::value_variants());
    assert_eq!(defaults.client_threads, 1);
    assert!(!defaults.one_address && !defaults.json);
    // A list is one comma-separated value; given again, the last one counts.
    let lists = parse(&[
        "--concurrency=1,5",
        "--concurrency",
        "7,1000",
        "--routes",
        "validate,nonce,validate",
    ]);
    assert_eq!(lists.concurrency, [7, 1000]);
    assert_eq!(lists.routes, [Kind::Validate, Kind::Nonce, Kind::Validate]);
    let edges = parse(&["--seconds", "0.5", "--rounds", "100", "--max-requests", "1"]);
    assert_eq!(
        (edges.seconds, edges.rounds, edges.max_requests),
        (0.5, 100, 1)
    );
    for bad in [
        &["--seconds", "0"][..],
        &["--seconds", "60.5"],
        &["--seconds", "NaN"],
        &["--rounds", "0"],
        &["--rounds", "101"],
        &["--max-requests", "0"],
        &["--concurrency", "1,1001"],
        &["--concurrency", "0"],
        &["--concurrency", ""],
        &["--routes", "health,nope"],
        &["--client-threads", "0"],
    ] {
        let e = crate::Cli::try_parse_from(BASE.iter().chain(bad)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad:?}");
    }
    for server in ["12", "x:1", "1:x", "70000:1"] {
        assert!(super::server(server).is_err(), "{server}");
    }
}

#[test]
fn table_as_printed() {
    let (cells, rows) = sample();
    let text = report(&args(), "0.50 0.40 0.30", "1.20 0.60 0.35", &cells, &rows);
    let expected = [
        concat!(
            "provisioning API on 127.0.0.1, ours vs the original; 3 s or 200000 requests a ",
            "cell and side, in 3 rounds; load average 0.50 0.40 0.30 before, 1.20 0.60 0.35 ",
            "after"
        ),
        "| metric | ours | original | ratio | target | met? |",
        "|---|---|---|---|---|---|",
        "| RSS at start (MiB) | 8 | 40 | 0.20 | ratio <= 0.2 | yes |",
        "| RSS idle, provisioned (MiB) | 9 | 50 | 0.18 | ratio <= 0.2 | yes |",
        "| RSS after the cells (MiB) | 10.5 | 60 | 0.17 | ratio <= 0.2 | yes |",
        "| peak RSS, VmHWM (MiB) | 20 | 80 | 0.25 | - | - |",
        "| health x1 req/s | 4 | 2 | 2 | - | - |",
        "| health x1 p50 (ms) | 2 | 10 | 0.20 | - | - |",
        "| health x1 p99 (ms) | 4 | 20 | 0.20 | - | - |",
        "| health x1 errors | 0 | 2 | 0 | 0 | yes |",
        "| nonce x200 req/s | 0 | 1 | 0 | - | - |",
        "| nonce x200 p50 (ms) | - | 1 | - | - | - |",
        "| nonce x200 p99 (ms) | - | 1 | - | < 5 ms | NO |",
        "| nonce x200 errors | 200 | 0 | - | 0 | NO |",
        "| validate x200 req/s | 1 | 0.50 | 2 | ratio >= 10 | NO |",
        "| validate x200 p50 (ms) | 5 | 400 | 0.01 | - | - |",
        "| validate x200 p99 (ms) | 7.50 | 400 | 0.02 | - | - |",
        "| validate x200 errors | 0 | 3 | 0 | 0 | yes |",
        "health x1, original: 2 x health: HTTP 503",
        "nonce x200, ours: 200 x connect: refused",
        "validate x200, original: 3 x validate: HTTP 401",
        "",
    ];
    assert_eq!(text, expected.join("\n"));
}

#[test]
fn json_as_printed() {
    let (cells, rows) = sample();
    let json = Args {
        json: true,
        ..args()
    };
    let text = report(&json, "0.50 0.40 0.30", "1.20 0.60 0.35", &cells, &rows);
    assert_eq!(text, JSON);
}

/// `report`'s JSON for `sample()`, as printed.
const JSON: &str = include_str!("../golden/api.json");
