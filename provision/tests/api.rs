//! T0/T1 of the provisioning API, in process (`tower::ServiceExt::oneshot` on the router):
//! every route and status code, signatures made by the real `ssh-keygen -Y sign` (ed25519,
//! RSA 3072, ECDSA), the nonce rules, the browser checks before provisioning, the 400 report,
//! single flight, durable jobs across a restart, `--activation none`, and the engine's events
//! reaching a job (with fakes).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atomix_api::{HEADER_FILENAME, JobResponse, JobState, routes, signed_message};
use atomix_provision::api::error::{
    AUTH_REQUIRED, BAD_ENCODING, BAD_NONCE, BAD_SIGNATURE, BUSY, JOB_NOT_FOUND, SIGNERS_UNAVAILABLE,
};
use atomix_provision::api::jobs::{FAILED_STEP, INTERRUPTED};
use atomix_provision::api::origin::{HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED};
use atomix_provision::api::{Settings, router, router_with};
use axum::Router;
use axum::http::{Method, StatusCode};
use base64ct::{Base64, Encoding as _};
use common::api::*;
use common::sshkeys::{MINIMAL, config, keygen, sign, sign_ns};
use serde_json::{Value, json};

#[tokio::test]
async fn health_nonce_openapi_and_unknown_routes() {
    let d = Device::new(|_| {});
    let (status, body) = d.json(get(routes::HEALTH)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = d.json(get(routes::NONCE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_eq!(body["nonce"].as_str().unwrap().len(), 43);
    let (status, body) = d.json(get("/api/nope")).await;
    assert_eq!(detail(status, &body), (404, "Not Found".to_owned()));
    let (status, body) = d.json(post(routes::HEALTH, b"")).await;
    assert_eq!(
        detail(status, &body),
        (405, "Method Not Allowed".to_owned())
    );
    let (status, body) = d.json(get(&routes::job("nope"))).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": JOB_NOT_FOUND}))
    );
    // Routes added on top get the same shapes.
    let more = Router::new().route("/api/more", axum::routing::get(|| async { "more" }));
    let app = router_with(Arc::clone(&d.api), more);
    assert_eq!(call(&app, get("/api/more")).await.0, StatusCode::OK);
    let (status, _, body) = call(&app, post("/api/more", b"")).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        detail(status, &body),
        (405, "Method Not Allowed".to_owned())
    );
}

#[tokio::test]
async fn the_openapi_document_keeps_the_originals_contract_and_every_operation_is_routed() {
    let d = Device::new(|_| {});
    let (status, doc) = d.json(get(routes::OPENAPI)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            ops.push((
                method.to_uppercase(),
                path.clone(),
                op["operationId"].as_str().unwrap().to_owned(),
                op["tags"][0].as_str().unwrap().to_owned(),
            ));
            // Routed: neither the framework's 404 nor a 405.
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{job_id}", "x").replace("{name}", "x");
            let (status, _, body) = d.call(request(m, &concrete, b"")).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !String::from_utf8_lossy(&body).contains("\"Not Found\""),
                "{method} {path} is not routed"
            );
        }
    }
    ops.sort();
    let expected = [
        (
            "DELETE",
            "/api/config/container-networks/{name}",
            "configContainerNetworksDelete",
            "config",
        ),
        (
            "DELETE",
            "/api/config/container-volumes/{name}",
            "configContainerVolumesDelete",
            "config",
        ),
        (
            "DELETE",
            "/api/config/containers/{name}",
            "configContainersDelete",
            "config",
        ),
        (
            "DELETE",
            "/api/config/users/{name}",
            "configUsersDelete",
            "config",
        ),
        ("GET", "/api/config/export", "configExport", "config"),
        ("GET", "/api/health", "systemHealth", "system"),
        ("GET", "/api/jobs/{job_id}", "jobsGet", "jobs"),
        ("GET", "/api/nonce", "authIssueNonce", "auth"),
        (
            "PATCH",
            "/api/config/network",
            "configNetworkPatch",
            "config",
        ),
        ("POST", "/api/config", "configSubmit", "config"),
        ("POST", "/api/jobs/{job_id}/confirm", "jobsConfirm", "jobs"),
        ("POST", "/api/validate", "configValidate", "config"),
        (
            "PUT",
            "/api/config/container-networks/{name}",
            "configContainerNetworksPut",
            "config",
        ),
        (
            "PUT",
            "/api/config/container-volumes/{name}",
            "configContainerVolumesPut",
            "config",
        ),
        (
            "PUT",
            "/api/config/containers/{name}",
            "configContainersPut",
            "config",
        ),
        (
            "PUT",
            "/api/config/users/{name}",
            "configUsersPut",
            "config",
        ),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(m, p, i, t)| (m.to_string(), p.to_string(), i.to_string(), t.to_string()))
        .collect();
    assert_eq!(ops, expected);
    let submit = &doc["paths"]["/api/config"]["post"];
    assert_eq!(
        submit["requestBody"]["content"]["application/octet-stream"]["schema"]["format"],
        "binary"
    );
    let names: Vec<&str> = submit["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "confirm",
            "x-config-filename",
            "x-atomixos-nonce",
            "x-atomixos-signature"
        ]
    );
    // The partial routes' bodies: the original's, but a user's ssh_key is not required.
    let body = |path: &str, method: &str| {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let user = body("/api/config/users/{name}", "put");
    assert_eq!(user["additionalProperties"], false);
    assert_eq!(user["required"], json!(["isAdmin"]));
    let container = body("/api/config/containers/{name}", "put");
    assert_eq!(container["required"], json!(["privileged", "Container"]));
    assert_eq!(
        body("/api/config/container-volumes/{name}", "put")["required"],
        json!(["Volume"])
    );
    let network = body("/api/config/network", "patch");
    assert_eq!(network["properties"].as_object().unwrap().len(), 7);
    assert_eq!(network["additionalProperties"], false);
    let delete = &doc["paths"]["/api/config/users/{name}"]["delete"];
    assert!(delete.get("requestBody").is_none());
    assert_eq!(delete["parameters"][0]["name"], "name");
    assert_eq!(
        delete["parameters"].as_array().unwrap().last().unwrap()["required"],
        true
    );
    assert_eq!(
        submit["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ValidationResponseBody"
    );
    assert_eq!(
        submit["responses"]["202"]["headers"]["Location"]["schema"]["type"],
        "string"
    );
    let validate = &doc["paths"]["/api/validate"]["post"];
    assert_eq!(validate["parameters"][1]["required"], true);
    for schema in [
        "NonceResponseBody",
        "SubmitConfigResponseBody",
        "ValidationResponseBody",
        "JobResponseBody",
        "FrameworkErrorResponseBody",
        "ApiErrorResponseBody",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn before_provisioning_only_the_initial_import_is_open() {
    let d = Device::new(|_| {});
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    for req in [
        post(routes::VALIDATE, MINIMAL.as_bytes()),
        get(routes::EXPORT),
    ] {
        let (status, body) = d.json(req).await;
        assert_eq!(detail(status, &body), (401, AUTH_REQUIRED.to_owned()));
    }
    // The browser protections.
    let mut evil = post(routes::CONFIG, MINIMAL.as_bytes());
    evil.headers_mut()
        .insert("host", "evil.example".parse().unwrap());
    let (status, body) = d.json(evil).await;
    assert_eq!(detail(status, &body), (401, HOST_NOT_ALLOWED.to_owned()));
    let mut null = post(routes::CONFIG, MINIMAL.as_bytes());
    null.headers_mut().insert("origin", "null".parse().unwrap());
    let (status, body) = d.json(null).await;
    assert_eq!(detail(status, &body), (401, ORIGIN_NOT_ALLOWED.to_owned()));
    // A refused config: 400 with every error located, and no job.
    let bad = config(&admin.public, "").replace("version = 1", "version = 2\nextra = 1");
    let (status, body) = d.json(post(routes::CONFIG, bad.as_bytes())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ok"], false);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(
        (&errors[0]["path"], &errors[0]["line"], &errors[0]["col"]),
        (&json!("version"), &json!(2), &json!(11))
    );
    assert_eq!(errors[1]["path"], "extra");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("config.toml: 2 errors\nconfig.toml:2:11: version: "),
        "{body}"
    );
    assert!(!d.api.jobs.busy());
    assert!(!d.root().active().exists());
    // A config that is not UTF-8 nor a bundle, named as one.
    let mut gz = post(routes::CONFIG, b"not a bundle");
    gz.headers_mut()
        .insert(HEADER_FILENAME, "seed.tar.gz".parse().unwrap());
    let (status, body) = d.json(gz).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["severity"], "error");
    // The initial import: 202, a job, its events in the original's steps.
    let job = d.provision(&config(&admin.public, "")).await;
    let steps = steps(&job);
    for step in [
        "prepare",
        "validate",
        "running",
        "recover",
        "write-candidate",
        "write-config",
        "write-admin-signers",
        "write-users",
        "render-containers",
        "write-quadlets",
        "promote",
        "activate",
        "complete",
    ] {
        assert!(steps.contains(&step.to_owned()), "{step} not in {steps:?}");
    }
    assert_eq!(steps.last().unwrap(), "completed");
    assert_eq!(job.current_step, "completed");
    let result = job.result.unwrap();
    assert_eq!(result.reapply, Some(false));
    assert_eq!(
        result.forwarding_url.as_deref(),
        Some("http://172.20.30.1:8080")
    );
    assert!(job.duration_seconds.is_some());
    assert_eq!(
        std::fs::read_to_string(d.root().active_config()).unwrap(),
        config(&admin.public, "")
    );
    // Provisioned: nothing is unauthenticated any more.
    let (status, body) = d.json(post(routes::CONFIG, MINIMAL.as_bytes())).await;
    assert_eq!(detail(status, &body), (401, AUTH_REQUIRED.to_owned()));
}

#[tokio::test]
async fn an_unauthenticated_import_never_reapplies() {
    // The config appears (the CLI, first boot) between the guard and the job: the job, under
    // the lock, refuses to re-apply.
    let d = Device::new(|_| {});
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let lock = d.root().lock().unwrap();
    let (status, _, body) = d
        .call(post(routes::CONFIG, config(&admin.public, "").as_bytes()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let url = serde_json::from_slice::<Value>(&body).unwrap()["job_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = d.root();
    std::fs::create_dir_all(root.active()).unwrap();
    std::fs::write(root.active_config(), "version = 1\n").unwrap();
    drop(lock);
    let job = d.wait(&url).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("config already provisioned; reapply requires authenticated API access")
    );
    assert_eq!(steps(&job).last().unwrap(), FAILED_STEP);
    assert_eq!(job.rollback_status, None);
    assert_eq!(
        std::fs::read_to_string(root.active_config()).unwrap(),
        "version = 1\n"
    );
}

#[tokio::test]
async fn every_key_type_signs_and_activation_none_reapplies() {
    let d = Device::new(|_| {});
    let keys = tempfile::tempdir().unwrap();
    let ed = keygen(keys.path(), "ed", &["-t", "ed25519"]);
    let rsa = keygen(keys.path(), "rsa", &["-t", "rsa", "-b", "3072"]);
    let ecdsa = keygen(keys.path(), "ecdsa", &["-t", "ecdsa", "-b", "384"]);
    let extra = format!(
        "[users.rsaadmin]\nisAdmin = true\nssh_key = \"{}\"\n\n\
         [users.ecadmin]\nisAdmin = true\nssh_key = \"{}\"\n",
        rsa.public, ecdsa.public
    );
    let toml = config(&ed.public, &extra);
    d.provision(&toml).await;
    for key in [&ed, &rsa, &ecdsa] {
        let req = d
            .signed(key, Method::POST, routes::VALIDATE, toml.as_bytes())
            .await;
        let (status, body) = d.json(req).await;
        assert_eq!(status, StatusCode::OK, "{} {body}", key.public);
        assert_eq!(body, json!({"ok": true, "warnings": []}));
    }
    // A signed validate of a refused config: 400 with the report.
    let bad = toml.replace("isAdmin = true", "isAdmin = \"yes\"");
    let req = d
        .signed(&ed, Method::POST, routes::VALIDATE, bad.as_bytes())
        .await;
    let (status, body) = d.json(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["ok"], false);
    assert_eq!(body["errors"].as_array().unwrap().len(), 3, "{body}");
    // A signed re-apply without activation commits, and says so.
    let next = toml.replace("8081:80", "8082:80");
    let req = d
        .signed(&rsa, Method::POST, routes::CONFIG, next.as_bytes())
        .await;
    let job = d.apply(req).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let result = job.result.as_ref().unwrap();
    assert_eq!(
        (result.reapply, result.rolled_back),
        (Some(true), Some(false))
    );
    let activate = job
        .events
        .iter()
        .flatten()
        .find(|e| e.step == "activate")
        .unwrap();
    assert!(
        activate
            .message
            .as_deref()
            .unwrap()
            .contains("--activation none"),
        "{activate:?}"
    );
    assert_eq!(
        std::fs::read_to_string(d.root().active_config()).unwrap(),
        next
    );
    // Export, signed over the empty body.
    let req = d.signed(&ecdsa, Method::GET, routes::EXPORT, b"").await;
    let (status, headers, body) = d.call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/toml");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"config.toml\""
    );
    assert_eq!(String::from_utf8(body).unwrap(), next);
}

#[tokio::test]
async fn refused_signatures() {
    let d = Device::new(|_| {});
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let guest = keygen(keys.path(), "guest", &["-t", "ed25519"]);
    let toml = config(
        &admin.public,
        &format!(
            "[users.guest]\nisAdmin = false\nssh_key = \"{}\"\n",
            guest.public
        ),
    );
    d.provision(&toml).await;
    let body = toml.as_bytes();
    let refused = |detail_wanted: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(detail(status, &body), (401, detail_wanted.to_owned()));
        }
    };
    // Missing headers.
    refused(AUTH_REQUIRED)(d.json(post(routes::VALIDATE, body)).await);
    let nonce = d.nonce().await;
    refused(AUTH_REQUIRED)(
        d.json(with_auth(post(routes::VALIDATE, body), &nonce, ""))
            .await,
    );
    // Replay: the first use passes, the second is refused.
    let nonce = d.nonce().await;
    let first = signed_with(&admin, &nonce, Method::POST, routes::VALIDATE, body);
    assert_eq!(d.json(first).await.0, StatusCode::OK);
    let again = signed_with(&admin, &nonce, Method::POST, routes::VALIDATE, body);
    refused(BAD_NONCE)(d.json(again).await);
    // An unknown nonce.
    refused(BAD_NONCE)(
        d.json(signed_with(
            &admin,
            "made-up",
            Method::POST,
            routes::VALIDATE,
            body,
        ))
        .await,
    );
    // A tampered body.
    let nonce = d.nonce().await;
    let sig = sign(&admin, &signed_message(&nonce, routes::VALIDATE, body));
    let tampered = with_auth(post(routes::VALIDATE, b"version = 1\n"), &nonce, &sig);
    refused(BAD_SIGNATURE)(d.json(tampered).await);
    // Signed for another path.
    let nonce = d.nonce().await;
    let sig = sign(&admin, &signed_message(&nonce, routes::CONFIG, body));
    refused(BAD_SIGNATURE)(
        d.json(with_auth(post(routes::VALIDATE, body), &nonce, &sig))
            .await,
    );
    // Another namespace.
    let nonce = d.nonce().await;
    let sig = sign_ns(
        &admin,
        &signed_message(&nonce, routes::VALIDATE, body),
        "file",
    );
    refused(BAD_SIGNATURE)(
        d.json(with_auth(post(routes::VALIDATE, body), &nonce, &sig))
            .await,
    );
    // A user who is not an admin.
    let req = d.signed(&guest, Method::POST, routes::VALIDATE, body).await;
    refused(BAD_SIGNATURE)(d.json(req).await);
    // Not strict base64; then base64 of something that is not a signature.
    let nonce = d.nonce().await;
    refused(BAD_ENCODING)(
        d.json(with_auth(post(routes::VALIDATE, body), &nonce, "!!"))
            .await,
    );
    let nonce = d.nonce().await;
    let junk = Base64::encode_string(b"junk");
    refused(BAD_SIGNATURE)(
        d.json(with_auth(post(routes::VALIDATE, body), &nonce, &junk))
            .await,
    );
    // Every refusal burned its nonce, but for the request without a signature, refused
    // before its nonce was looked at (as the original).
    assert_eq!(d.api.nonces.outstanding(), 1);
}

#[tokio::test]
async fn expired_nonces_and_the_nonce_limits() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let toml = config(&admin.public, "");
    // TTL 0: every nonce is already expired.
    let d = Device::new(|s| s.nonces.ttl = Duration::ZERO);
    d.provision(&toml).await;
    let req = d
        .signed(&admin, Method::POST, routes::VALIDATE, toml.as_bytes())
        .await;
    let (status, body) = d.json(req).await;
    assert_eq!(detail(status, &body), (401, BAD_NONCE.to_owned()));
    // Global limit 2: the oldest is evicted.
    let d = Device::new(|s| s.nonces.max = 2);
    d.provision(&toml).await;
    let (n1, n2, n3) = (d.nonce().await, d.nonce().await, d.nonce().await);
    let use_nonce =
        |n: &str| signed_with(&admin, n, Method::POST, routes::VALIDATE, toml.as_bytes());
    assert_eq!(d.json(use_nonce(&n1)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(d.json(use_nonce(&n2)).await.0, StatusCode::OK);
    assert_eq!(d.json(use_nonce(&n3)).await.0, StatusCode::OK);
    // Per client 1: a client's second nonce evicts its first only.
    let d = Device::new(|s| s.nonces.per_client = 1);
    d.provision(&toml).await;
    let nonce_for = |ip: &'static str| {
        let d = &d;
        async move {
            let (_, body) = d.json(from_client(get(routes::NONCE), ip)).await;
            body["nonce"].as_str().unwrap().to_owned()
        }
    };
    let a1 = nonce_for("10.0.0.1").await;
    let b1 = nonce_for("10.0.0.2").await;
    let a2 = nonce_for("10.0.0.1").await;
    assert_eq!(d.json(use_nonce(&a1)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(d.json(use_nonce(&b1)).await.0, StatusCode::OK);
    assert_eq!(d.json(use_nonce(&a2)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let toml = config(&admin.public, "");
    let d = Device::new(|s| s.limits.max_upload_bytes = toml.len() as u64);
    let big = vec![b'#'; toml.len() + 1];
    let (status, body) = d.json(post(routes::CONFIG, &big)).await;
    assert_eq!(
        detail(status, &body),
        (413, "Request Entity Too Large".to_owned())
    );
    d.provision(&toml).await;
    let req = d.signed(&admin, Method::POST, routes::VALIDATE, &big).await;
    let (status, body) = d.json(req).await;
    assert_eq!(
        detail(status, &body),
        (413, "Request Entity Too Large".to_owned())
    );
    // The real default: 32 MiB.
    assert_eq!(
        Settings::new(d.root()).limits.max_upload_bytes,
        32 * 1024 * 1024
    );
}

#[tokio::test]
async fn missing_signers_on_a_provisioned_device_fail_closed() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let toml = config(&admin.public, "");
    let d = Device::new(|_| {});
    d.provision(&toml).await;
    let signers = d.root().active().join("admin-signers");
    std::fs::remove_file(&signers).unwrap();
    let unavailable = |(status, body): (StatusCode, Value)| {
        assert_eq!(detail(status, &body), (401, SIGNERS_UNAVAILABLE.to_owned()));
    };
    unavailable(d.json(post(routes::CONFIG, toml.as_bytes())).await);
    unavailable(d.json(post(routes::VALIDATE, toml.as_bytes())).await);
    // Seen in this process: even without config.toml, still closed.
    std::fs::remove_file(d.root().active_config()).unwrap();
    unavailable(d.json(post(routes::CONFIG, toml.as_bytes())).await);
    // A new process over a provisioned root without signers: closed too.
    std::fs::write(d.root().active_config(), &toml).unwrap();
    let after = router(d.restart());
    let (status, _, body) = call(&after, post(routes::CONFIG, toml.as_bytes())).await;
    unavailable((status, serde_json::from_slice(&body).unwrap()));
    // An empty file is no signers.
    std::fs::write(&signers, "\n\n").unwrap();
    let (status, _, body) = call(&after, post(routes::CONFIG, toml.as_bytes())).await;
    unavailable((status, serde_json::from_slice(&body).unwrap()));
}

#[tokio::test]
async fn a_second_submit_while_one_runs_is_409() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let toml = config(&admin.public, "");
    let d = Device::new(|_| {});
    d.provision(&toml).await;
    // The job waits for the config root's lock, held here (as by the CLI).
    let lock = d.root().lock().unwrap();
    let first = d
        .signed(&admin, Method::POST, routes::CONFIG, toml.as_bytes())
        .await;
    let (status, _, body) = d.call(first).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let url = serde_json::from_slice::<Value>(&body).unwrap()["job_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = d
        .signed(&admin, Method::POST, routes::CONFIG, toml.as_bytes())
        .await;
    let (status, body) = d.json(second).await;
    assert_eq!(
        (status, body),
        (StatusCode::CONFLICT, json!({"error": BUSY}))
    );
    drop(lock);
    assert_eq!(d.wait(&url).await.state, JobState::Succeeded);
    let third = d
        .signed(&admin, Method::POST, routes::CONFIG, toml.as_bytes())
        .await;
    assert_eq!(d.apply(third).await.state, JobState::Succeeded);
}

#[tokio::test]
async fn jobs_are_read_across_a_restart_and_a_job_left_running_is_failed() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    let done = d.provision(&config(&admin.public, "")).await;
    let jobs_dir = d.dir.path().join("data/provision-jobs");
    // What a service killed in the middle of a job left.
    let left = "00000000-0000-4000-8000-000000000001";
    std::fs::write(
        jobs_dir.join(format!("{left}.json")),
        json!({
            "id": left,
            "state": "running",
            "current_step": "service-restart",
            "events": [{"step": "running", "elapsed_seconds": 0.0},
                       {"step": "service-restart", "elapsed_seconds": 1.5}],
            "submitted_at": 1.0,
        })
        .to_string(),
    )
    .unwrap();
    let after = router(d.restart());
    let (status, _, body) = call(&after, get(&routes::job(&done.id))).await;
    assert_eq!(status, StatusCode::OK);
    let reread: JobResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(reread, done);
    let (status, _, body) = call(&after, get(&routes::job(left))).await;
    assert_eq!(status, StatusCode::OK);
    let job: JobResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some(INTERRUPTED));
    let last = job.events.unwrap().pop().unwrap();
    assert_eq!(
        (last.step.as_str(), last.message.as_deref()),
        (FAILED_STEP, Some(INTERRUPTED))
    );
    assert!(last.elapsed_seconds >= 1.5);
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(jobs_dir.join(format!("{left}.json"))).unwrap())
            .unwrap();
    assert_eq!(on_disk["state"], "failed");
}

#[tokio::test]
async fn export_without_a_config_is_404() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let d = Device::new(|_| {});
    d.provision(&config(&admin.public, "")).await;
    std::fs::remove_file(d.root().active_config()).unwrap();
    let req = d.signed(&admin, Method::GET, routes::EXPORT, b"").await;
    let (status, body) = d.json(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("config.toml"),
        "{body}"
    );
}

#[tokio::test]
async fn the_engines_events_reach_the_job_and_a_failed_reapply_rolls_back() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keygen(keys.path(), "admin", &["-t", "ed25519"]);
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("home")).unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let engine = fake_engine(host.path(), &failing);
    let d = Device::new(|s| s.engine = engine);
    let toml = config(&admin.public, "");
    let job = d.provision(&toml).await;
    let steps = steps(&job);
    let engine_steps = [
        "activate",
        "service-deploy",
        "service-restart",
        "settle",
        "health-check",
        "service-status",
        "cleanup",
        "complete",
        "completed",
    ];
    let mut at = 0;
    for step in engine_steps {
        at += steps[at..]
            .iter()
            .position(|s| s == step)
            .unwrap_or_else(|| panic!("{step} not in order in {steps:?}"));
    }
    let restart = job
        .events
        .iter()
        .flatten()
        .find(|e| e.step == "service-restart")
        .unwrap();
    assert_eq!(
        (restart.service.as_deref(), restart.mode.as_deref()),
        (Some("web.service"), Some("rootless"))
    );
    // A re-apply whose container fails: rolled back, the previous config active again.
    failing.store(true, Ordering::SeqCst);
    let next = toml.replace("8081:80", "8082:80");
    let req = d
        .signed(&admin, Method::POST, routes::CONFIG, next.as_bytes())
        .await;
    let job = d.apply(req).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("activation failed: web.service failed"),
        "{job:?}"
    );
    let steps = self::steps(&job);
    assert!(steps.contains(&"rollback".to_owned()), "{steps:?}");
    assert_eq!(steps.last().unwrap(), FAILED_STEP);
    assert_eq!(
        std::fs::read_to_string(d.root().active_config()).unwrap(),
        toml
    );
    // The rollback's re-activation met the same failing unit.
    assert_eq!(job.rollback_status.as_deref(), Some("failed"));
}
