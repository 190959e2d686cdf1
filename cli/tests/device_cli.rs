//! T1 of `atomix device`: against the original AtomixOS provisioning service (`serve` on
//! 127.0.0.1, a port the OS picks, `<cache>/orig-venv` from `scripts/setup.sh`), against a
//! scripted loopback server for what the original cannot show (busy, redirects, the
//! confirm-or-revert client side, a rolled-back job), and against our own service
//! (`atomix_provision::api` in process on 127.0.0.1, without activation, as `atomix-provision
//! serve --activation none`) for confirm-or-revert end to end. Every server is killed (or
//! stopped) on every path; every wait has a deadline.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding as _};

const ATOMIX: &str = env!("CARGO_BIN_EXE_atomix");

/// The exit codes of `atomix device`.
const EXIT_FAILED: i32 = 1;
const EXIT_UNREACHABLE: i32 = 3;
const EXIT_AUTH: i32 = 4;
const EXIT_BUSY: i32 = 5;
const EXIT_ROLLED_BACK: i32 = 6;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

const MINIMAL: &str = include_str!("../../config/tests/fixtures/minimal.toml");

/// `ssh-keygen -t ed25519` into `dir/name`; returns the private key's path.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn public_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The minimal fixture with `key` as its admin's.
fn config_for(key: &Path) -> String {
    let line = MINIMAL
        .lines()
        .find(|l| l.starts_with("ssh_key = "))
        .unwrap();
    MINIMAL.replace(line, &format!("ssh_key = \"{}\"", public_line(key)))
}

fn atomix(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(ATOMIX);
    cmd.args(args).env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// A process killed by pid on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The original service serving `root` on 127.0.0.1, with its log lines (uvicorn: the startup
/// lines on stderr, one access line per request on stdout).
struct Original {
    _child: Killed,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Original {
    fn start(root: &Path) -> Self {
        let cache = std::env::var_os("ATOMIX_CACHE")
            .filter(|p| !p.is_empty())
            .map_or_else(|| workspace().join(".cache"), |p| workspace().join(p));
        let bin = cache.join("orig-venv/bin/atomixos-provision");
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/setup.sh",
            bin.display()
        );
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(root)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
            .env(
                "ATOMIXOS_CONFIG_SCHEMA",
                workspace().join("../shared/anchors/atomixos-provision/config.schema.json"),
            )
            .env_remove("ATOMIXOS_BOOTSTRAP_ACTIVATION")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let child = Killed(child);
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the original did not start: {:?}",
                    log.lock().unwrap().join("\n")
                )
            });
            if let Some(rest) = line.split("running on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Self {
            _child: child,
            url,
            log,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) for an access line containing `needle`; the log from `from` on.
    fn wait_for(&self, from: usize, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines().split_off(from);
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            assert!(Instant::now() < deadline, "no `{needle}` in {lines:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A real `ssh-agent -D` on a socket in `dir`, killed by pid on drop.
struct Agent {
    _child: Killed,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, keys: &[&Path]) -> Self {
        let socket = dir.join("agent.sock");
        let child = Killed(
            Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in keys {
            let status = Command::new("ssh-add")
                .arg("-q")
                .arg(key)
                .env("SSH_AUTH_SOCK", &socket)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        Self {
            _child: child,
            socket,
        }
    }
}

#[test]
fn against_the_original_service() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/config");
    std::fs::create_dir_all(&root).unwrap();
    let admin = keygen(dir.path(), "admin");
    let stranger = keygen(dir.path(), "stranger");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_for(&admin)).unwrap();
    let invalid = dir.path().join("invalid.toml");
    let bad = config_for(&admin).replace("\"8081:80\"", "\"80\"");
    std::fs::write(&invalid, &bad).unwrap();
    let config = config.to_str().unwrap();
    let server = Original::start(&root);
    let url = server.url.as_str();

    // Refused offline with the located report; the device sees no request (the one GET of
    // `job UNKNOWN` that follows is the only request in its log).
    let mark = server.lines().len();
    let o = atomix(
        &["device", "push", invalid.to_str().unwrap(), "--url", url],
        &[],
    );
    assert_eq!(o.status.code(), Some(EXIT_FAILED), "{}", stderr(&o));
    let (line, col) = (
        bad.lines().position(|l| l.contains("\"80\"")).unwrap() + 1,
        15,
    );
    let located = format!("{}:{line}:{col}: ", invalid.display());
    assert!(stderr(&o).contains(&located), "{}", stderr(&o));
    assert!(stderr(&o).contains("^^^^"), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was sent"), "{}", stderr(&o));
    let o = atomix(&["device", "job", "UNKNOWN", "--url", url], &[]);
    assert_eq!(o.status.code(), Some(EXIT_FAILED), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "GET {url}/api/jobs/UNKNOWN: 404 Not Found: job not found"
        )),
        "{}",
        stderr(&o)
    );
    let requests = server.wait_for(mark, "/api/jobs/UNKNOWN");
    let requests: Vec<_> = requests.iter().filter(|l| l.contains(" HTTP/")).collect();
    assert_eq!(requests.len(), 1, "{requests:#?}");

    // The first push, unsigned, to the empty root: followed to success.
    let o = atomix(&["device", "push", config, "--url", url, "--json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let job = json(&o);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["reapply"], false, "{job}");
    let progress = stderr(&o);
    assert!(progress.contains("sending unsigned"), "{progress}");
    assert!(
        progress.contains("promote               activating initial config root"),
        "{progress}"
    );
    assert!(progress.contains("completed"), "{progress}");
    assert_eq!(
        std::fs::read_to_string(root.join("config.toml")).unwrap(),
        config_for(&admin)
    );
    assert!(
        std::fs::read_to_string(root.join("admin-signers"))
            .unwrap()
            .contains(public_line(&admin).split(' ').nth(1).unwrap())
    );

    // Provisioned now: an unsigned push is refused.
    let o = atomix(&["device", "push", config, "--url", url], &[]);
    assert_eq!(o.status.code(), Some(EXIT_AUTH), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "POST {url}/api/config: 401 Unauthorized: authentication required"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("sign with --key KEY or --agent"),
        "{}",
        stderr(&o)
    );

    // Signed by a key that is not an admin's: refused.
    let o = atomix(
        &[
            "device",
            "push",
            config,
            "--url",
            url,
            "--key",
            stranger.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(EXIT_AUTH), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("signature verification failed"),
        "{}",
        stderr(&o)
    );

    // Signed by the admin: accepted and followed; on this host the re-apply fails its health
    // check (no systemd), and the client says so with the matching exit code.
    let o = atomix(
        &[
            "device",
            "push",
            config,
            "--url",
            url,
            "--key",
            admin.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let job = json(&o);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["current_step"], "health-check", "{job}");
    let expected = match job["rollback_status"].as_str() {
        Some("completed") => EXIT_ROLLED_BACK,
        _ => EXIT_FAILED,
    };
    assert_eq!(o.status.code(), Some(expected), "{}", stderr(&o));
    let progress = stderr(&o);
    assert!(progress.contains("health-check"), "{progress}");
    assert!(
        progress.contains(&format!(
            "job {} failed at step health-check: ",
            job["id"].as_str().unwrap()
        )),
        "{progress}"
    );

    // Export, signed with the key file into a file, and through ssh-agent to stdout.
    let out = dir.path().join("exported.toml");
    let o = atomix(
        &[
            "device",
            "export",
            "--url",
            url,
            "--key",
            admin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let active = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), active);
    let agent = Agent::start(dir.path(), &[&stranger, &admin]);
    let public = admin.with_extension("pub");
    let o = atomix(
        &[
            "device",
            "export",
            "--url",
            url,
            "--agent",
            "--key",
            public.to_str().unwrap(),
        ],
        &[("SSH_AUTH_SOCK", &agent.socket)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), active);
}

/// A loopback HTTP server answering each request with `answer(method, target)` (one request
/// per connection), recording the requests; stopped on drop.
struct Scripted {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = (u16, Vec<(&'static str, String)>, String);

impl Scripted {
    fn start(mut answer: impl FnMut(&Request) -> Answer + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                seen.lock().unwrap().push(request.clone());
                let (status, headers, body) = answer(&request);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\
                     Content-Type: application/json\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = stream.write_all(format!("{head}\r\n{body}").as_bytes());
            }
        });
        Self {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let request = Request {
        method,
        target,
        headers,
    };
    let length: usize = request
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap_or(0));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(request)
}

fn job_json(state: &str, events: usize, extra: &str) -> String {
    let events: Vec<String> = (0..events)
        .map(|i| format!(r#"{{"step":"step-{i}","elapsed_seconds":0.{i}}}"#))
        .collect();
    format!(
        r#"{{"id":"J1","state":"{state}","current_step":"step-x","events":[{}]{extra}}}"#,
        events.join(",")
    )
}

const SUBMITTED: &str = r#"{"job_id":"J1","state":"submitted","job_url":"/api/jobs/J1"}"#;

#[test]
fn confirm_or_revert_is_confirmed_signed_as_soon_as_the_job_awaits_it() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_for(&admin)).unwrap();
    let mut polls = 0;
    let mut confirmed = false;
    let server = Scripted::start(move |r| match (r.method.as_str(), r.target.as_str()) {
        ("GET", "/api/nonce") => (200, vec![], r#"{"nonce":"n-1"}"#.into()),
        ("POST", "/api/config?confirm=30") => (
            202,
            vec![("Location", "/api/jobs/J1".into())],
            SUBMITTED.into(),
        ),
        ("GET", "/api/jobs/J1") => {
            polls += 1;
            let body = match (polls, confirmed) {
                (1, _) => job_json("running", 1, ""),
                (_, false) => job_json("awaiting-confirmation", 2, ""),
                (_, true) => job_json("succeeded", 3, r#","duration_seconds":1.5"#),
            };
            (200, vec![], body)
        }
        ("POST", "/api/jobs/J1/confirm") => {
            confirmed = true;
            (200, vec![], job_json("running", 2, ""))
        }
        _ => (404, vec![], r#"{"error":"no such route"}"#.into()),
    });
    let o = atomix(
        &[
            "device",
            "push",
            config.to_str().unwrap(),
            "--url",
            &server.url,
            "--key",
            admin.to_str().unwrap(),
            "--confirm=30",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "job J1 succeeded in 1.50 s\n");
    let progress = stderr(&o);
    for line in [
        "    0.00s  step-0",
        "    0.10s  step-1",
        "    0.20s  step-2",
        "atomix: job J1 is applied and awaits confirmation",
        "atomix: confirmed job J1",
    ] {
        assert_eq!(progress.matches(line).count(), 1, "{line:?} in {progress}");
    }

    // The confirmation is signed over its own path and an empty body, with a fresh nonce.
    let requests = server.requests();
    let confirm = requests
        .iter()
        .find(|r| r.target == "/api/jobs/J1/confirm")
        .unwrap();
    assert_eq!(confirm.method, "POST");
    assert_eq!(confirm.header("X-AtomixOS-Nonce"), Some("n-1"));
    let armored = Base64::decode_vec(confirm.header("X-AtomixOS-Signature").unwrap()).unwrap();
    let message = atomix_api::signed_message("n-1", "/api/jobs/J1/confirm", b"");
    let signers = dir.path().join("allowed_signers");
    std::fs::write(&signers, format!("x {}\n", public_line(&admin))).unwrap();
    let sig = dir.path().join("confirm.sig");
    std::fs::write(&sig, armored).unwrap();
    let mut verify = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "atomixos-reapply", "-I", "x", "-f"])
        .arg(&signers)
        .arg("-s")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    verify
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    assert!(verify.wait().unwrap().success());
    let submit = requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(submit.header("X-Config-Filename"), Some("config.toml"));
    assert_eq!(
        submit.header("Content-Type"),
        Some("application/octet-stream")
    );
}

#[test]
fn an_unconfirmed_job_rolled_back_and_a_busy_device_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_for(&admin)).unwrap();
    let config = config.to_str().unwrap();

    // Unsigned, so the confirmation is refused; the device reverts when the window closes.
    let mut polls = 0;
    let server = Scripted::start(move |r| match (r.method.as_str(), r.target.as_str()) {
        ("POST", "/api/config?confirm=120") => (202, vec![], SUBMITTED.into()),
        ("GET", "/api/jobs/J1") => {
            polls += 1;
            let body = if polls < 2 {
                job_json("awaiting-confirmation", 1, "")
            } else {
                job_json(
                    "failed",
                    2,
                    r#","error":"not confirmed in time","rollback_status":"completed""#,
                )
            };
            (200, vec![], body)
        }
        _ => (
            401,
            vec![],
            r#"{"status_code":401,"detail":"authentication required"}"#.into(),
        ),
    });
    let o = atomix(
        &[
            "device",
            "push",
            config,
            "--url",
            &server.url,
            "--confirm",
            "--json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(EXIT_ROLLED_BACK), "{}", stderr(&o));
    assert_eq!(json(&o)["rollback_status"], "completed");
    let progress = stderr(&o);
    assert!(
        progress.contains(&format!(
            "cannot confirm job J1: POST {}/api/jobs/J1/confirm: 401 Unauthorized: \
             authentication required",
            server.url
        )),
        "{progress}"
    );
    assert!(
        progress.contains("job J1 failed at step step-x: not confirmed in time; rolled back"),
        "{progress}"
    );
    drop(server);

    let busy = Scripted::start(|_| {
        (
            409,
            vec![],
            r#"{"error":"a provision job is already running"}"#.into(),
        )
    });
    let o = atomix(&["device", "push", config, "--url", &busy.url], &[]);
    assert_eq!(o.status.code(), Some(EXIT_BUSY), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("409 Conflict: a provision job is already running"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn redirects_are_not_followed_and_an_absent_device_is_unreachable() {
    let elsewhere = Scripted::start(|_| (200, vec![], SUBMITTED.into()));
    let target = format!("{}/api/config", elsewhere.url);
    let redirecting =
        Scripted::start(move |_| (307, vec![("Location", target.clone())], String::new()));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, MINIMAL).unwrap();
    let config = config.to_str().unwrap();
    let o = atomix(&["device", "push", config, "--url", &redirecting.url], &[]);
    assert_eq!(o.status.code(), Some(EXIT_FAILED), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("redirected to http://127.0.0.1:"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not followed"), "{}", stderr(&o));
    assert_eq!(redirecting.requests().len(), 1);
    assert!(elsewhere.requests().is_empty());

    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = atomix(
        &["device", "job", "J1", "--url", &format!("http://{closed}")],
        &[],
    );
    assert_eq!(o.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the device cannot be reached"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_gives_the_devices_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = MINIMAL
        .replace("isAdmin = true", "isAdmin = true\nshell = \"fish\"")
        .replace("\"8081:80\"", "\"80\"");
    std::fs::write(&path, &bad).unwrap();
    let name = path.display().to_string();
    let report = atomix_config::validate::validate(&bad, "/data/config").unwrap_err();

    let o = atomix(&["device", "validate", &name], &[]);
    assert_eq!(o.status.code(), Some(EXIT_FAILED));
    assert_eq!(
        stderr(&o),
        format!(
            "Invalid: {name}: 2 errors\n{}",
            report.render_text(&name, &bad)
        )
    );
    let line = bad.lines().position(|l| l == "shell = \"fish\"").unwrap() + 1;
    let at = format!("{name}:{line}:9: users.admin.shell: ");
    assert!(stderr(&o).contains(&at), "{at} in {}", stderr(&o));

    let o = atomix(&["device", "validate", &name, "--json"], &[]);
    assert_eq!(o.status.code(), Some(EXIT_FAILED));
    assert_eq!(json(&o), report.to_json());

    let good = dir.path().join("good.toml");
    std::fs::write(&good, MINIMAL).unwrap();
    let o = atomix(&["device", "validate", good.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("Valid: {}\n", good.display()));

    let o = atomix(&["device", "validate", "missing.toml", "--json"], &[]);
    assert_eq!(o.status.code(), Some(EXIT_FAILED));
    assert_eq!(json(&o)["valid"], false);
}

/// Our provisioning service on 127.0.0.1 (a port the OS picks) over `data/config`, without
/// activation, in process on its own runtime; stopped when dropped.
struct Ours {
    url: String,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ours {
    fn start(data: &Path) -> Self {
        use atomix_provision::api::{Api, Settings, router};
        use atomix_provision::store::ConfigRoot;
        let root = ConfigRoot::unchecked(&data.join("config")).unwrap();
        let api = Api::new(Settings::new(root.clone())).unwrap();
        let app = router(api);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        Self {
            url,
            root: root.active().to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.root.join("config.toml")).unwrap()
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `config` with the DNS servers changed: a risky change, held for confirmation.
fn with_dns(config: &str) -> String {
    format!("{config}\n[network]\ndns_servers = [\"9.9.9.9\"]\n")
}

/// Our service, provisioned by an unsigned push of `admin`'s config; the config.
fn provisioned(dir: &Path, admin: &Path) -> (Ours, String) {
    std::fs::create_dir(dir.join("data")).unwrap();
    let ours = Ours::start(&dir.join("data"));
    let first = dir.join("first.toml");
    let config = config_for(admin);
    std::fs::write(&first, &config).unwrap();
    let o = atomix(
        &[
            "device",
            "push",
            first.to_str().unwrap(),
            "--url",
            &ours.url,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (ours, config)
}

#[test]
fn push_confirm_to_our_service_is_confirmed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin");
    let (ours, config) = provisioned(dir.path(), &admin);
    let next = dir.path().join("next.toml");
    std::fs::write(&next, with_dns(&config)).unwrap();
    let o = atomix(
        &[
            "device",
            "push",
            next.to_str().unwrap(),
            "--url",
            &ours.url,
            "--key",
            admin.to_str().unwrap(),
            "--confirm=10",
        ],
        &[],
    );
    let progress = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{progress}");
    for said in [
        "awaiting-confirmation",
        "awaits confirmation by ",
        "atomix: confirmed job",
        "cleanup",
    ] {
        assert!(progress.contains(said), "{said}: {progress}");
    }
    assert!(
        stdout(&o).contains("succeeded (re-apply)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(ours.config(), with_dns(&config));
    assert!(!dir.path().join("data/config-rollback").exists());
}

#[test]
fn a_push_that_drops_its_own_key_cannot_be_confirmed_and_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin");
    let other = keygen(dir.path(), "other");
    let (ours, config) = provisioned(dir.path(), &admin);
    // Signed by admin, whom the new config no longer trusts: the confirmation, signed by the
    // same key, is refused, and the window lapses.
    let next = dir.path().join("next.toml");
    std::fs::write(&next, with_dns(&config_for(&other))).unwrap();
    let o = atomix(
        &[
            "device",
            "push",
            next.to_str().unwrap(),
            "--url",
            &ours.url,
            "--key",
            admin.to_str().unwrap(),
            "--confirm=10",
        ],
        &[],
    );
    let progress = stderr(&o);
    assert_eq!(o.status.code(), Some(EXIT_ROLLED_BACK), "{progress}");
    for said in [
        "cannot confirm job",
        "401 Unauthorized: signature verification failed",
        "not confirmed within 10 s: the previous config is restored; rolled back",
    ] {
        assert!(progress.contains(said), "{said}: {progress}");
    }
    assert_eq!(ours.config(), config);
}
