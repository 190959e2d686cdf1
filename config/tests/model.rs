//! The typed model of the full fixture: what rendering needs, in config order; and the report
//! as text and JSON.

#![allow(clippy::unwrap_used)]

mod common;

use atomix_config::Config;
use atomix_config::containers::{Scalar, Value};
use atomix_config::network::InterfaceMode;

const FULL: &str = include_str!("fixtures/full.toml");

#[test]
fn containers_keep_sections_directives_and_values_in_document_order() {
    let c = Config::parse(FULL).unwrap();
    let names: Vec<_> = c
        .containers
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["edgeproxy", "myapp", "metrics"]);
    let edge = &c.containers.containers[0];
    assert!(edge.privileged);
    let keys: Vec<_> = edge
        .container
        .directives
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(keys, ["Image", "Environment", "Exec", "Volume"]);
    assert_eq!(
        edge.container.get("Environment"),
        Some(&Value::List(vec![
            Scalar::Str("TZ=UTC".into()),
            Scalar::Str("LOG_LEVEL=info".into())
        ]))
    );
    assert_eq!(
        edge.unit.as_ref().unwrap().directives[0].name,
        "Description"
    );
    assert_eq!(
        edge.install
            .as_ref()
            .unwrap()
            .get("WantedBy")
            .unwrap()
            .scalars()
            .len(),
        1
    );
    let app = c.containers.container("myapp").unwrap();
    assert!(!app.privileged);
    assert_eq!(app.image(), "localhost/myapp:latest");
    assert_eq!(
        app.container.get("ReadOnly"),
        Some(&Value::One(Scalar::Bool(true)))
    );
    assert_eq!(
        app.container.get("Ulimit"),
        Some(&Value::One(Scalar::Int(1024)))
    );
    assert_eq!(
        app.container.get("Volume"),
        Some(&Value::One(Scalar::Str(
            "${FILES_DIR}/app/config.yaml:/app/config.yaml:ro".into()
        )))
    );
    assert_eq!(c.containers.networks[0].name.as_str(), "appnet");
    assert_eq!(c.containers.volumes[0].name.as_str(), "caddy-data");
    let build = &c.containers.builds[0];
    assert_eq!(build.section.directives[0].name, "ImageTag");
}

#[test]
fn users_network_and_activation_are_normalized() {
    let c = Config::parse(FULL).unwrap();
    let users: Vec<_> = c.users.list.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(users, ["admin", "ops", "viewer"]);
    assert_eq!(c.users.admin_keys().count(), 2);
    assert!(c.users.list[2].ssh_key.is_none());
    let lan = &c.network.lan;
    assert_eq!(lan.gateway_ip().to_string(), "10.44.0.1");
    assert_eq!(lan.netmask().to_string(), "255.255.255.0");
    assert_eq!(lan.domain.as_str(), "edge.lan");
    assert_eq!(c.network.host.interfaces[1].mode, InterfaceMode::Static);
    assert!(c.network.firewall.wan.udp.is_empty());
    assert_eq!(c.activation.required, ["edgeproxy", "myapp"]);
    assert_eq!(
        c.os_upgrade.unwrap().server_url,
        "https://updates.example.com/rauc"
    );
}

#[test]
fn the_report_renders_every_error_with_source_and_caret_and_as_json() {
    let src = FULL
        .replace("shell = \"bash\"", "shell = \"fish\"")
        .replace("tcp = [22, 443]", "tcp = [22, 8080]");
    let report = Config::parse(&src).unwrap_err();
    let text = report.render_text("config.toml", &src);
    let (l1, c1) = common::at(&src, "\"fish\"");
    let (l2, c2) = common::at(&src, "22, |8080");
    // Quadlet rendering's warnings come with the errors, located too.
    let (l3, c3) = common::at(&src, "\"10080:80\", |\"0.0.0.0:10081:81\"");
    let (l4, c4) = common::at(&src, "Network = |\"appnet\"");
    let expected = format!(
        "config.toml:{l1}:{c1}: users.admin.shell: unknown shell \"fish\" (one of: bash, sh, zsh)\n\
         shell = \"fish\"\n        ^^^^^^\n\
         config.toml:{l2}:{c2}: network.firewall.inbound.wan.tcp[1]: WAN TCP port 8080 is \
         reserved for the bootstrap console\ntcp = [22, 8080]\n           ^^^^\n\
         config.toml:{l3}:{c3}: warning: containers.container.myapp.Container.PublishPort[1]: \
         rewrote non-loopback bind '0.0.0.0:10081:81' to 127.0.0.1\n\
         PublishPort = [\"10080:80\", \"0.0.0.0:10081:81\"]\n{}{}\n\
         config.toml:{l4}:{c4}: warning: containers.container.myapp.Container.Network: \
         overridden to pasta for rootless container\nNetwork = \"appnet\"\n          ^^^^^^^^\n",
        " ".repeat(c3 - 1),
        "^".repeat(18),
    );
    assert_eq!(text, expected);
    let json = report.to_json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 2);
    assert_eq!(json["errors"][0]["path"], "users.admin.shell");
    assert_eq!(json["errors"][0]["line"], l1);
    assert_eq!(json["errors"][0]["col"], c1);
    assert_eq!(json["errors"][1]["severity"], "error");
    assert_eq!(json["warnings"].as_array().unwrap().len(), 2);
    assert_eq!(json["warnings"][1]["line"], l4);
    assert_eq!(json["warnings"][1]["severity"], "warning");
}
