//! T1: the provisioning API, ours and the original's, as black boxes on loopback (real TCP
//! servers on 127.0.0.1): the same scenario against both (every route, the typed partial ones
//! included) must give the same status codes, apart from the deliberate differences listed in
//! [`DIFFERENT`].
//!
//! The original runs as `atomixos-provision serve ROOT --host 127.0.0.1 --port P`; ours as
//! `atomix-provision serve ROOT --host 127.0.0.1 --port 0 --activation none`. On a host
//! without systemd the original's re-apply fails its health check, so job outcomes are
//! compared only where both must succeed (the initial import). Both servers are killed by pid
//! on every path ([`Server`]'s `Drop`); every request and wait is bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use atomix_api::{HEADER_NONCE, HEADER_SIGNATURE, routes, signed_message};
use common::server::Server;
use common::sshkeys::{Key, config, keygen, sign};

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
    (
        "partial: an unsupported key",
        202,
        400,
        "a refused partial request is answered 400 naming the key, before any job (the \
         original's job fails)",
    ),
    (
        "partial: the last admin deleted",
        202,
        400,
        "a partial update that makes the config invalid is answered 400 with the located report \
         before any job (the original's job fails)",
    ),
];

/// The partial routes with valid requests: the steps and their (method, path, body).
const PARTIAL: &[(&str, &str, &str, &str)] = &[
    (
        "partial: put a user",
        "PUT",
        "/api/config/users/bob",
        r#"{"isAdmin": false, "shell": "sh"}"#,
    ),
    (
        "partial: patch the network",
        "PATCH",
        "/api/config/network",
        r#"{"dns_servers": ["9.9.9.9"], "default_gateway": null}"#,
    ),
    (
        "partial: put a container volume",
        "PUT",
        "/api/config/container-volumes/data",
        r#"{"Volume": {"Label": "app=web"}}"#,
    ),
    (
        "partial: put a container network",
        "PUT",
        "/api/config/container-networks/appnet",
        r#"{"Network": {"Subnet": "10.89.0.0/24"}}"#,
    ),
    (
        "partial: put a container",
        "PUT",
        "/api/config/containers/app",
        r#"{"privileged": false, "Container": {"Image": "localhost/app:1"}}"#,
    ),
    (
        "partial: delete a container",
        "DELETE",
        "/api/config/containers/app",
        "",
    ),
    (
        "partial: delete a container network",
        "DELETE",
        "/api/config/container-networks/appnet",
        "",
    ),
    (
        "partial: delete a container volume",
        "DELETE",
        "/api/config/container-volumes/data",
        "",
    ),
    (
        "partial: delete a user",
        "DELETE",
        "/api/config/users/bob",
        "",
    ),
];

/// Steps of the partial routes: valid requests (each job waited for: the original's fail its
/// health check without systemd, ours commit with `--activation none`), refusals, and 409.
fn partial_steps(
    server: &Server,
    data: &Path,
    admin: &Key,
    toml: &str,
    note: &mut dyn FnMut(&str, u16),
) {
    let user = r#"{"isAdmin": false}"#;
    note(
        "partial: unsigned",
        server
            .request("PUT", "/api/config/users/bob", &[], user.as_bytes())
            .0,
    );
    for (step, method, path, body) in PARTIAL {
        let (status, accepted) =
            server.signed(admin, &server.nonce(), method, path, body.as_bytes());
        note(step, status);
        if status == 202 {
            server.job_state(&accepted);
        }
    }
    let refusals: [(&str, &str, &str, &str); 4] = [
        ("partial: not JSON", "PATCH", "/api/config/network", "{dns"),
        (
            "partial: not an object",
            "PUT",
            "/api/config/users/bob",
            "[1]",
        ),
        (
            "partial: an unsupported key",
            "PUT",
            "/api/config/users/bob",
            r#"{"isAdmin": false, "sudo": true}"#,
        ),
        (
            "partial: the last admin deleted",
            "DELETE",
            "/api/config/users/admin",
            "",
        ),
    ];
    for (step, method, path, body) in refusals {
        let (status, accepted) =
            server.signed(admin, &server.nonce(), method, path, body.as_bytes());
        note(step, status);
        if status == 202 {
            assert_eq!(server.job_state(&accepted), "failed", "{step}");
        }
    }
    let lock = std::fs::File::create(data.join(".config.lock")).unwrap();
    lock.lock().unwrap();
    let (status, accepted) = server.signed(
        admin,
        &server.nonce(),
        "POST",
        routes::CONFIG,
        toml.as_bytes(),
    );
    assert_eq!(status, 202);
    note(
        "partial: while a job runs",
        server
            .signed(
                admin,
                &server.nonce(),
                "PUT",
                "/api/config/users/bob",
                user.as_bytes(),
            )
            .0,
    );
    drop(lock);
    server.job_state(&accepted);
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
    partial_steps(server, data, admin, toml, &mut note);
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
