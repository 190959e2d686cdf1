//! T0/T1 of confirm-or-revert: in process with the engine's fakes (a risky re-apply held
//! until a signed confirmation by an admin of the new config; 409 for everything else meanwhile;
//! reverted at its deadline, or at once when its health fails; a change that is not risky not
//! held; a window a stopped service left open settled at the next start, for each way it can
//! have ended), and with the real `atomix-provision serve` killed inside a window, the
//! boot-time recovery run, and the service started again.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atomix_api::{JobResponse, JobState, routes, sha256_hex};
use atomix_config::source::Source;
use atomix_config::validate;
use atomix_provision::api::confirm::{REVERTED_AT_BOOT, REVERTED_AT_START};
use atomix_provision::api::error::AUTH_REQUIRED;
use atomix_provision::api::jobs::{AWAITING_STEP, CONFIRM_STEP, FAILED_STEP};
use atomix_provision::import::{self, Options};
use atomix_provision::store::{self, ConfigRoot, RealFs};
use axum::http::{Method, StatusCode};
use common::api::*;
use common::server::Server;
use common::sshkeys::{Key, config, keygen};
use serde_json::{Value, json};

/// A change of the host network: risky.
fn with_dns(toml: &str) -> String {
    format!("{toml}\n[network]\ndns_servers = [\"9.9.9.9\"]\n")
}

fn message<'j>(job: &'j JobResponse, step: &str) -> &'j str {
    job.events
        .iter()
        .flatten()
        .find(|e| e.step == step)
        .and_then(|e| e.message.as_deref())
        .unwrap_or_else(|| panic!("no {step} in {job:?}"))
}

fn assert_committed(root: &ConfigRoot) {
    assert!(!root.marker().exists() && !root.rollback().exists());
}

/// A device with the engine's fakes; `failing` fails its container.
fn device_with_engine(host: &Path, failing: &Arc<AtomicBool>) -> Device {
    std::fs::create_dir_all(host.join("home")).unwrap();
    Device::new(|s| s.engine = fake_engine(host, failing))
}

#[tokio::test]
async fn a_risky_reapply_awaits_a_signed_confirmation_by_an_admin_of_the_new_config() {
    let keys = tempfile::tempdir().unwrap();
    let old = keygen(keys.path(), "old", &["-t", "ed25519"]);
    let new = keygen(keys.path(), "new", &["-t", "ed25519"]);
    let host = tempfile::tempdir().unwrap();
    let d = device_with_engine(host.path(), &Arc::new(AtomicBool::new(false)));
    let toml = config(&old.public, "");
    d.provision(&toml).await;
    // The admin key rotated, the host network and the LAN (its NTP servers) changed.
    let next =
        with_dns(&config(&new.public, "")) + "\n[network.ntp]\nservers = [\"time.example.com\"]\n";
    let req = d
        .signed(
            &old,
            Method::POST,
            &format!("{}?confirm=600", routes::CONFIG),
            next.as_bytes(),
        )
        .await;
    let url = d.submit(req).await;
    let job = d
        .wait_until(&url, |j| j.state == JobState::AwaitingConfirmation)
        .await;
    let id = job.id.clone();
    assert!(job.confirm_deadline.is_some(), "{job:?}");
    let said = message(&job, AWAITING_STEP);
    assert!(
        said.starts_with(
            "the admin signers, the LAN, the host network changed: confirm with a signed POST"
        ),
        "{said}"
    );
    assert!(
        said.contains("; the LAN gateway is http://172.20.30.1:8080"),
        "{said}"
    );
    // Activated and healthy before the window opened.
    let before = steps(&job);
    for step in ["activate", "health-check", "service-status"] {
        assert!(before.contains(&step.to_owned()), "{step}: {before:?}");
    }
    assert!(!before.contains(&"cleanup".to_owned()), "{before:?}");
    // The promotion is pending on disk: a reboot now reverts.
    let root = d.root();
    assert!(root.marker().exists() && root.rollback().exists());
    assert_eq!(d.active_config(), next);
    // Everything else that changes the config waits: 409 saying why.
    let busy = format!("job {id} awaits confirmation");
    for (method, path, body) in [
        (Method::POST, routes::CONFIG, toml.as_bytes()),
        (
            Method::PUT,
            "/api/config/users/bob",
            br#"{"isAdmin": false}"#.as_slice(),
        ),
        (Method::GET, routes::EXPORT, b"".as_slice()),
    ] {
        let req = d.signed(&new, method, path, body).await;
        let (status, body) = d.json(req).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}");
        assert!(body["error"].as_str().unwrap().starts_with(&busy), "{body}");
    }
    // Who may confirm: signed, by an admin of the config it would keep.
    let confirm = routes::job_confirm(&id);
    let (status, body) = d.json(post(&confirm, b"")).await;
    assert_eq!(detail(status, &body), (401, AUTH_REQUIRED.to_owned()));
    let req = d.signed(&old, Method::POST, &confirm, b"").await;
    assert_eq!(d.json(req).await.0, StatusCode::UNAUTHORIZED);
    let req = d
        .signed(&new, Method::POST, &routes::job_confirm("nope"), b"")
        .await;
    assert_eq!(d.json(req).await.0, StatusCode::NOT_FOUND);
    let req = d.signed(&new, Method::POST, &confirm, b"").await;
    let (status, body) = d.json(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: JobResponse = serde_json::from_value(body).unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let steps = steps(&job);
    let tail: Vec<&str> = steps.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(tail, ["completed", "cleanup", CONFIRM_STEP]);
    assert_eq!(job.result.unwrap().reapply, Some(true));
    assert_committed(&root);
    assert_eq!(d.active_config(), next);
    // Once: a second confirmation is refused.
    let req = d.signed(&new, Method::POST, &confirm, b"").await;
    let (status, body) = d.json(req).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .ends_with("is not awaiting confirmation: it is succeeded"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unconfirmed_change_is_reverted_at_its_deadline() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let host = tempfile::tempdir().unwrap();
    let d = device_with_engine(host.path(), &Arc::new(AtomicBool::new(false)));
    let toml = config(&admin.public, "");
    d.provision(&toml).await;
    let next = with_dns(&toml);
    let req = d
        .signed(
            &admin,
            Method::PATCH,
            &format!("{}?confirm=10", routes::NETWORK),
            br#"{"dns_servers": ["9.9.9.9"]}"#,
        )
        .await;
    let url = d.submit(req).await;
    let held = d
        .wait_until(&url, |j| j.state == JobState::AwaitingConfirmation)
        .await;
    assert_eq!(d.active_config(), next);
    let job = d.wait(&url).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("not confirmed within 10 s: the previous config is restored")
    );
    assert_eq!(job.rollback_status.as_deref(), Some("completed"));
    assert_eq!(job.confirm_deadline, held.confirm_deadline);
    let steps = steps(&job);
    let from = steps.iter().position(|s| s == AWAITING_STEP).unwrap();
    let after: Vec<&str> = steps[from..].iter().map(String::as_str).collect();
    assert_eq!(after[..3], [AWAITING_STEP, CONFIRM_STEP, "rollback"]);
    assert!(after.contains(&"health-check"), "re-activated: {after:?}");
    assert_eq!(*after.last().unwrap(), FAILED_STEP);
    assert_eq!(d.active_config(), toml);
    assert_committed(&d.root());
    // Too late.
    let req = d
        .signed(&admin, Method::POST, &routes::job_confirm(&job.id), b"")
        .await;
    assert_eq!(d.json(req).await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_failed_health_check_reverts_at_once_and_a_safe_change_is_not_held() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let host = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let d = device_with_engine(host.path(), &failing);
    let toml = config(&admin.public, "");
    // The first provisioning has nothing to go back to.
    let job = d
        .apply(post(
            &format!("{}?confirm=60", routes::CONFIG),
            toml.as_bytes(),
        ))
        .await;
    assert_eq!(job.state, JobState::Succeeded);
    assert!(message(&job, CONFIRM_STEP).starts_with("not needed for the first provisioning"));
    // A change of a container only: committed without a window.
    let next = toml.replace("8081:80", "8082:80");
    let req = d
        .signed(
            &admin,
            Method::POST,
            &format!("{}?confirm=60", routes::CONFIG),
            next.as_bytes(),
        )
        .await;
    let job = d.apply(req).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert!(message(&job, CONFIRM_STEP).starts_with("not needed: "));
    assert_eq!(job.confirm_deadline, None);
    // A risky change whose container fails: reverted at once, never held.
    failing.store(true, Ordering::SeqCst);
    let req = d
        .signed(
            &admin,
            Method::POST,
            &format!("{}?confirm=600", routes::CONFIG),
            with_dns(&next).as_bytes(),
        )
        .await;
    let job = d.apply(req).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("activation failed: ")
    );
    assert!(!steps(&job).contains(&AWAITING_STEP.to_owned()));
    assert_eq!(d.active_config(), next);
    assert_committed(&d.root());
}

/// Leaves `root` as a window would: `next` (a risky change of the active config) promoted
/// and pending; the job record a stopped service left, awaiting confirmation.
fn leave_a_window(d: &Device, next: &str) -> String {
    let root = d.root();
    let runtime = root.active().to_string_lossy().into_owned();
    let source = Source {
        toml: next.to_owned(),
        payload: None,
    };
    let valid = validate::validate(next, &runtime).unwrap();
    let options = Options {
        unactivated_reapply: true,
        hold_risky: true,
        ..Options::default()
    };
    let imported = import::import(&RealFs, &root, &source, &valid, options, None).unwrap();
    // The service stops: the held promotion is left as it is.
    drop(imported.held.unwrap());
    assert!(root.marker().exists());
    let id = "00000000-0000-4000-8000-00000000c0f1";
    let record = json!({
        "id": id,
        "state": "awaiting-confirmation",
        "current_step": AWAITING_STEP,
        "events": [{"step": "running", "elapsed_seconds": 0.0},
                   {"step": AWAITING_STEP, "elapsed_seconds": 1.0}],
        "confirm_deadline": "2030-01-01T00:00:00Z",
        "submitted_at": 1.0,
        "confirmation": {
            "config_sha256": sha256_hex(next.as_bytes()),
            "result": {"warnings": [], "reapply": true, "rolled_back": false},
        },
    });
    let jobs = d.dir.path().join("data/provision-jobs");
    std::fs::write(jobs.join(format!("{id}.json")), record.to_string()).unwrap();
    id.to_owned()
}

#[tokio::test]
async fn a_window_a_stopped_service_left_open_is_settled_at_the_next_start() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("home")).unwrap();
    let engine = || fake_engine(host.path(), &Arc::new(AtomicBool::new(false)));
    let d = Device::new(|_| {});
    let toml = config(&admin.public, "");
    d.provision(&toml).await;
    let next = with_dns(&toml);
    let job_of = |api: &Arc<atomix_provision::api::Api>, id: &str| api.jobs.get(id).unwrap();

    // Only the service restarted: the promotion is still pending; reverted (and the previous
    // config activated again) before the service serves.
    let id = leave_a_window(&d, &next);
    let api = d.restart_with(|s| s.engine = engine());
    let job = job_of(&api, &id);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some(REVERTED_AT_START));
    assert_eq!(job.rollback_status.as_deref(), Some("completed"));
    let steps = steps(&job);
    for step in [
        CONFIRM_STEP,
        "rollback",
        "service-deploy",
        "health-check",
        FAILED_STEP,
    ] {
        assert!(steps.contains(&step.to_owned()), "{step}: {steps:?}");
    }
    assert!(!api.jobs.busy());
    assert_eq!(d.active_config(), toml);
    assert_committed(&d.root());

    // A reboot: the boot-time recovery restored the previous config first.
    let id = leave_a_window(&d, &next);
    let _lock = d.root().lock().unwrap();
    store::recover(&RealFs, &d.root()).unwrap();
    drop(_lock);
    assert_eq!(d.active_config(), toml);
    let api = d.restart_with(|s| s.engine = engine());
    let job = job_of(&api, &id);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some(REVERTED_AT_BOOT));
    assert_eq!(job.rollback_status.as_deref(), Some("completed"));

    // Confirmed and committed, but the service stopped before it recorded the end.
    let id = leave_a_window(&d, &next);
    store::cleanup(&RealFs, &d.root()).unwrap();
    let api = d.restart();
    let job = job_of(&api, &id);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result.unwrap().reapply, Some(true));
    assert_eq!(d.active_config(), next);
}

/// `atomix-provision recover ROOT`, as `atomix-config-recover.service` runs it at boot.
fn recover(root: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_atomix-provision"))
        .arg("recover")
        .arg(root)
        .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
        .status()
        .unwrap();
    assert!(status.success());
}

/// Submits `next` with `?confirm=600` to `server`, signed by `admin`, and waits for its window;
/// the job's URL.
fn held(server: &Server, admin: &Key, next: &str) -> String {
    let (status, accepted) = server.signed(
        admin,
        &server.nonce(),
        "POST",
        &format!("{}?confirm=600", routes::CONFIG),
        next.as_bytes(),
    );
    assert_eq!(status, 202, "{accepted}");
    let url = accepted["job_url"].as_str().unwrap().to_owned();
    server.wait_job(&url, |s| s == "awaiting-confirmation");
    url
}

#[test]
fn the_service_killed_inside_a_window_reverts_with_or_without_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keygen(dir.path(), "admin", &["-t", "ed25519"]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let root = ConfigRoot::unchecked(&data.join("config")).unwrap();
    let toml = config(&admin.public, "");
    let next = with_dns(&toml);
    let read = || std::fs::read_to_string(root.active_config()).unwrap();
    let server = Server::ours(root.active());
    let (status, accepted) = server.request("POST", routes::CONFIG, &[], toml.as_bytes());
    assert_eq!(status, 202);
    assert_eq!(server.job_state(&accepted), "succeeded");

    // Killed in the window, then a reboot: recovery puts the previous config back.
    let url = held(&server, &admin, &next);
    drop(server);
    assert_eq!(read(), next);
    assert!(root.marker().exists() && root.rollback().exists());
    recover(root.active());
    assert_eq!(read(), toml);
    let server = Server::ours(root.active());
    let job = server.wait_job(&url, |_| true);
    assert_eq!(
        (&job["state"], &job["error"], &job["rollback_status"]),
        (
            &json!("failed"),
            &json!(REVERTED_AT_BOOT),
            &json!("completed")
        )
    );

    // Killed in the window, and only the service restarts: it reverts before it serves.
    let url = held(&server, &admin, &next);
    drop(server);
    let server = Server::ours(root.active());
    let job: Value = server.wait_job(&url, |_| true);
    assert_eq!(
        (&job["state"], &job["error"], &job["rollback_status"]),
        (
            &json!("failed"),
            &json!(REVERTED_AT_START),
            &json!("completed")
        )
    );
    assert_eq!(read(), toml);
    assert!(!root.marker().exists() && !root.rollback().exists());
}
