//! T2 browser tier of the first-boot web console: our `atomix-provision serve` (a temporary
//! config root, `--activation none`, 127.0.0.1 on port 0) driven in Debian's headless
//! `chromium` through `chromedriver` with `fantoccini`, offline:
//!
//! 1. the page loads (desktop and phone widths), with first boot's seed problems;
//! 2. a config file is uploaded and its job's steps stream live (the job is held on the config
//!    root's lock to catch it running) until the success view with the forwarding URL;
//! 3. on a fresh device, an invalid config is pasted and every error shows with its line;
//! 4. a form on another origin (a page served on another loopback port) posting to `/apply`,
//!    even with the right token, is refused, and the device stays unprovisioned.
//!
//! A PNG screenshot of each view is kept in `<target>/test-artefacts/console/`. chromedriver
//! and the browsers it starts run in their own process group, killed by its id on every path
//! ([`Driver`]'s `Drop`), with a fresh `--user-data-dir`. Missing `chromium` or `chromedriver`
//! fail the test (`scripts/setup.sh` installs them); it never skips.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atomix_provision::store::ConfigRoot;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const OURS: &str = env!("CARGO_BIN_EXE_atomix-provision");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const MINIMAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/tests/fixtures/minimal.toml"
);
/// Offline and quiet: no background requests, no component updates, no sync (they would try
/// the network this machine does not have).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];
/// How long the browser may take for a step.
const STEP: Duration = Duration::from_secs(60);
/// Six errors on five lines, two of them in a hostile key.
const INVALID: &str = include_str!("fixtures/console-invalid.toml");

/// Where the screenshots go.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artefacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Our server on a temporary `/data`, killed by pid when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve` on port 0 with first boot's status `status` (if any).
    fn start(status: Option<Value>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let status_file = dir.path().join("run/provisioning-status.json");
        if let Some(status) = status {
            std::fs::create_dir_all(status_file.parent().unwrap()).unwrap();
            std::fs::write(&status_file, status.to_string()).unwrap();
        }
        let child = Command::new(OURS)
            .arg("serve")
            .arg(dir.path().join("data/config"))
            .args(["--host", "127.0.0.1", "--port", "0", "--activation", "none"])
            .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
            .env("ATOMIXOS_PROVISIONING_STATUS", &status_file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // From here on, a panic drops the server and so kills it.
        let mut server = Self {
            child,
            port: 0,
            dir,
        };
        let mut stderr = BufReader::new(server.child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        // Keep reading what it logs: a closed pipe would fail its writes.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        server.port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn root(&self) -> ConfigRoot {
        ConfigRoot::unchecked(&self.dir.path().join("data/config")).unwrap()
    }
}

/// chromedriver and every chromium it starts, in their own process group (the driver's id):
/// the group is killed by that id when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = i32::try_from(self.0.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver session. Dropped in this order: the client, the driver's process group (so
/// nothing writes to the profile any more), the profile directory.
struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver (scripts/setup.sh)"
    );
}

impl Browser {
    async fn start() -> Self {
        require(CHROMIUM);
        require(CHROMEDRIVER);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        // From here on, a panic drops the driver and so kills its group.
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,900".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let webdriver = format!("http://127.0.0.1:{port}");
        let client = match tokio::time::timeout(STEP, builder.connect(&webdriver)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("no chromium session: {e}"),
            Err(_) => panic!("no chromium session within {STEP:?}"),
        };
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// A screenshot of the whole page at `width`, into the artefacts.
    async fn shot(&self, name: &str, width: u32) {
        let c = &self.client;
        c.set_window_size(width, 900).await.unwrap();
        let height = c
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900);
        let height = u32::try_from(height.saturating_add(60).clamp(600, 4000)).unwrap();
        c.set_window_size(width, height).await.unwrap();
        c.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(artefacts().join(format!("{name}.png")), png).unwrap();
        c.set_window_size(1280, 900).await.unwrap();
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let panel = match self.client.find(Locator::Id("job-status")).await {
                    Ok(p) => p.html(false).await.unwrap_or_default(),
                    Err(_) => self.client.source().await.unwrap_or_default(),
                };
                panic!("{css} did not appear ({e}); the page shows:\n{panel}");
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Ends the session (chromedriver quits chromium); the guard still kills the group.
    async fn close(self) {
        self.client.clone().close().await.unwrap();
    }
}

/// A page on another origin (another loopback port) whose form posts a config to the
/// console's `/apply` with the console's own token.
async fn attacker_page(target: &str, token: &str) -> (String, tokio::task::JoinHandle<()>) {
    let config = std::fs::read_to_string(MINIMAL).unwrap();
    let page = format!(
        "<!doctype html><html><body><h1>Win a prize</h1>\
         <form id=\"f\" method=\"post\" action=\"{target}\" enctype=\"multipart/form-data\">\
         <input type=\"hidden\" name=\"bootstrap_token\" value=\"{token}\">\
         <textarea name=\"config\">{config}</textarea>\
         <button id=\"go\" type=\"submit\">Claim</button></form></body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    let browser = Browser::start().await;
    let c = &browser.client;

    // 1. The page, with the seed first boot could not use.
    let server = Server::start(Some(json!({
        "state": "waiting",
        "problems": [{
            "origin": "the USB stick's config.toml (/dev/disk/by-label/ATOMIX-SEED)",
            "error": "config.toml:6:9: users.admin.shell: unknown shell \"fish\" (one of: bash, sh, zsh)\nshell = \"fish\"\n        ^^^^^^\n",
        }],
    })));
    c.goto(&server.url("/")).await.unwrap();
    browser.wait_for("#apply-form").await;
    assert_eq!(c.title().await.unwrap(), "AtomixOS · first-boot console");
    assert!(
        browser
            .text(".pill")
            .await
            .contains("Waiting for a configuration")
    );
    assert!(
        browser
            .text(".problems")
            .await
            .contains("unknown shell \"fish\"")
    );
    browser.shot("01-page", 1280).await;
    browser.shot("01-page-phone", 390).await;

    // 2. Upload a file; hold the job on the config root's lock to see it running, then let it
    // go and watch the stream bring the success.
    let lock = server.root().lock().unwrap();
    let input = c.find(Locator::Id("config-file")).await.unwrap();
    let file = std::fs::canonicalize(MINIMAL).unwrap();
    input.send_keys(file.to_str().unwrap()).await.unwrap();
    assert!(browser.text("#picked-name").await.contains("minimal.toml"));
    c.find(Locator::Id("apply-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for("#job-status[data-state=\"running\"] .step-run")
        .await;
    browser.shot("02-running", 1280).await;
    drop(lock);
    browser
        .wait_for("#job-status[data-state=\"succeeded\"]")
        .await;
    assert_eq!(
        browser.text("#forwarding-url").await,
        "http://172.20.30.1:8080"
    );
    let steps = browser.text(".steps").await;
    for step in ["prepare", "validate", "write-users", "promote", "completed"] {
        assert!(steps.contains(step), "{step} not in {steps}");
    }
    // The form closes at `done`, which follows the last fragment.
    browser.wait_for("#apply-fields:disabled").await;
    assert_eq!(browser.text("#apply-button").await, "Applied");
    assert_eq!(browser.text(".pill").await, "Provisioned");
    browser.shot("03-succeeded", 1280).await;
    browser.shot("03-succeeded-phone", 390).await;
    assert!(server.root().active_config().exists());
    // The console is closed now.
    c.goto(&server.url("/")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Not Found"));
    drop(server);

    // 3. A fresh device: paste an invalid config; every error shows with its line.
    let server = Server::start(None);
    c.goto(&server.url("/")).await.unwrap();
    let text = browser.wait_for("#config-text").await;
    text.send_keys(INVALID).await.unwrap();
    c.find(Locator::Id("apply-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for("#job-status[data-state=\"refused\"]")
        .await;
    let findings = c.find_all(Locator::Css(".finding")).await.unwrap();
    let mut seen = Vec::new();
    for f in &findings {
        let loc = f
            .find(Locator::Css(".loc"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let source = match f.find(Locator::Css("pre.source")).await {
            Ok(pre) => pre.text().await.unwrap(),
            Err(_) => String::new(),
        };
        seen.push((loc, source));
    }
    let expected = [
        ("line 1, col 1", "version = 1"),
        ("line 1, col 1", "version = 1"),
        ("line 5, col 11", "ssh_key = \"not a key\""),
        ("line 6, col 9", "shell = \"fish\""),
        ("line 8, col 8", "[users.\"<script>alert(1)</script>\"]"),
        ("line 9, col 11", "isAdmin = \"yes\""),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for ((loc, source), (want_loc, want_line)) in seen.iter().zip(expected) {
        assert_eq!(loc, want_loc);
        assert!(source.contains(want_line), "{source:?} lacks {want_line:?}");
    }
    // The hostile key is text: no alert, no script element.
    assert!(c.get_alert_text().await.is_err(), "a script ran");
    let scripts = c
        .find_all(Locator::Css("#job-status script"))
        .await
        .unwrap();
    assert!(scripts.is_empty());
    assert!(!server.root().active_config().exists());
    browser.shot("04-refused", 1280).await;
    browser.shot("04-refused-phone", 390).await;

    // 4. A form on another origin posting to /apply, with the right token: refused by the
    // browser checks (the browser sends its Origin), nothing applied.
    let token = c
        .find(Locator::Css("input[name=bootstrap_token]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let (evil, task) = attacker_page(&server.url("/apply"), &token).await;
    c.goto(&evil).await.unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The browser navigates to the answer; an element of the page it leaves may go stale.
    let deadline = Instant::now() + STEP;
    let body = loop {
        let body = match c.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains("bootstrap") || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body.contains("\"status_code\":401") && body.contains("bootstrap origin is not allowed"),
        "{body}"
    );
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        server.url("/apply")
    );
    browser.shot("05-cross-origin-refused", 1280).await;
    task.abort();
    // Still unprovisioned: the console is open and no job ran.
    assert!(!server.root().active_config().exists());
    c.goto(&server.url("/")).await.unwrap();
    browser.wait_for("#job-status[data-state=\"idle\"]").await;

    browser.close().await;
}
