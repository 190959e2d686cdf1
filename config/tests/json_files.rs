//! The config root's JSON files for the full fixture are byte for byte what the original
//! writes (`fixtures/full.expected/`, from its `import`).

#![allow(clippy::unwrap_used)]

use atomix_config::Config;

const FULL: &str = include_str!("fixtures/full.toml");

fn expected(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/full.expected/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn the_full_fixture_renders_the_originals_json_files() {
    let config =
        Config::parse(FULL).unwrap_or_else(|r| panic!("{}", r.render_text("full.toml", FULL)));
    let files = [
        ("users.json", config.users_json()),
        ("firewall-inbound.json", config.firewall_inbound_json()),
        ("lan-settings.json", config.lan_settings_json()),
        ("host-network.json", config.host_network_json()),
        ("os-upgrade.json", config.os_upgrade_json().unwrap()),
        ("activation-policy.json", config.activation_policy_json()),
        ("health-required.json", config.health_required_json()),
    ];
    for (name, json) in files {
        assert_eq!(json.to_pretty(), expected(name), "{name}");
    }
    assert_eq!(config.admin_signers().unwrap(), expected("admin-signers"));
}
