//! The network files under `/etc` (spec 5.2): each fixture's are the golden tree
//! `fixtures/<name>.etc/`, the defaults are the image's own files, and the interface, eth0
//! inheritance, host name and hosts rules hold case by case.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use atomix_config::net::Mac;
use atomix_config::system::{self, NetworkFiles, RenderError, Service};
use common::{
    accepts, fixture_network_files as fixture, network_files as render, plus, workspace_file,
};

const WAN_DROP_IN: &str = "systemd/network/10-wan.network.d/50-atomixos.conf";
const LAN_DROP_IN: &str = "systemd/network/20-lan.network.d/50-atomixos.conf";

/// The text of every rendered file, by path.
fn texts(files: &NetworkFiles) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(_, p, f)| {
            (
                p.to_string(),
                String::from_utf8(f.contents.clone()).unwrap(),
            )
        })
        .collect()
}

fn text<'a>(files: &'a NetworkFiles, path: &str) -> &'a str {
    let (_, file) = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} not rendered"));
    std::str::from_utf8(&file.contents).unwrap()
}

fn golden(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            golden(&e.path(), &format!("{name}/"), out);
        } else {
            out.insert(name, std::fs::read_to_string(e.path()).unwrap());
        }
    }
}

/// Who reads each file, by where it is.
fn reader(path: &str) -> Service {
    match path {
        "dnsmasq.d/atomixos-lan.conf" | "atomixos/dnsmasq-hosts" | "hosts" => Service::Dnsmasq,
        "atomixos/chrony-lan.conf" => Service::Chrony,
        p if p.starts_with("systemd/network/") => Service::Network,
        p => panic!("unexpected file {p}"),
    }
}

fn check_fixture(name: &str) {
    let files = fixture(name);
    let dir = format!("{}/tests/fixtures/{name}.etc", env!("CARGO_MANIFEST_DIR"));
    let mut want = BTreeMap::new();
    golden(Path::new(&dir), "", &mut want);
    let got = texts(&files);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}"
    );
    for (path, text) in &want {
        assert_eq!(&got[path], text, "{name}: {path}");
    }
    for (service, path, file) in files.iter() {
        assert_eq!(file.mode, 0o644, "{name}: {path}");
        assert_eq!(service, reader(path.as_str()), "{name}: {path}");
    }
}

#[test]
fn the_minimal_fixture_renders_the_golden_defaults() {
    check_fixture("minimal");
}

#[test]
fn the_full_fixture_renders_its_golden_files() {
    check_fixture("full");
}

#[test]
fn the_eth1_fixture_renders_its_golden_files() {
    check_fixture("eth1-lan");
}

/// The lines that are not comments.
fn settings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn the_defaults_are_what_the_image_ships() {
    let files = fixture("minimal");
    for path in [
        "dnsmasq.d/atomixos-lan.conf",
        "atomixos/dnsmasq-hosts",
        "atomixos/chrony-lan.conf",
        "hosts",
    ] {
        let image = workspace_file(&format!("rootfs/tree/etc/{path}"));
        assert_eq!(settings(text(&files, path)), settings(&image), "{path}");
    }
    // eth1's drop-in sets the address the image's 20-lan.network has.
    let base = workspace_file("rootfs/tree/etc/systemd/network/20-lan.network");
    let address = base.lines().find(|l| l.starts_with("Address=")).unwrap();
    assert!(
        text(&files, LAN_DROP_IN).ends_with(&format!("{address}\n")),
        "{address}"
    );
    // And the image includes chrony's part.
    let chrony = workspace_file("rootfs/tree/etc/chrony/chrony.conf");
    assert!(chrony.contains("include /etc/atomixos/chrony-lan.conf"));
}

const ETH2_STATIC: &str = r#"
[network.interfaces.eth2]
mode = "static"
address = "10.9.0.2/16"
gateway = "10.9.0.1"
dns_servers = ["10.9.0.53", "FD00::53"]
dns_search_domains = ["a.example", "B.example."]
"#;

#[test]
fn another_static_interface_gets_a_network_file_of_its_own() {
    let files = render(&accepts(&plus(ETH2_STATIC)));
    assert_eq!(
        text(&files, "systemd/network/30-atomixos-eth2.network"),
        "[Match]\nName=eth2\n\n[Network]\nAddress=10.9.0.2/16\nDHCP=no\nIPv6AcceptRA=false\n\
         Gateway=10.9.0.1\nDNS=10.9.0.53\nDNS=fd00::53\nDomains=a.example b.example\n"
    );
    // Nothing at the top level, eth0 not configured: no eth0 drop-in.
    assert!(files.get(WAN_DROP_IN).is_none());
}

#[test]
fn a_dhcp_interface_keeps_the_server_from_overriding_its_gateway_and_resolvers() {
    let config = accepts(&plus(
        r#"
[network.interfaces.eth3]
mode = "dhcp"
gateway = "192.168.7.1"
dns_servers = ["192.168.7.53"]

[network.interfaces.eth4]
mode = "dhcp"
dns_search_domains = ["x.example"]

[network.interfaces.eth5]
mode = "dhcp"
gateway = "192.168.9.1"
"#,
    ));
    let files = render(&config);
    assert_eq!(
        text(&files, "systemd/network/30-atomixos-eth3.network"),
        "[Match]\nName=eth3\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nGateway=192.168.7.1\n\
         DNS=192.168.7.53\n\n[DHCPv4]\nUseRoutes=false\nUseDNS=false\n"
    );
    assert_eq!(
        text(&files, "systemd/network/30-atomixos-eth4.network"),
        "[Match]\nName=eth4\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nDomains=x.example\n"
    );
    assert_eq!(
        text(&files, "systemd/network/30-atomixos-eth5.network"),
        "[Match]\nName=eth5\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nGateway=192.168.9.1\n\
         \n[DHCPv4]\nUseRoutes=false\n"
    );
}

#[test]
fn eth0_is_dhcp_with_the_top_level_values_when_not_configured() {
    let files = render(&accepts(&plus(
        "[network]\ndefault_gateway = \"192.168.1.254\"\n",
    )));
    assert_eq!(
        text(&files, WAN_DROP_IN),
        "[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nGateway=192.168.1.254\n\n\
         [DHCPv4]\nUseRoutes=false\n"
    );
    let files = render(&accepts(&plus(
        "[network]\ndns_search_domains = [\"corp.example\"]\n",
    )));
    assert_eq!(
        text(&files, WAN_DROP_IN),
        "[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nDomains=corp.example\n"
    );
}

#[test]
fn eth0s_own_values_win_and_the_top_level_fills_the_rest() {
    let files = render(&accepts(&plus(
        r#"
[network]
dns_servers = ["9.9.9.9"]
dns_search_domains = ["top.example"]
default_gateway = "192.168.1.1"

[network.interfaces.eth0]
mode = "dhcp"
dns_servers = ["192.168.1.53"]
"#,
    )));
    assert_eq!(
        text(&files, WAN_DROP_IN),
        "[Network]\nDHCP=ipv4\nIPv6AcceptRA=false\nGateway=192.168.1.1\nDNS=192.168.1.53\n\
         Domains=top.example\n\n[DHCPv4]\nUseRoutes=false\nUseDNS=false\n"
    );
}

#[test]
fn eth1_configured_with_its_own_settings() {
    let files = render(&accepts(&plus(
        r#"
[network.interfaces.eth1]
mode = "static"
address = "10.1.2.1/24"
dns_servers = ["10.1.2.1"]

[network.dnsmasq]
dhcp_start = "10.1.2.10"
dhcp_end = "10.1.2.20"
"#,
    )));
    assert_eq!(
        text(&files, LAN_DROP_IN),
        "[Network]\nAddress=\nAddress=10.1.2.1/24\nDHCP=no\nIPv6AcceptRA=false\nDNS=10.1.2.1\n"
    );
    assert!(text(&files, "dnsmasq.d/atomixos-lan.conf").contains("dhcp-option=3,10.1.2.1\n"));
}

#[test]
fn the_managed_names_are_the_other_interfaces_files_and_the_eth0_drop_in() {
    let files = render(&accepts(&plus(ETH2_STATIC)));
    let covered = |path: &str| {
        let (dir, name) = path.rsplit_once('/').unwrap();
        files
            .managed
            .iter()
            .any(|m| m.dir.as_str() == dir && m.matches(name))
    };
    assert!(covered("systemd/network/30-atomixos-eth2.network"));
    assert!(covered("systemd/network/30-atomixos-eth17.network"));
    assert!(covered(WAN_DROP_IN));
    for kept in [
        LAN_DROP_IN,
        "systemd/network/10-wan.network",
        "systemd/network/30-atomixos-eth2.network.bak",
        "systemd/network/.30-atomixos-eth2.network.atomixos-tmp",
        "systemd/network/10-wan.network.d/60-local.conf",
        "dnsmasq.d/atomixos-lan.conf",
    ] {
        assert!(!covered(kept), "{kept}");
    }
    assert!(files.managed.iter().all(|m| m.service == Service::Network));
}

#[test]
fn the_mac_makes_the_host_name_and_names_are_listed_once() {
    let config = accepts(&plus(
        r#"
[network.dnsmasq]
domain = "Lan.Example"
hostname_pattern = "Box-{mac}"
gateway_aliases = ["box-02000a2c0001", "gw", "ntp.example.org"]
"#,
    ));
    let files = render(&config);
    assert_eq!(
        text(&files, "atomixos/dnsmasq-hosts"),
        "172.20.30.1 box-02000a2c0001 box-02000a2c0001.lan.example\n\
         172.20.30.1 gw gw.lan.example\n172.20.30.1 ntp.example.org\n"
    );
    assert!(text(&files, "hosts").ends_with(
        "\n172.20.30.1 box-02000a2c0001 box-02000a2c0001.lan.example gw gw.lan.example \
         ntp.example.org # ATOMIXOS_LAN_GATEWAY\n"
    ));
    // Another NIC, another name.
    let other: Mac = "02:00:0a:2c:00:02".parse().unwrap();
    let files = system::render(&config.network, Some(&other), "").unwrap();
    assert!(text(&files, "atomixos/dnsmasq-hosts").starts_with("172.20.30.1 box-02000a2c0002 "));
    // No MAC, no name.
    assert_eq!(
        system::render(&config.network, None, ""),
        Err(RenderError::NoMac)
    );
}

#[test]
fn without_a_pattern_no_mac_is_needed() {
    let config = accepts(&plus(""));
    let files = system::render(&config.network, None, "127.0.0.1 localhost\n").unwrap();
    assert_eq!(
        text(&files, "hosts"),
        "127.0.0.1 localhost\n172.20.30.1 atomixos atomixos.local # ATOMIXOS_LAN_GATEWAY\n"
    );
}
