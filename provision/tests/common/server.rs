//! The API as a real server on loopback: the original's or ours (`atomix-provision serve
//! --activation none`), on a port the OS picks, killed by pid when dropped; every request and
//! wait bounded.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atomix_api::{HEADER_NONCE, HEADER_SIGNATURE, routes, signed_message};
use serde_json::Value;

use super::oracle::{original, schema};
use super::sshkeys::{Key, sign, unqueried};

const OURS: &str = env!("CARGO_BIN_EXE_atomix-provision");
/// How long a server may take to answer its first health check.
const START: Duration = Duration::from_secs(20);
/// How long a job may take.
const JOB: Duration = Duration::from_secs(60);

/// A server process, killed by pid when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The original on a free loopback port.
    pub fn original(root: &Path) -> Self {
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
    pub fn ours(root: &Path) -> Self {
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

    pub fn wait_ready(&self) {
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

    pub fn try_request(
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

    pub fn request(
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

    pub fn nonce(&self) -> String {
        let (status, body) = self.request("GET", routes::NONCE, &[], b"");
        assert_eq!(status, 200);
        body["nonce"].as_str().unwrap().to_owned()
    }

    pub fn signed(
        &self,
        key: &Key,
        nonce: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let signature = sign(key, &signed_message(nonce, unqueried(path), body));
        let headers = [
            (HEADER_NONCE, nonce.to_owned()),
            (HEADER_SIGNATURE, signature),
        ];
        self.request(method, path, &headers, body)
    }

    /// Waits for the job of a 202 to end; its state.
    pub fn job_state(&self, accepted: &Value) -> String {
        let url = accepted["job_url"].as_str().unwrap();
        let job = self.wait_job(url, |state| state == "succeeded" || state == "failed");
        job["state"].as_str().unwrap().to_owned()
    }

    /// Waits for the job at `url` to be in a state `done` accepts; the job.
    pub fn wait_job(&self, url: &str, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + JOB;
        while Instant::now() < deadline {
            let (status, job) = self.request("GET", url, &[], b"");
            assert_eq!(status, 200);
            if done(job["state"].as_str().unwrap()) {
                return job;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("job {url} did not get there");
    }
}
