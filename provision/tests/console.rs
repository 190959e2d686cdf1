//! T0 of the first-boot web console, in process (`tower::ServiceExt::oneshot` on the service's
//! router with the console's routes): every route and status (the page and its assets, the
//! browser checks, the form token, a missing config, the 400 report with every error located,
//! 409, the job fragment and its server-sent events, 404 once provisioned, the one read of a
//! terminal fragment after provisioning, the reconnect fragment), escaping, and the OpenAPI
//! document leaving the console out. The browser tier is `console_browser.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atomix_api::{JobEvent, JobResponse, JobState, ProvisionResult, routes};
use atomix_provision::api::console::{self, job_events_path, job_path, view};
use atomix_provision::api::{Api, Settings, router_with};
use atomix_provision::store::ConfigRoot;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::sshkeys::MINIMAL;
use serde_json::Value;
use tower::ServiceExt as _;

const HOST: &str = "127.0.0.1:8080";
/// Six errors on five lines, two of them in a hostile key.
const INVALID: &str = include_str!("fixtures/console-invalid.toml");

/// One device: a temporary `/data` and `/run`, the state and the router with the console.
struct Device {
    dir: tempfile::TempDir,
    api: Arc<Api>,
    app: Router,
}

impl Device {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let root = ConfigRoot::unchecked(&dir.path().join("data/config")).unwrap();
        let mut settings = Settings::new(root);
        tweak(&mut settings);
        let api = Api::new(settings).unwrap();
        let settings = console::Settings {
            status_file: dir.path().join("run/provisioning-status.json"),
        };
        let app = router_with(Arc::clone(&api), console::routes(settings));
        Self { dir, api, app }
    }

    fn root(&self) -> ConfigRoot {
        ConfigRoot::unchecked(&self.dir.path().join("data/config")).unwrap()
    }

    fn write_status(&self, json: &str) {
        let path = self.dir.path().join("run/provisioning-status.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, json).unwrap();
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = tokio::time::timeout(
            Duration::from_secs(30),
            axum::body::to_bytes(res.into_body(), usize::MAX),
        )
        .await
        .expect("the body ends within 30 s")
        .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.call(request(Method::GET, path, &[], Body::empty()))
            .await
    }

    /// Posts the form `parts` (name, file name, value) with `headers`.
    async fn apply(
        &self,
        headers: &[(&str, &str)],
        parts: &[(&str, Option<&str>, &str)],
    ) -> (StatusCode, String) {
        let (content_type, body) = multipart(parts);
        let mut all = vec![("content-type", content_type.as_str())];
        all.extend_from_slice(headers);
        let (status, h, body) = self
            .call(request(
                Method::POST,
                console::APPLY,
                &all,
                Body::from(body),
            ))
            .await;
        // The framework's refusals (401, 404, 413) are JSON; the console's answers are HTML.
        if ![
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::PAYLOAD_TOO_LARGE,
        ]
        .contains(&status)
        {
            assert_eq!(h["content-type"], "text/html; charset=utf-8", "{body}");
        }
        (status, body)
    }

    /// Posts a pasted config with this process's token; the job id of the 202.
    async fn apply_pasted(&self, toml: &str) -> String {
        let token = self.api.bootstrap_token.clone();
        let (status, body) = self
            .apply(
                &[],
                &[("bootstrap_token", None, &token), ("config", None, toml)],
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        attribute(&body, "data-job").unwrap()
    }

    async fn wait(&self, id: &str) -> JobResponse {
        for _ in 0..1500 {
            if let Some(job) = self.api.jobs.get(id)
                && job.state.is_terminal()
            {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} did not end");
    }
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).unwrap()
}

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let boundary = "----atomix-console-test";
    let mut body = String::new();
    for (name, file, value) in parts {
        body.push_str(&format!("--{boundary}\r\n"));
        match file {
            Some(f) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            )),
        }
        body.push_str(value);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// The value of the first `name="…"` attribute in `html`.
fn attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    Some(html[start..].split('"').next()?.to_owned())
}

fn framework_404(status: StatusCode, body: &str) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["detail"], "Not Found");
}

#[tokio::test]
async fn the_page_its_assets_and_the_seed_problems_before_provisioning() {
    let d = Device::new();
    d.write_status(
        r#"{"state": "waiting", "problems": [{"origin": "the USB stick's config.toml <b>",
            "error": "config.toml:3:9: users.admin.shell: unknown shell \"<fish>\""}]}"#,
    );
    let (status, headers, page) = d.get(console::PAGE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    // The form and its token; nothing from the network, no inline script.
    assert!(page.contains(r#"action="/apply" enctype="multipart/form-data""#));
    assert_eq!(
        attribute(&page, "value").as_deref(),
        Some(d.api.bootstrap_token.as_str())
    );
    for field in [
        r#"name="config_file""#,
        r#"name="config""#,
        r#"id="drop-zone""#,
        r#"id="job-status""#,
    ] {
        assert!(page.contains(field), "{field}");
    }
    for attr in ["src=\"", "href=\""] {
        for value in page.split(attr).skip(1) {
            assert!(value.starts_with('/'), "{attr}{value}");
        }
    }
    assert!(!page.contains("unpkg"));
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains(r#"<script src="/assets/console.js" defer></script>"#));
    // First boot's problems, escaped.
    assert!(page.contains("Waiting for a configuration"));
    assert!(page.contains("the USB stick's config.toml &lt;b&gt;"));
    assert!(
        page.contains("config.toml:3:9: users.admin.shell: unknown shell &quot;&lt;fish&gt;&quot;")
    );
    assert!(!page.contains("<fish>") && !page.contains("<b>"));
    for (name, content_type, needle) in [
        ("console.css", "text/css; charset=utf-8", ".step-name"),
        (
            "console.js",
            "text/javascript; charset=utf-8",
            "EventSource",
        ),
        ("logo.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, headers, body) = d.get(&format!("/assets/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers["content-type"], content_type, "{name}");
        assert!(body.contains(needle), "{name}");
    }
    let (status, _, body) = d.get("/assets/atomixos.png").await;
    framework_404(status, &body);
    // Without a status file: the page says first boot has not reported.
    std::fs::remove_file(d.dir.path().join("run/provisioning-status.json")).unwrap();
    let (_, _, page) = d.get(console::PAGE).await;
    assert!(page.contains("First boot has not reported"));
}

#[tokio::test]
async fn the_browser_checks_refuse_other_hosts_and_origins() {
    let d = Device::new();
    let req = Request::builder()
        .uri(console::PAGE)
        .header("host", "evil.example")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = d.call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("bootstrap host is not allowed"), "{body}");
    let token = d.api.bootstrap_token.clone();
    let parts = [
        ("bootstrap_token", None, token.as_str()),
        ("config", None, MINIMAL),
    ];
    for (header, value, detail) in [
        (
            "origin",
            "http://evil.example",
            "bootstrap origin is not allowed",
        ),
        (
            "origin",
            "http://127.0.0.1:8081",
            "bootstrap origin is not allowed",
        ),
        ("origin", "null", "bootstrap origin is not allowed"),
        (
            "referer",
            "http://evil.example/form",
            "bootstrap referer is not allowed",
        ),
    ] {
        let (status, body) = d.apply(&[(header, value)], &parts).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["detail"], detail);
    }
    // The same origin passes.
    let (status, _) = d
        .apply(&[("origin", "http://127.0.0.1:8080")], &parts)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_form_token_and_a_missing_config() {
    let d = Device::new();
    for token in ["", "not-the-token"] {
        let (status, body) = d
            .apply(
                &[],
                &[("bootstrap_token", None, token), ("config", None, MINIMAL)],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("Invalid bootstrap token"), "{body}");
    }
    let token = d.api.bootstrap_token.clone();
    let (status, body) = d
        .apply(
            &[],
            &[
                ("bootstrap_token", None, &token),
                ("config_file", Some(""), ""),
                ("config", None, "  \n"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("No config provided"), "{body}");
    let (status, _, body) = d
        .call(request(
            Method::POST,
            console::APPLY,
            &[("content-type", "text/plain")],
            Body::from("config"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("The form could not be read"), "{body}");
    let (content_type, _) = multipart(&[]);
    let (status, _, body) = d
        .call(request(
            Method::POST,
            console::APPLY,
            &[("content-type", &content_type)],
            Body::from("------atomix-console-test\r\nbroken"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("The form could not be read"), "{body}");
    assert!(!d.api.jobs.busy());
}

#[tokio::test]
async fn a_form_over_the_upload_limit_is_413() {
    let d = Device::with(|s| s.limits.max_upload_bytes = 1024);
    let token = d.api.bootstrap_token.clone();
    let big = "# padding\n".repeat(200);
    let (status, body) = d
        .apply(
            &[],
            &[("bootstrap_token", None, &token), ("config", None, &big)],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status_code"], 413);
}

#[tokio::test]
async fn a_refused_upload_shows_every_error_with_its_line_escaped() {
    let d = Device::new();
    let token = d.api.bootstrap_token.clone();
    let (status, body) = d
        .apply(
            &[],
            &[
                ("bootstrap_token", None, &token),
                (
                    "config_file",
                    Some("<img src=x onerror=alert(1)>.toml"),
                    INVALID,
                ),
                ("config", None, MINIMAL),
            ],
        )
        .await;
    // The file wins over the pasted text.
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with(r#"<section id="job-status""#), "{body}");
    assert!(body.contains(r#"data-state="refused""#));
    assert!(body.contains("6 errors"), "{body}");
    // The hostile file name is not kept (the upload name rules), the hostile key is escaped.
    assert!(body.contains("<code>config.toml</code>"));
    assert!(
        !body.contains("<img") && !body.contains("<script>"),
        "{body}"
    );
    assert!(body.contains("users.&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"));
    // Every finding: its line:col, its message and its source line.
    assert_eq!(body.matches(r#"<li class="finding">"#).count(), 6);
    for (line, col, source) in [
        (5, 11, "ssh_key = &quot;not a key&quot;"),
        (6, 9, "shell = &quot;fish&quot;"),
        (
            8,
            8,
            "[users.&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;]",
        ),
        (9, 11, "isAdmin = &quot;yes&quot;"),
    ] {
        let loc = format!("line {line}, col {col}");
        assert!(body.contains(&loc), "{loc}\n{body}");
        assert!(
            body.contains(&format!(r#"<span class="gutter">{line}</span>{source}"#)),
            "{source}\n{body}"
        );
    }
    assert!(body.contains("unknown shell &quot;fish&quot;"));
    assert!(!d.api.jobs.busy());
    assert!(!d.root().active_config().exists());
}

#[tokio::test]
async fn a_pasted_config_streams_its_steps_to_the_forwarding_url() {
    let d = Device::new();
    let id = d.apply_pasted(MINIMAL).await;
    let (status, headers, stream) = d.get(&job_events_path(&id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    // SSE framing: every line of a fragment is its own `data:` line, never doubled; the
    // last event is `done`, its data the job's end.
    let events: Vec<&str> = stream.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.len() >= 2, "{stream}");
    assert!(!stream.contains("data: data:"), "{stream}");
    for event in &events[..events.len() - 1] {
        assert!(
            event.starts_with(r#"data: <section id="job-status""#),
            "{event}"
        );
        assert!(
            event
                .lines()
                .all(|l| l.starts_with("data: ") || l.starts_with(':'))
        );
    }
    assert_eq!(*events.last().unwrap(), "event: done\ndata: succeeded");
    let last = events[events.len() - 2];
    assert!(last.contains("Configuration applied"), "{last}");
    assert!(last.contains(r#"<a id="forwarding-url" href="http://172.20.30.1:8080">"#));
    for step in [
        "prepare",
        "write-users",
        "render-containers",
        "write-quadlets",
        "completed",
    ] {
        assert!(
            last.contains(&format!(r#"<span class="step-name">{step}</span>"#)),
            "{step}"
        );
    }
    // The stream read the terminal fragment once the device was provisioned: that was the one
    // read, and the console is closed.
    let (status, _, body) = d.get(&job_path(&id)).await;
    framework_404(status, &body);
    for path in [console::PAGE, "/assets/console.js"] {
        let (status, _, body) = d.get(path).await;
        framework_404(status, &body);
    }
    let token = d.api.bootstrap_token.clone();
    let (status, body) = d
        .apply(
            &[],
            &[("bootstrap_token", None, &token), ("config", None, MINIMAL)],
        )
        .await;
    framework_404(status, &body);
}

#[tokio::test]
async fn after_provisioning_a_terminal_fragment_is_read_once_and_unknown_jobs_reconnect() {
    let d = Device::new();
    let id = d.apply_pasted(MINIMAL).await;
    assert_eq!(d.wait(&id).await.state, JobState::Succeeded);
    let (status, _, body) = d.get(&job_path(&id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Configuration applied") && body.contains("http://172.20.30.1:8080"));
    let (status, _, body) = d.get(&job_path(&id)).await;
    framework_404(status, &body);
    let (status, _, body) = d.get(&job_events_path(&id)).await;
    framework_404(status, &body);
    // A job this process does not know (the service restarted): the reconnect fragment.
    let unknown = "00000000-0000-4000-8000-000000000001";
    let (status, _, body) = d.get(&job_path(unknown)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("reconnected after provisioning completed"),
        "{body}"
    );
    let (status, _, stream) = d.get(&job_events_path(unknown)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(stream.starts_with("data: <section") && stream.contains("reconnected after"));
    assert!(
        stream.ends_with("event: done\ndata: succeeded\n\n"),
        "{stream}"
    );
    // Admin signers alone (no config.toml) close the console without a reconnect.
    std::fs::remove_file(d.root().active_config()).unwrap();
    let (status, _, body) = d.get(&job_path(unknown)).await;
    framework_404(status, &body);
}

#[tokio::test]
async fn unknown_jobs_before_provisioning_are_a_404_fragment() {
    let d = Device::new();
    for path in [job_path("nope"), job_events_path("nope")] {
        let (status, headers, body) = d.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert!(body.contains("Provisioning job not found"), "{body}");
    }
}

#[tokio::test]
async fn a_second_apply_while_one_runs_is_409_and_a_running_job_stays_readable() {
    let d = Device::new();
    // The job waits for the config root's lock, held here (as by the CLI).
    let lock = d.root().lock().unwrap();
    let id = d.apply_pasted(MINIMAL).await;
    let token = d.api.bootstrap_token.clone();
    let (status, body) = d
        .apply(
            &[],
            &[("bootstrap_token", None, &token), ("config", None, MINIMAL)],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body.contains("A provision job is already running"),
        "{body}"
    );
    // A config appears meanwhile (another path provisioned the device): the running job's
    // fragment is still served.
    let config = d.root().active_config();
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, MINIMAL).unwrap();
    let (status, _, body) = d.get(&job_path(&id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Applying the configuration"), "{body}");
    drop(lock);
    d.wait(&id).await;
}

fn event(step: &str, message: &str) -> JobEvent {
    JobEvent {
        step: step.into(),
        elapsed_seconds: 0.5,
        message: Some(message.into()),
        service: None,
        mode: None,
        status: None,
    }
}

#[test]
fn fragments_escape_what_a_job_says() {
    let mut ev = event("service-restart", "<img src=x onerror=alert(1)>");
    ev.service = Some("<b>web</b>.service".into());
    ev.status = Some("failed".into());
    let failed = JobResponse {
        id: "\"><script>".into(),
        state: JobState::Failed,
        current_step: "<i>".into(),
        events: Some(vec![ev, event("failed", "activation failed: <u>")]),
        error: Some("activation failed: <script>alert(1)</script>".into()),
        result: None,
        rollback_status: Some("completed".into()),
        duration_seconds: Some(1.0),
        confirm_deadline: None,
    };
    let html = view::job(&failed).into_string();
    for raw in ["<script", "<img", "<b>", "<i>", "<u>"] {
        assert!(!html.contains(raw), "{raw} in {html}");
    }
    assert!(html.contains("Configuration not applied"));
    assert!(html.contains("activation failed: &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Rollback: completed"));
    assert!(html.contains(r#"data-job="&quot;&gt;&lt;script&gt;""#));
    let succeeded = JobResponse {
        state: JobState::Succeeded,
        error: None,
        rollback_status: None,
        result: Some(ProvisionResult {
            warnings: vec!["<w>".into()],
            reapply: Some(false),
            rolled_back: None,
            forwarding_url: Some("javascript:\"x\"".into()),
        }),
        ..failed
    };
    let html = view::job(&succeeded).into_string();
    assert!(html.contains("<li>&lt;w&gt;</li>"));
    // Only an http(s) URL becomes a link.
    assert!(!html.contains("href=\"javascript") && html.contains("javascript:&quot;x&quot;"));
    let report = atomix_api::ValidationResponse {
        ok: false,
        error: None,
        warnings: None,
        errors: Some(vec![]),
    };
    let html = view::refused("<name>", &report, None).into_string();
    assert!(html.contains("&lt;name&gt;") && !html.contains("<name>"));
}

#[tokio::test]
async fn the_openapi_document_leaves_the_console_out() {
    let d = Device::new();
    let (status, _, body) = d.get(routes::OPENAPI).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(path.starts_with("/api/"), "{path}");
    }
    assert!(!Path::new(&d.dir.path().join("data/config/config.toml")).exists());
}
