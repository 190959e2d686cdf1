//! T1: the provisioning API, ours and the original's, as black boxes on loopback (real TCP
//! servers on 127.0.0.1): the same scenario against both must give the same status codes,
//! apart from the deliberate differences listed in [`DIFFERENT`].
//!
//! The original runs as `atomixos-provision serve ROOT --host 127.0.0.1 --port P`; ours as
//! `atomix-provision serve ROOT --host 127.0.0.1 --port 0 --activation none`. On a host
//! without systemd the original's re-apply fails its health check, so job outcomes are
//! compared only where both must succeed (the initial import). Both servers are killed by pid
//! on every path ([`Server`]'s `Drop`); every request and wait is bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atomix_api::{HEADER_NONCE, HEADER_SIGNATURE, routes, signed_message};
use common::oracle::{original, schema};
use common::sshkeys::{Key, config, keygen, sign};
use serde_json::Value;

const OURS: &str = env!("CARGO_BIN_EXE_atomix-provision");
/// How long a server may take to answer its first health check.
const START: Duration = Duration::from_secs(20);
/// How long a job may take.
const JOB: Duration = Duration::from_secs(60);

/// Steps whose status codes differ: (step, original's, ours, why).
const DIFFERENT: &[(&str, u16, u16, &str)] = &[
    (
        "invalid config, before provisioning",
        202,
        400,
        "a refused config is answered 400 with its report before any job (spec 9.7)",
    ),
    (
        "a second submit while a job runs",
        500,
        409,
        "the original's 409 path fails with a 500 (found by this test); ours answers the 409 \
         its OpenAPI document promises",
    ),
];

/// A server process, killed by pid when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The original on a free loopback port.
    fn original(root: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(original())
            .arg("serve")
            .arg(root)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
            .env("ATOMIXOS_CONFIG_SCHEMA", schema())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { child, port };
        server.wait_ready();
        server
    }

    /// Ours on port 0; the port is read from its "listening on" line.
    fn ours(root: &Path) -> Self {
        let mut child = Command::new(OURS)
            .arg("serve")
            .arg(root)
            .args(["--host", "127.0.0.1", "--port", "0", "--activation", "none"])
            .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut server = Self { child, port: 0 };
        let mut stderr = BufReader::new(stderr);
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        // Keep reading what it logs: a closed pipe would fail its writes.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        server.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START;
        while Instant::now() < deadline {
            if let Ok(res) = self.try_request("GET", routes::HEALTH, &[], b"")
                && res.0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server on port {} did not start", self.port);
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        s.write_all(&request)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        // A server that refuses a request before reading its body closes with the body
        // unread, and the reset may beat its answer: such refusals change nothing, so they
        // are asked again.
        let mut tries = 0;
        loop {
            match self.try_request(method, path, headers, body) {
                Ok(answer) => return answer,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && tries < 3 => {
                    tries += 1;
                }
                Err(e) => panic!("{method} {path}: {e}"),
            }
        }
    }

    fn nonce(&self) -> String {
        let (status, body) = self.request("GET", routes::NONCE, &[], b"");
        assert_eq!(status, 200);
        body["nonce"].as_str().unwrap().to_owned()
    }

    fn signed(
        &self,
        key: &Key,
        nonce: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let signature = sign(key, &signed_message(nonce, path, body));
        let headers = [
            (HEADER_NONCE, nonce.to_owned()),
            (HEADER_SIGNATURE, signature),
        ];
        self.request(method, path, &headers, body)
    }

    /// Waits for the job of a 202 to end; its state.
    fn job_state(&self, accepted: &Value) -> String {
        let url = accepted["job_url"].as_str().unwrap();
        let deadline = Instant::now() + JOB;
        while Instant::now() < deadline {
            let (status, job) = self.request("GET", url, &[], b"");
            assert_eq!(status, 200);
            let state = job["state"].as_str().unwrap().to_owned();
            if state == "succeeded" || state == "failed" {
                return state;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("job {url} did not end");
    }
}

/// The scenario; every step's status code, and the initial import's outcome.
fn scenario(server: &Server, data: &Path, admin: &Key, toml: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let mut note = |step: &str, status: u16| out.push((step.to_owned(), status));
    note("health", server.request("GET", routes::HEALTH, &[], b"").0);
    let nonce = server.nonce();
    note(
        "validate before provisioning",
        server
            .signed(admin, &nonce, "POST", routes::VALIDATE, toml.as_bytes())
            .0,
    );
    note(
        "export before provisioning",
        server.request("GET", routes::EXPORT, &[], b"").0,
    );
    let invalid = toml.replace("version = 1", "version = 2");
    let (status, accepted) = server.request("POST", routes::CONFIG, &[], invalid.as_bytes());
    note("invalid config, before provisioning", status);
    if status == 202 {
        assert_eq!(server.job_state(&accepted), "failed", "invalid config");
    }
    // The config root's lock (both take the same flock) keeps the first job running.
    let lock = std::fs::File::create(data.join(".config.lock")).unwrap();
    lock.lock().unwrap();
    let (status, accepted) = server.request("POST", routes::CONFIG, &[], toml.as_bytes());
    note("initial import", status);
    note(
        "a second submit while a job runs",
        server
            .request("POST", routes::CONFIG, &[], toml.as_bytes())
            .0,
    );
    drop(lock);
    if status == 202 {
        assert_eq!(server.job_state(&accepted), "succeeded", "initial import");
    }
    note(
        "unauthenticated submit after provisioning",
        server
            .request("POST", routes::CONFIG, &[], toml.as_bytes())
            .0,
    );
    let nonce = server.nonce();
    note(
        "signed validate",
        server
            .signed(admin, &nonce, "POST", routes::VALIDATE, toml.as_bytes())
            .0,
    );
    note(
        "replayed nonce",
        server
            .signed(admin, &nonce, "POST", routes::VALIDATE, toml.as_bytes())
            .0,
    );
    let next = toml.replace("8081:80", "8082:80");
    let (status, accepted) = server.signed(
        admin,
        &server.nonce(),
        "POST",
        routes::CONFIG,
        next.as_bytes(),
    );
    note("signed re-apply", status);
    if status == 202 {
        // Its outcome differs (the original's health check needs systemd): wait only.
        server.job_state(&accepted);
    }
    let nonce = server.nonce();
    let signature = sign(
        admin,
        &signed_message(&nonce, routes::VALIDATE, toml.as_bytes()),
    );
    let headers = [(HEADER_NONCE, nonce), (HEADER_SIGNATURE, signature)];
    note(
        "tampered body",
        server
            .request("POST", routes::VALIDATE, &headers, next.as_bytes())
            .0,
    );
    note(
        "signed export",
        server
            .signed(admin, &server.nonce(), "GET", routes::EXPORT, b"")
            .0,
    );
    note(
        "unknown job",
        server
            .request(
                "GET",
                &routes::job("00000000-0000-4000-8000-000000000000"),
                &[],
                b"",
            )
            .0,
    );
    note(
        "unknown route",
        server.request("GET", "/api/nope", &[], b"").0,
    );
    out
}

#[test]
fn ours_and_the_original_answer_the_same_scenario_alike() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin", &["-t", "ed25519"]);
    // Quick to fail: no settle window, a short deadline.
    let toml = config(&admin.public, "").replace(
        "required = [\"web\"]",
        "required = [\"web\"]\nsettle_seconds = 0\ntimeout_seconds = 2",
    );
    for side in ["orig", "ours"] {
        std::fs::create_dir_all(dir.path().join(side).join("data")).unwrap();
    }
    let theirs = {
        let data = dir.path().join("orig/data");
        let server = Server::original(&data.join("config"));
        scenario(&server, &data, &admin, &toml)
    };
    let ours = {
        let data = dir.path().join("ours/data");
        let server = Server::ours(&data.join("config"));
        scenario(&server, &data, &admin, &toml)
    };
    assert_eq!(theirs.len(), ours.len());
    let mut report = String::new();
    for ((step, a), (_, b)) in theirs.iter().zip(&ours) {
        let allowed = DIFFERENT
            .iter()
            .any(|(s, x, y, _)| s == step && *x == *a && *y == *b);
        report.push_str(&format!("{step}: original {a}, ours {b}\n"));
        assert!(
            a == b || allowed,
            "{step}: original {a}, ours {b}\n{report}"
        );
    }
    // The documented differences still differ.
    for (step, a, b, why) in DIFFERENT {
        let got = theirs.iter().zip(&ours).find(|((s, _), _)| s == step);
        let ((_, x), (_, y)) = got.unwrap();
        assert_eq!((x, y), (a, b), "{step}: {why}");
    }
    eprint!("{report}");
}
