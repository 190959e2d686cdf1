//! `atomix-bench api` (DESIGN section 8, issue 10): the load generator that measures the
//! provisioning API, ours (`atomix-provision serve`) against the original AtomixOS service, both
//! already running on loopback (started and killed by `scripts/bench-api.sh`).
//!
//! Owns: provisioning both servers, their RSS readings, the HTTP/1.1 clients, the cells, their
//! percentiles and the table. Must not: start or stop the servers (the script does).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use atomix_api::sign::{header_value, sign};
use atomix_api::{
    HEADER_NONCE, HEADER_SIGNATURE, JobResponse, JobState, NonceResponse, SubmitResponse, routes,
    signed_message,
};
use atomix_systests::bench_table::{JsonStyle, Table, json_text};
use serde_json::{Value, json};
use ssh_key::PrivateKey;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Barrier;

/// The config both servers are provisioned with and validate (its admin key replaced).
const MINIMAL: &str = include_str!("../../../../config/tests/fixtures/minimal.toml");
/// How long one request (or a validate's round) may take; longer is an error.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to answer its first health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the initial import may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// Target: our RSS at most this fraction of the original's.
const TARGET_RSS_RATIO: f64 = 0.2;
/// Target: our p99 of health and nonce under this many ms at [`TARGET_CONCURRENCY`].
const TARGET_P99_MS: f64 = 5.0;
/// Target: our validate throughput at least this multiple of the original's.
const TARGET_VALIDATE_RATIO: f64 = 10.0;
/// The concurrency of the p99 target.
const TARGET_CONCURRENCY: usize = 200;

/// The provisioning API, ours against the original, both already running on 127.0.0.1.
///
/// Measured in one run by this load generator, interleaved so that both see the same machine:
/// each cell is run in --rounds parts, ours and the original's in turn, the side that goes
/// first alternating.
///
/// - Each server is provisioned first: an unauthenticated initial import (spec 6.3) of the
///   smallest valid config with --key's public half as the admin's key, followed to its end.
/// - RSS: VmRSS of each server's process (/proc/PID/status) at start, idle (provisioned,
///   before any load) and after the cells, and VmHWM then. The original's ssh-keygen children
///   (one per verification) are not counted.
/// - Cells: GET /api/health, GET /api/nonce and a signed POST /api/validate (of that config) at
///   each --concurrency: that many clients, each on its own HTTP/1.1 keep-alive connection
///   (opened before the clock starts), in a closed loop, for --seconds or until --max-requests
///   were started, whichever comes first, a side and cell. Every latency is kept, so the
///   percentiles are exact; throughput is the successful requests over the time from the first
///   start to the last answer, summed over the rounds. Every failure (a status other than 200,
///   an I/O error, a timeout of 10 s) is counted, reported and left out of the latencies.
/// - A signed validate is what an operator's client does: GET /api/nonce, the ed25519 SSHSIG
///   made in this process (atomix_api::sign), then the POST. Its latency spans all three: a
///   validate cannot be made without its nonce, and the nonce alone has its own cells.
/// - Client i connects from its own loopback address 127.0.0.(1+i), as that many operators
///   would. Both services keep at most 16 outstanding nonces per client address and evict that
///   address's oldest when it asks for more, so 200 clients sharing 127.0.0.1 would mostly find
///   their nonce evicted by the time they post it; --one-address runs them so, to show it.
///
/// Run it through scripts/bench-api.sh, which starts both servers.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Our server: its port on 127.0.0.1 and its process id.
    #[arg(long, value_name = "PORT:PID", value_parser = server)]
    pub ours: Server,
    /// The original's server: its port on 127.0.0.1 and its process id.
    #[arg(long, value_name = "PORT:PID", value_parser = server)]
    pub original: Server,
    /// The admin's private key (OpenSSH); its public half goes into the config.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// How long a cell may last, a side (0 < S <= 60), split over the rounds.
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = seconds)]
    pub seconds: f64,
    /// The parts each cell is run in, alternating the sides (1 to 100).
    #[arg(long, value_name = "R", default_value_t = 3, value_parser = rounds)]
    pub rounds: usize,
    /// At most this many requests are started in a cell, a side (split over the rounds).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_requests: u64,
    /// The numbers of concurrent clients, comma-separated (each 1 to 1000).
    #[arg(
        long,
        value_name = "N,M",
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        default_value = "1,200",
        value_parser = clients
    )]
    pub concurrency: Vec<usize>,
    /// The routes measured, comma-separated.
    #[arg(
        long,
        value_name = "health,nonce,validate",
        value_delimiter = ',',
        action = clap::ArgAction::Set,
        default_value = "health,nonce,validate",
        value_enum
    )]
    pub routes: Vec<Kind>,
    /// Worker threads of the clients' runtime.
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = crate::at_least_one)]
    pub client_threads: usize,
    /// Run every client from 127.0.0.1 instead of its own loopback address.
    #[arg(long)]
    pub one_address: bool,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A server under test.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    port: u16,
    pid: u32,
}

/// `--ours` / `--original`: PORT:PID.
fn server(value: &str) -> Result<Server, String> {
    let (port, pid) = value.split_once(':').ok_or("expected PORT:PID")?;
    Ok(Server {
        port: port.parse().map_err(|_| "PORT:PID: the port")?,
        pid: pid.parse().map_err(|_| "PORT:PID: the pid")?,
    })
}

/// `--seconds`: 0 < S <= 60.
fn seconds(value: &str) -> Result<f64, String> {
    match value.parse() {
        Ok(s) if s > 0.0 && s <= 60.0 => Ok(s),
        _ => Err("expected seconds S with 0 < S <= 60".to_owned()),
    }
}

/// `--rounds`: 1 to 100.
fn rounds(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err("expected a number from 1 to 100".to_owned()),
    }
}

/// One number of `--concurrency`: 1 to 1000 clients.
fn clients(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err("expected a number of clients from 1 to 1000".to_owned()),
    }
}

/// What is measured in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Health,
    Nonce,
    Validate,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Health => "health",
            Kind::Nonce => "nonce",
            Kind::Validate => "validate",
        }
    }
}

/// What a validate needs: the admin's key and the config it validates.
struct Admin {
    key: PrivateKey,
    config: String,
}

/// One side's result of a cell.
#[derive(Debug, Default)]
struct Cell {
    /// Every successful request's latency (sorted once the cell is done).
    latencies: Vec<Duration>,
    /// From the first start to the last answer.
    elapsed: Duration,
    /// Failures by kind.
    errors: BTreeMap<String, u64>,
}

impl Cell {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`th percentile in ms (nearest rank), NaN if nothing succeeded.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = (p / 100.0 * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1e3
    }

    /// Adds requests' latencies (not kept sorted) and failures.
    fn add(&mut self, latencies: Vec<Duration>, errors: BTreeMap<String, u64>) {
        self.latencies.extend(latencies);
        for (what, n) in errors {
            *self.errors.entry(what).or_insert(0) += n;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn rss(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The machine's load averages (`/proc/loadavg`'s first three fields).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// An answer: its status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// One HTTP/1.1 keep-alive connection: a request is written whole, its answer read by its
/// `Content-Length` (both servers send one for these routes).
struct Conn {
    io: BufReader<TcpStream>,
    host: String,
    line: String,
    head: Vec<u8>,
    /// The server asked to close after its last answer.
    closing: bool,
}

impl Conn {
    async fn open(server: SocketAddr, from: Ipv4Addr) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from.into(), 0))?;
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            io: BufReader::new(stream),
            host: server.to_string(),
            line: String::new(),
            head: Vec::new(),
            closing: false,
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer> {
        self.head.clear();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        self.head.extend_from_slice(head.as_bytes());
        self.head.extend_from_slice(body);
        self.io.get_mut().write_all(&self.head).await?;

        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        let status = self
            .line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = None;
        loop {
            self.line.clear();
            if self.io.read_line(&mut self.line).await? == 0 {
                bail!("connection closed in the head");
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("bad header line {line:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("connection") {
                self.closing = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("Transfer-Encoding {value} (not read here)");
            }
        }
        let mut body = vec![0; length.context("no Content-Length")?];
        self.io.read_exact(&mut body).await?;
        Ok(Answer { status, body })
    }
}

/// A request's answer, which must be 200: the failure's name otherwise.
fn ok(what: &str, answer: Result<Answer>) -> Result<Answer, String> {
    match answer {
        Ok(a) if a.status == 200 => Ok(a),
        Ok(a) => Err(format!("{what}: HTTP {}", a.status)),
        Err(e) => Err(format!("{what}: {e:#}")),
    }
}

/// One unit of a cell's work on `conn`: `Err` names the failure.
async fn once(conn: &mut Conn, kind: Kind, admin: &Admin) -> Result<(), String> {
    match kind {
        Kind::Health => ok(
            "health",
            conn.request("GET", routes::HEALTH, &[], b"").await,
        )
        .map(drop),
        Kind::Nonce => ok("nonce", conn.request("GET", routes::NONCE, &[], b"").await).map(drop),
        Kind::Validate => {
            let answer = ok("nonce", conn.request("GET", routes::NONCE, &[], b"").await)?;
            let nonce = serde_json::from_slice::<NonceResponse>(&answer.body)
                .map_err(|e| format!("nonce: {e}"))?
                .nonce;
            let body = admin.config.as_bytes();
            let armored = sign(&admin.key, &signed_message(&nonce, routes::VALIDATE, body))
                .map_err(|e| format!("sign: {e}"))?;
            let headers = [
                (HEADER_NONCE, nonce.as_str()),
                (HEADER_SIGNATURE, &header_value(&armored)),
            ];
            let answer = conn.request("POST", routes::VALIDATE, &headers, body).await;
            ok("validate", answer).map(drop)
        }
    }
}

/// What one client saw.
struct ClientRun {
    start: Instant,
    end: Instant,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

/// A cell's plan, shared by its clients.
struct Plan {
    server: SocketAddr,
    kind: Kind,
    admin: Arc<Admin>,
    seconds: Duration,
    /// At most this many requests are started …
    budget: u64,
    /// … counted here.
    started: AtomicU64,
    /// Every client connected: the clock starts.
    ready: Barrier,
}

/// One client: connect, wait for the others, then loop until the deadline or the budget.
async fn client(plan: Arc<Plan>, from: Ipv4Addr) -> ClientRun {
    let mut errors = BTreeMap::new();
    let mut fail = |what: String| *errors.entry(what).or_insert(0) += 1;
    // Connected before the clock starts. A failure costs the connection (opened again): a
    // server may close one whose refused request it did not read whole.
    let mut conn = Conn::open(plan.server, from)
        .await
        .map_err(|e| fail(format!("connect: {e}")))
        .ok();
    plan.ready.wait().await;
    let start = Instant::now();
    let deadline = start + plan.seconds;
    let mut latencies = Vec::new();
    while Instant::now() < deadline && plan.started.fetch_add(1, Ordering::Relaxed) < plan.budget {
        let c = match conn.take() {
            Some(c) if !c.closing => conn.insert(c),
            _ => match Conn::open(plan.server, from).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    fail(format!("connect: {e}"));
                    break;
                }
            },
        };
        let t0 = Instant::now();
        match tokio::time::timeout(TIMEOUT, once(c, plan.kind, &plan.admin)).await {
            Ok(Ok(())) => latencies.push(t0.elapsed()),
            Ok(Err(what)) => {
                fail(what);
                conn = None;
            }
            Err(_) => {
                fail(format!("timeout ({} s)", TIMEOUT.as_secs()));
                conn = None;
            }
        }
    }
    ClientRun {
        start,
        end: Instant::now(),
        latencies,
        errors,
    }
}

/// One side's cell: `clients` clients from their own addresses (or all from 127.0.0.1 with
/// `one_address`).
async fn cell(plan: Plan, clients: usize, one_address: bool) -> Result<Cell> {
    let plan = Arc::new(plan);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let from = if one_address {
                Ipv4Addr::LOCALHOST
            } else {
                // 127.0.0.1 + i: the whole 127/8 is this host's loopback.
                Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + i as u32)
            };
            tokio::spawn(client(Arc::clone(&plan), from))
        })
        .collect();
    let mut out = Cell::default();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for task in tasks {
        let run = task.await.context("a client task failed")?;
        first = Some(first.map_or(run.start, |f| f.min(run.start)));
        last = Some(last.map_or(run.end, |l| l.max(run.end)));
        out.add(run.latencies, run.errors);
    }
    if let (Some(first), Some(last)) = (first, last) {
        out.elapsed = last - first;
    }
    Ok(out)
}

/// A connection to the server on `port` from 127.0.0.1.
async fn connect(port: u16) -> Result<Conn> {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Conn::open(server, Ipv4Addr::LOCALHOST)
        .await
        .with_context(|| format!("cannot connect to {server}"))
}

/// Waits for the server on `port` to answer its health check.
async fn ready(port: u16) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(mut conn) = connect(port).await
            && let Ok(answer) = conn.request("GET", routes::HEALTH, &[], b"").await
            && answer.status == 200
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the server on port {port} did not answer in {START_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Provisions the server on `port`: an unauthenticated initial import of `config`, followed
/// until its job ends; it must succeed.
async fn provision(port: u16, config: &str) -> Result<()> {
    let answer = connect(port)
        .await?
        .request("POST", routes::CONFIG, &[], config.as_bytes())
        .await?;
    ensure!(
        answer.status == 202,
        "the initial import: HTTP {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let job_url = serde_json::from_slice::<SubmitResponse>(&answer.body)?.job_url;
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let answer = connect(port)
            .await?
            .request("GET", &job_url, &[], b"")
            .await?;
        let job: JobResponse = serde_json::from_slice(&answer.body)
            .with_context(|| format!("{job_url}: HTTP {}", answer.status))?;
        if job.state.is_terminal() {
            ensure!(
                job.state == JobState::Succeeded,
                "the initial import ended {:?}: {}",
                job.state,
                job.error.unwrap_or_default()
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the initial import did not end in {JOB_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The config with `key`'s public half as the admin's key.
fn config_for(key: &PrivateKey) -> Result<String> {
    let public = key.public_key().to_openssh()?;
    let mut out = String::new();
    for line in MINIMAL.lines() {
        if line.starts_with("ssh_key = ") {
            let _ = writeln!(out, "ssh_key = \"{public}\"");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    ensure!(out.contains(&public), "the fixture has no ssh_key line");
    Ok(out)
}

/// A row of the table.
struct Row {
    metric: String,
    ours: f64,
    original: f64,
    /// The target's text and whether ours meets it; `None` for no target.
    target: Option<(String, bool)>,
}

/// Provisions both servers, runs the cells and prints the table (or the JSON).
///
/// # Errors
/// A server does not start or provision, the key cannot be read, or a client task fails.
pub fn run(args: &Args) -> Result<()> {
    let key = PrivateKey::read_openssh_file(&args.key)
        .with_context(|| format!("cannot read the key {}", args.key.display()))?;
    let config = config_for(&key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()
        .context("the client's runtime")?;
    let sides = [("ours", args.ours), ("original", args.original)];
    for (name, server) in sides {
        runtime
            .block_on(ready(server.port))
            .with_context(|| format!("starting {name}"))?;
    }
    let load_before = load();
    let rss_start = [rss(args.ours.pid)?, rss(args.original.pid)?];
    for (name, server) in sides {
        runtime
            .block_on(provision(server.port, &config))
            .with_context(|| format!("provisioning {name}"))?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = [rss(args.ours.pid)?, rss(args.original.pid)?];

    let seconds = Duration::from_secs_f64(args.seconds);
    let mut cells = Vec::new();
    let admin = Arc::new(Admin { key, config });
    let rounds = u32::try_from(args.rounds)?;
    for (k, &kind) in args.routes.iter().enumerate() {
        for (c, &clients) in args.concurrency.iter().enumerate() {
            eprintln!("{} x{clients} …", kind.name());
            let mut pair = [Cell::default(), Cell::default()];
            for round in 0..args.rounds {
                // Alternate who goes first, from round to round and cell to cell.
                let order = if (k + c + round) % 2 == 0 {
                    [0, 1]
                } else {
                    [1, 0]
                };
                for side in order {
                    let plan = Plan {
                        server: SocketAddr::from((Ipv4Addr::LOCALHOST, sides[side].1.port)),
                        kind,
                        admin: Arc::clone(&admin),
                        seconds: seconds / rounds,
                        budget: args.max_requests.div_ceil(args.rounds as u64),
                        started: AtomicU64::new(0),
                        ready: Barrier::new(clients),
                    };
                    let part = runtime.block_on(cell(plan, clients, args.one_address))?;
                    pair[side].elapsed += part.elapsed;
                    pair[side].add(part.latencies, part.errors);
                }
            }
            for (side, result) in pair.iter_mut().enumerate() {
                result.latencies.sort_unstable();
                eprintln!(
                    "  {}: {:.0}/s p50 {:.2} ms p99 {:.2} ms, {} errors",
                    sides[side].0,
                    result.per_second(),
                    result.percentile_ms(50.0),
                    result.percentile_ms(99.0),
                    result.error_count()
                );
            }
            let [ours, original] = pair;
            cells.push((kind, clients, ours, original));
        }
    }
    let rss_after = [rss(args.ours.pid)?, rss(args.original.pid)?];
    let load_after = load();

    let rows = rows(rss_start, rss_idle, rss_after, &cells);
    crate::print(&report(args, &load_before, &load_after, &cells, &rows))
}

/// A number with 3 significant digits or so (NaN and infinity as `-`).
fn number(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One route at one concurrency: ours and the original's.
type CellPair = (Kind, usize, Cell, Cell);

/// The table's rows from the RSS readings (`VmRSS`, `VmHWM` in KiB; ours, the original's) and
/// the cells.
fn rows(
    rss_start: [(u64, u64); 2],
    rss_idle: [(u64, u64); 2],
    rss_after: [(u64, u64); 2],
    cells: &[CellPair],
) -> Vec<Row> {
    let mut rows = Vec::new();
    // The RSS targets are idle and after the scenario; the peak (200 connections
    // open at once, each with its buffers) is shown beside them without one.
    let rss_rows = [
        ("RSS at start (MiB)", rss_start.map(|r| r.0), true),
        ("RSS idle, provisioned (MiB)", rss_idle.map(|r| r.0), true),
        ("RSS after the cells (MiB)", rss_after.map(|r| r.0), true),
        ("peak RSS, VmHWM (MiB)", rss_after.map(|r| r.1), false),
    ];
    for (metric, [o, t], targeted) in rss_rows {
        let ratio = o as f64 / t as f64;
        rows.push(Row {
            metric: metric.to_owned(),
            ours: o as f64 / 1024.0,
            original: t as f64 / 1024.0,
            target: targeted.then(|| {
                (
                    format!("ratio <= {TARGET_RSS_RATIO}"),
                    ratio <= TARGET_RSS_RATIO,
                )
            }),
        });
    }
    for (kind, clients, ours, original) in cells {
        let name = format!("{} x{clients}", kind.name());
        let rate_ratio = ours.per_second() / original.per_second();
        rows.push(Row {
            metric: format!("{name} req/s"),
            ours: ours.per_second(),
            original: original.per_second(),
            target: (*kind == Kind::Validate).then(|| {
                (
                    format!("ratio >= {TARGET_VALIDATE_RATIO}"),
                    rate_ratio >= TARGET_VALIDATE_RATIO,
                )
            }),
        });
        rows.push(Row {
            metric: format!("{name} p50 (ms)"),
            ours: ours.percentile_ms(50.0),
            original: original.percentile_ms(50.0),
            target: None,
        });
        let p99 = ours.percentile_ms(99.0);
        rows.push(Row {
            metric: format!("{name} p99 (ms)"),
            ours: p99,
            original: original.percentile_ms(99.0),
            target: (*kind != Kind::Validate && *clients == TARGET_CONCURRENCY)
                .then(|| (format!("< {TARGET_P99_MS} ms"), p99 < TARGET_P99_MS)),
        });
        rows.push(Row {
            metric: format!("{name} errors"),
            ours: ours.error_count() as f64,
            original: original.error_count() as f64,
            target: Some(("0".to_owned(), ours.error_count() == 0)),
        });
    }

    rows
}

/// What is printed: the table (and every failure by kind), or with `args.json` the JSON.
fn report(
    args: &Args,
    load_before: &str,
    load_after: &str,
    cells: &[CellPair],
    rows: &[Row],
) -> String {
    if args.json {
        let json_cells: Vec<Value> = cells
            .iter()
            .map(|(kind, clients, ours, original)| {
                let side = |c: &Cell| {
                    json!({
                        "requests": c.latencies.len(),
                        "seconds": c.elapsed.as_secs_f64(),
                        "per_second": c.per_second(),
                        "p50_ms": c.percentile_ms(50.0),
                        "p99_ms": c.percentile_ms(99.0),
                        "max_ms": c.percentile_ms(100.0),
                        "errors": c.errors,
                    })
                };
                json!({"route": kind.name(), "clients": clients,
                       "ours": side(ours), "original": side(original)})
            })
            .collect();
        let json_rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"metric": r.metric, "ours": r.ours, "original": r.original,
                       "ratio": r.ours / r.original,
                       "target": r.target.as_ref().map(|t| &t.0),
                       "met": r.target.as_ref().map(|t| t.1)})
            })
            .collect();
        let result = json!({
            "seconds": args.seconds,
            "rounds": args.rounds,
            "max_requests": args.max_requests,
            "client_threads": args.client_threads,
            "one_address": args.one_address,
            "load_before": load_before,
            "load_after": load_after,
            "cells": json_cells,
            "rows": json_rows,
        });
        return json_text(&result, JsonStyle::Pretty);
    }
    let mut table = Table::markdown(["metric", "ours", "original", "ratio", "target", "met?"])
        .with_title(format!(
            "provisioning API on 127.0.0.1, ours vs the original; {} s or {} requests a cell and \
             side, in {} rounds; load average {load_before} before, {load_after} after",
            args.seconds, args.max_requests, args.rounds
        ));
    for r in rows {
        let (target, met) = match &r.target {
            Some((t, true)) => (t.as_str(), "yes"),
            Some((t, false)) => (t.as_str(), "NO"),
            None => ("-", "-"),
        };
        table.row([
            r.metric.clone(),
            number(r.ours),
            number(r.original),
            number(r.ours / r.original),
            target.to_owned(),
            met.to_owned(),
        ]);
    }
    let mut out = table.render();
    for (kind, clients, ours, original) in cells {
        for (name, c) in [("ours", ours), ("original", original)] {
            for (what, n) in &c.errors {
                let _ = writeln!(out, "{} x{clients}, {name}: {n} x {what}", kind.name());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
