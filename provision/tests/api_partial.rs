//! T0/T1 of the typed partial routes (spec 6.8), in process with signatures by the real
//! `ssh-keygen`: who may call them, every route editing the active config through the one import
//! path (its comments, order and non-ASCII kept, the bundle payload `files/` kept), the 400s
//! before any job, 409 while a job runs, and an update refused over a config that changed.

#![allow(clippy::unwrap_used)]

mod common;

use atomix_api::{JobState, routes};
use atomix_config::source::Source;
use atomix_config::validate;
use atomix_provision::api::error::{AUTH_REQUIRED, BAD_SIGNATURE, BUSY};
use atomix_provision::import::{self, ImportError, Options};
use atomix_provision::store::RealFs;
use axum::http::{Method, StatusCode};
use common::api::*;
use common::sshkeys::{Key, config, keygen};
use serde_json::{Value, json};

/// A config with comments and non-ASCII where the partial updates do not go.
fn commented(admin: &Key) -> String {
    config(&admin.public, "").replace(
        "[activation]",
        "# Who must run. Ünïcode 😀\n[activation] # the health gate",
    )
}

/// Every partial route with a body for it and the path it names.
fn every_route() -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::PUT,
            "/api/config/users/bob".into(),
            json!({"isAdmin": false, "shell": "sh"}),
        ),
        (
            Method::PATCH,
            routes::NETWORK.into(),
            json!({"dns_servers": ["9.9.9.9"]}),
        ),
        (
            Method::PUT,
            "/api/config/container-volumes/data".into(),
            json!({"Volume": {"Label": "app=Ünïcode 😀"}}),
        ),
        (
            Method::PUT,
            "/api/config/container-networks/appnet".into(),
            json!({"Network": {"Subnet": "10.89.0.0/24"}}),
        ),
        (
            Method::PUT,
            "/api/config/containers/app".into(),
            json!({"privileged": false,
                   "Container": {"Image": "localhost/app:1", "Network": "appnet",
                                 "Volume": ["data:/data"]}}),
        ),
        (
            Method::DELETE,
            "/api/config/containers/app".into(),
            json!({}),
        ),
        (
            Method::DELETE,
            "/api/config/container-networks/appnet".into(),
            json!({}),
        ),
        (
            Method::DELETE,
            "/api/config/container-volumes/data".into(),
            json!({}),
        ),
        (Method::DELETE, "/api/config/users/bob".into(), json!({})),
    ]
}

#[tokio::test]
async fn the_partial_routes_need_an_admins_signature() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let guest = keygen(keys.path(), "guest", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    for (method, path, body) in every_route() {
        let body = body.to_string();
        let (status, answer) = d
            .json(request(method.clone(), &path, body.as_bytes()))
            .await;
        assert_eq!(
            detail(status, &answer),
            (401, AUTH_REQUIRED.to_owned()),
            "{method} {path} before provisioning"
        );
    }
    d.provision(&config(&admin.public, "")).await;
    for (method, path, body) in every_route() {
        let body = body.to_string();
        let (status, answer) = d
            .json(request(method.clone(), &path, body.as_bytes()))
            .await;
        assert_eq!(detail(status, &answer), (401, AUTH_REQUIRED.to_owned()));
        let req = d
            .signed(&guest, method.clone(), &path, body.as_bytes())
            .await;
        let (status, answer) = d.json(req).await;
        assert_eq!(
            detail(status, &answer),
            (401, BAD_SIGNATURE.to_owned()),
            "{method} {path} by a key that is not an admin's"
        );
    }
    assert!(!d.api.jobs.busy());
}

#[tokio::test]
async fn every_partial_route_edits_the_active_config_keeping_comments_and_payload() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    let toml = commented(&admin);
    d.provision(&toml).await;
    // What a bundle's import left: its payload.
    let files = d.root().active().join("files");
    std::fs::create_dir_all(files.join("app")).unwrap();
    std::fs::write(files.join("app/config.yaml"), "a: 1\n").unwrap();
    let mut previous = toml.clone();
    for (method, path, body) in every_route() {
        let body = body.to_string();
        let req = d
            .signed(&admin, method.clone(), &path, body.as_bytes())
            .await;
        let job = d.apply(req).await;
        assert_eq!(job.state, JobState::Succeeded, "{method} {path}: {job:?}");
        let events = job.events.as_deref().unwrap();
        assert_eq!(
            events[0].message.as_deref(),
            Some(format!("{method} {path}: editing the active config.toml").as_str())
        );
        let steps = steps(&job);
        assert!(steps.contains(&"copy-files".to_owned()), "{steps:?}");
        assert_eq!(job.result.as_ref().unwrap().reapply, Some(true));
        let now = d.active_config();
        assert_ne!(now, previous, "{method} {path} changed nothing");
        assert!(
            now.contains("# Who must run. Ünïcode 😀\n[activation] # the health gate\n"),
            "{method} {path}:\n{now}"
        );
        assert_eq!(
            std::fs::read_to_string(files.join("app/config.yaml")).unwrap(),
            "a: 1\n",
            "{method} {path} kept the payload"
        );
        previous = now;
    }
    // Every PUT undone by its DELETE: the text is the original's but for the network patch,
    // which went at the end.
    assert_eq!(
        d.active_config(),
        format!("{toml}\n[network]\ndns_servers = [\"9.9.9.9\"]\n")
    );
    // The user, the network and the Quadlet units reached the rendered root on the way.
    let (status, body) = d
        .json(
            d.signed(
                &admin,
                Method::PUT,
                "/api/config/users/bob",
                br#"{"isAdmin": false}"#,
            )
            .await,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    d.wait(body["job_url"].as_str().unwrap()).await;
    let users = std::fs::read_to_string(d.root().active().join("users.json")).unwrap();
    assert!(users.contains("\"bob\""), "{users}");
    // A full re-apply of a plain config.toml drops the payload, as the original's does.
    let req = d
        .signed(&admin, Method::POST, routes::CONFIG, toml.as_bytes())
        .await;
    assert_eq!(d.apply(req).await.state, JobState::Succeeded);
    assert!(!files.exists());
}

#[tokio::test]
async fn refused_partial_requests_are_400_before_any_job() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    let toml = commented(&admin);
    d.provision(&toml).await;
    let jobs_before = std::fs::read_dir(d.dir.path().join("data/provision-jobs"))
        .unwrap()
        .count();
    let refused = |method: Method, path: &'static str, body: &'static [u8]| {
        let (d, admin) = (&d, &admin);
        async move {
            let req = d.signed(admin, method, path, body).await;
            let (status, answer) = d.json(req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
            answer
        }
    };
    // Not JSON: the framework's shape.
    let answer = refused(Method::PATCH, routes::NETWORK, b"{dns").await;
    let (_, said) = detail(StatusCode::BAD_REQUEST, &answer);
    assert!(said.starts_with("the request body is not JSON: "), "{said}");
    // The request itself, with what is wrong and where.
    let report = |answer: &Value| {
        assert_eq!(answer["ok"], false, "{answer}");
        let errors = answer["errors"].as_array().unwrap();
        (
            answer["error"].as_str().unwrap().to_owned(),
            errors[0]["path"].as_str().map(str::to_owned),
        )
    };
    let answer = refused(Method::PUT, "/api/config/users/bob", b"[1]").await;
    assert_eq!(
        report(&answer),
        ("the request body must be a JSON object".to_owned(), None)
    );
    let answer = refused(
        Method::PUT,
        "/api/config/users/bob",
        br#"{"isAdmin": false, "sudo": true}"#,
    )
    .await;
    assert_eq!(
        report(&answer),
        (
            "unsupported partial request keys: sudo (allowed: isAdmin, ssh_key, shell)".to_owned(),
            Some("users.bob".to_owned())
        )
    );
    let answer = refused(Method::PUT, "/api/config/users/bob", br#"{"shell": "sh"}"#).await;
    assert_eq!(
        report(&answer).0,
        "user payload missing required key: isAdmin"
    );
    let answer = refused(Method::DELETE, "/api/config/users/Root", b"").await;
    assert!(report(&answer).0.contains("invalid user name"), "{answer}");
    let answer = refused(
        Method::PUT,
        "/api/config/containers/a.b",
        br#"{"privileged": false, "Container": {}}"#,
    )
    .await;
    assert!(report(&answer).0.contains("invalid unit name"), "{answer}");
    let answer = refused(
        Method::PUT,
        "/api/config/users/bob",
        br#"{"isAdmin": false, "shell": null}"#,
    )
    .await;
    assert_eq!(report(&answer).1.as_deref(), Some("users.bob.shell"));
    // A config the change makes invalid: the whole report, located in the new text.
    let answer = refused(
        Method::PUT,
        "/api/config/users/bob",
        br#"{"isAdmin": "yes", "ssh_key": "ssh-ed25519 AAAA"}"#,
    )
    .await;
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{answer}");
    assert_eq!(errors[0]["path"], "users.bob.isAdmin");
    assert!(errors[0]["line"].as_u64().unwrap() > 1, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("config.toml: 2 errors\n"),
        "{answer}"
    );
    // The last admin removed; the required container removed.
    let answer = refused(Method::DELETE, "/api/config/users/admin", b"").await;
    assert!(
        answer["error"].as_str().unwrap().contains("admin"),
        "{answer}"
    );
    let answer = refused(Method::DELETE, "/api/config/containers/web", b"").await;
    assert!(
        answer["error"].as_str().unwrap().contains("web"),
        "{answer}"
    );
    // A bad confirm window.
    let answer = refused(
        Method::PATCH,
        "/api/config/network?confirm=5",
        br#"{"dns_servers": []}"#,
    )
    .await;
    assert!(
        detail(StatusCode::BAD_REQUEST, &answer)
            .1
            .starts_with("confirm: ")
    );
    // No job was made, nothing changed.
    assert!(!d.api.jobs.busy());
    let jobs_after = std::fs::read_dir(d.dir.path().join("data/provision-jobs"))
        .unwrap()
        .count();
    assert_eq!(jobs_after, jobs_before);
    assert_eq!(d.active_config(), toml);
}

#[tokio::test]
async fn a_partial_update_while_a_job_runs_is_409() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    let toml = config(&admin.public, "");
    d.provision(&toml).await;
    // The job waits for the config root's lock, held here (as by the CLI).
    let lock = d.root().lock().unwrap();
    let req = d
        .signed(&admin, Method::POST, routes::CONFIG, toml.as_bytes())
        .await;
    let url = d.submit(req).await;
    let req = d
        .signed(
            &admin,
            Method::PUT,
            "/api/config/users/bob",
            br#"{"isAdmin": false}"#,
        )
        .await;
    let (status, body) = d.json(req).await;
    assert_eq!(
        (status, body),
        (StatusCode::CONFLICT, json!({"error": BUSY}))
    );
    drop(lock);
    assert_eq!(d.wait(&url).await.state, JobState::Succeeded);
}

#[test]
fn a_partial_update_is_imported_only_over_the_config_it_was_made_from() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let dir = tempfile::tempdir().unwrap();
    let root = root_of(dir.path());
    let toml = config(&admin.public, "");
    let runtime = root.active().to_string_lossy().into_owned();
    let import = |text: &str, options: Options<'_>| {
        let source = Source {
            toml: text.to_owned(),
            payload: None,
        };
        let valid = validate::validate(text, &runtime).unwrap();
        import::import(&RealFs, &root, &source, &valid, options, None)
    };
    let base = Options {
        unactivated_reapply: true,
        ..Options::default()
    };
    import(&toml, base).unwrap();
    let other = toml.replace("8081:80", "8082:80");
    import(&other, base).unwrap();
    // Made from `toml`, which is not the active config any more.
    let edited = toml.replace("8081:80", "8083:80");
    let err = import(
        &edited,
        Options {
            based_on: Some(toml.as_bytes()),
            keep_payload: true,
            ..base
        },
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::Changed(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(root.active_config()).unwrap(),
        other
    );
    assert!(!root.candidate().exists() && !root.marker().exists());
    // Made from the active one: imported.
    let edited = other.replace("8082:80", "8083:80");
    import(
        &edited,
        Options {
            based_on: Some(other.as_bytes()),
            keep_payload: true,
            ..base
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.active_config()).unwrap(),
        edited
    );
}
