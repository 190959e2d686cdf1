//! The config root's JSON files for each fixture are byte for byte what the original writes
//! (`fixtures/<name>.expected/`, from its `import`).

#![allow(clippy::unwrap_used)]

use atomix_config::Config;
use atomix_config::activation::{HealthRequired, PolicyFile};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(name: &str) {
    let src = fixture(&format!("{name}.toml"));
    let config = Config::parse(&src).unwrap_or_else(|r| panic!("{}", r.render_text(name, &src)));
    let expected = |file: &str| fixture(&format!("{name}.expected/{file}"));
    let files = [
        ("users.json", config.users_json()),
        ("firewall-inbound.json", config.firewall_inbound_json()),
        ("lan-settings.json", config.lan_settings_json()),
        ("host-network.json", config.host_network_json()),
        ("activation-policy.json", config.activation_policy_json()),
        ("health-required.json", config.health_required_json()),
    ];
    for (file, json) in files {
        assert_eq!(json.to_pretty(), expected(file), "{name}: {file}");
    }
    // The reader's types take the writer's bytes back whole.
    let policy: PolicyFile = serde_json::from_str(&expected("activation-policy.json")).unwrap();
    assert_eq!(policy, PolicyFile::from(&config.activation), "{name}");
    let health: HealthRequired = serde_json::from_str(&expected("health-required.json")).unwrap();
    assert_eq!(health.0, config.activation.required, "{name}");
    let os = format!(
        "{}/tests/fixtures/{name}.expected/os-upgrade.json",
        env!("CARGO_MANIFEST_DIR")
    );
    match config.os_upgrade_json() {
        Some(json) => assert_eq!(json.to_pretty(), expected("os-upgrade.json"), "{name}"),
        None => assert!(
            !std::path::Path::new(&os).exists(),
            "{name}: os-upgrade.json"
        ),
    }
    assert_eq!(
        config.admin_signers().unwrap(),
        expected("admin-signers"),
        "{name}"
    );
}

#[test]
fn the_full_fixture_renders_the_originals_json_files() {
    check("full");
}

#[test]
fn the_minimal_fixture_renders_the_defaults_as_the_original() {
    check("minimal");
}

#[test]
fn the_eth1_fixture_renders_the_originals_json_files() {
    check("eth1-lan");
}
