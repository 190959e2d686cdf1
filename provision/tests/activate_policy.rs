//! T0 tests of the activation policy files (spec 5.6 step 1) and name resolution.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use atomix_provision::activate::policy::{resolve, service_of};
use atomix_provision::activate::{Policy, PolicyError, load_policy};
use atomix_provision::store::RealFs;
use atomix_provision::store::quadlet_sync::{Mode, RuntimeUnit};
use serde_json::json;

fn units() -> Vec<RuntimeUnit> {
    [
        ("web.container", Mode::Rootful),
        ("api.container", Mode::Rootless),
        ("net.network", Mode::Rootful),
    ]
    .map(|(f, mode)| RuntimeUnit {
        filename: f.into(),
        mode,
    })
    .to_vec()
}

fn strict() -> serde_json::Value {
    json!({
        "required": ["web"], "timeout_seconds": 120, "settle_seconds": 10,
        "restart": ["api"], "allow_degraded": [], "allow_degraded_configured": true,
        "strategy": "rollback"
    })
}

fn load(dir: &Path) -> Result<Policy, PolicyError> {
    load_policy(&RealFs, dir, &units())
}

#[test]
fn the_strict_file_wins_and_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("activation-policy.json"),
        strict().to_string(),
    )
    .unwrap();
    fs::write(dir.path().join("health-required.json"), r#"["api"]"#).unwrap();
    let p = load(dir.path()).unwrap();
    assert_eq!(
        p,
        Policy {
            required: vec!["web".into()],
            timeout_seconds: 120,
            settle_seconds: 10,
            restart: vec!["api".into()],
            allow_degraded: vec![],
            allow_degraded_configured: true,
            strict: true,
        }
    );
}

#[test]
fn strict_rules_are_enforced() {
    let cases = [
        ("timeout_seconds", json!(0)),
        ("timeout_seconds", json!(3601)),
        ("settle_seconds", json!(301)),
        ("strategy", json!("manual-confirm")),
        ("required", json!(["ghost"])),
        ("restart", json!(["ghost"])),
        ("allow_degraded", json!(["ghost"])),
    ];
    for (key, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = strict();
        policy[key] = value.clone();
        fs::write(
            dir.path().join("activation-policy.json"),
            policy.to_string(),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(
            matches!(err, PolicyError::Invalid { .. }),
            "{key}={value}: {err:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut policy = strict();
    policy["surprise"] = json!(1);
    fs::write(
        dir.path().join("activation-policy.json"),
        policy.to_string(),
    )
    .unwrap();
    assert!(matches!(load(dir.path()), Err(PolicyError::Json { .. })));
}

#[test]
fn health_required_is_the_non_strict_fallback_and_neither_file_requires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(dir.path()).unwrap(), Policy::default());
    fs::write(
        dir.path().join("health-required.json"),
        r#"["web", "legacy"]"#,
    )
    .unwrap();
    let p = load(dir.path()).unwrap();
    assert!(!p.strict);
    assert_eq!(p.required, ["web", "legacy"]);
    assert_eq!(p.timeout_seconds, 300);
    fs::write(dir.path().join("health-required.json"), "{}").unwrap();
    assert!(matches!(load(dir.path()), Err(PolicyError::Json { .. })));
}

#[test]
fn names_resolve_to_services_and_modes() {
    let u = units();
    assert_eq!(
        service_of("api", &u),
        ("api.service".into(), Mode::Rootless)
    );
    assert_eq!(
        service_of("net-network", &u),
        ("net-network.service".into(), Mode::Rootful)
    );
    assert_eq!(
        service_of("legacy", &u),
        ("legacy.service".into(), Mode::Rootful)
    );
    assert!(resolve("net", &u).is_none());
}
