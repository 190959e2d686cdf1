//! `atomix-bench [--boots N] [--json]`: the benchmark (DESIGN section 8). Builds our initramfs
//! and a busybox-script baseline, boots each N times (default 5) in QEMU with the same kernel and
//! disk image, and prints the per-boot numbers and one table (metric | ours | baseline (anchor)
//! | ratio | target). `--json` prints the result as JSON instead. Progress goes to stderr.
//! Exit status: 0 when every boot was measured (whether or not the targets are met), 1 when a
//! build step or a boot failed, 2 on bad arguments. Run it through `scripts/bench.sh`.

use std::process::ExitCode;

use atomix_systests::bench;

const USAGE: &str = "usage: atomix-bench [--boots N] [--json]";

struct Args {
    boots: usize,
    json: bool,
}

/// `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        boots: 5,
        json: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => parsed.json = true,
            "--boots" => {
                let value = args.next().ok_or("--boots needs a number")?;
                parsed.boots = parse_boots(&value)?;
            }
            "-h" | "--help" => return Ok(None),
            other => match other.strip_prefix("--boots=") {
                Some(value) => parsed.boots = parse_boots(value)?,
                None => return Err(format!("unknown argument `{other}`")),
            },
        }
    }
    Ok(Some(parsed))
}

fn parse_boots(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--boots {value}: expected a number >= 1")),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("atomix-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = bench::run(args.boots, &mut |step| eprintln!("atomix-bench: {step}"));
    match result {
        Ok(result) if args.json => {
            println!("{:#}", result.to_json());
            ExitCode::SUCCESS
        }
        Ok(result) => {
            print!("{}", result.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("atomix-bench: {}", atomix_errchain::OneLine(&e));
            ExitCode::from(1)
        }
    }
}
