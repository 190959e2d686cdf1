//! The provisioned inbound rules: T0 tests of the pure rule function, and real `nft` runs in a
//! private network namespace (`unshare -n`; needs root, and `nft` from scripts/setup.sh),
//! among them the image's `nftables.conf` with the full fixture's rules, whose input chain
//! must list as the golden.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use atomix_provision::activate::firewall::{
    TAG_LAN_DEFAULT, TAG_PROVISIONED, count_tagged, inbound_rules, script, tagged_handles,
};
use atomix_provision::activate::{FakeFirewall, Firewall, Inbound, Interfaces, Nft, Ports};

const LISTING: &str = r#"table inet filter {
	chain input { # handle 1
		type filter hook input priority filter; policy drop;
		iifname "lo" accept # handle 4
		iifname "eth1" accept comment "ATOMIXOS_LAN_DEFAULT_OPEN" # handle 6
		iifname "eth0" tcp dport { 443 } accept comment "ATOMIXOS_PROVISIONED_INBOUND" # handle 9
		iifname "eth0" tcp dport 22 accept comment "SSH-WAN-dynamic" # handle 10
	}
}
"#;

const BASE: &str = r#"table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    iifname "lo" accept
    ct state established,related accept
    iifname "eth1" accept comment "ATOMIXOS_LAN_DEFAULT_OPEN"
    iifname "tun0" tcp dport 22 accept
  }
  chain forward { type filter hook forward priority 0; policy drop; }
  chain output { type filter hook output priority 0; policy accept; }
}
"#;

fn inbound(json: &str) -> Inbound {
    serde_json::from_str(json).unwrap()
}

#[test]
fn tagged_rules_are_found_by_handle_and_others_left() {
    assert_eq!(tagged_handles(LISTING), [6, 9]);
    assert_eq!(count_tagged(LISTING, TAG_PROVISIONED), 1);
}

#[test]
fn wan_ports_are_sorted_per_protocol_and_an_open_lan_keeps_its_default_rule() {
    let rules = inbound_rules(
        &inbound(r#"{"wan": {"tcp": [443, 80, 443], "udp": [51820]}}"#),
        &Interfaces::default(),
    );
    assert_eq!(
        rules,
        [
            format!(
                "add rule inet filter input iifname \"eth0\" tcp dport {{ 80, 443 }} accept comment \"{TAG_PROVISIONED}\""
            ),
            format!(
                "add rule inet filter input iifname \"eth0\" udp dport {{ 51820 }} accept comment \"{TAG_PROVISIONED}\""
            ),
            format!(
                "add rule inet filter input iifname \"eth1\" accept comment \"{TAG_LAN_DEFAULT}\""
            ),
        ]
    );
}

#[test]
fn a_restrictive_lan_merges_the_required_ports() {
    let ifaces = Interfaces {
        wan: "wan0".into(),
        lan: "lan0".into(),
    };
    let rules = inbound_rules(&inbound(r#"{"lan": {"udp": [5353]}}"#), &ifaces);
    assert_eq!(rules.len(), 2);
    assert!(rules[0].contains("iifname \"lan0\" tcp dport { 22, 53, 8080 } accept"));
    assert!(rules[1].contains("iifname \"lan0\" udp dport { 53, 67, 68, 123, 5353 } accept"));
    assert!(rules.iter().all(|r| !r.contains(TAG_LAN_DEFAULT)));
}

#[test]
fn no_scopes_only_restores_the_lan_default() {
    let rules = inbound_rules(&inbound("{}"), &Interfaces::default());
    assert_eq!(rules.len(), 1);
    assert!(rules[0].ends_with(&format!("comment \"{TAG_LAN_DEFAULT}\"")));
    let empty = Inbound {
        wan: Some(Ports::default()),
        lan: Some(Ports::default()),
    };
    assert_eq!(inbound_rules(&empty, &Interfaces::default()), rules);
}

#[test]
fn unknown_keys_are_rejected() {
    assert!(serde_json::from_str::<Inbound>(r#"{"dmz": {}}"#).is_err());
    assert!(serde_json::from_str::<Inbound>(r#"{"wan": {"sctp": [1]}}"#).is_err());
    assert!(serde_json::from_str::<Inbound>(r#"{"wan": {"tcp": [70000]}}"#).is_err());
}

#[test]
fn the_script_deletes_then_adds_and_the_fake_keeps_a_listing() {
    let rules = inbound_rules(
        &inbound(r#"{"wan": {"tcp": [443]}}"#),
        &Interfaces::default(),
    );
    let text = script(&[6, 9], &rules);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "delete rule inet filter input handle 6");
    assert_eq!(lines[1], "delete rule inet filter input handle 9");
    assert_eq!(lines.len(), 4);
    let mut fw = FakeFirewall::default();
    fw.apply(&text).unwrap();
    let listing = fw.list_input().unwrap();
    assert_eq!(tagged_handles(&listing), [1, 2]);
}

fn nft_and_root() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    root && nft
}

/// A process in a new network namespace, killed (by its pid) on drop.
struct Namespace(Child);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An `nft` wrapper that runs in the namespace of `ns`.
fn nft_in(ns: &Namespace, dir: &Path) -> Nft {
    let wrapper = dir.join("nft-in-ns");
    let pid = ns.0.id();
    fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec nsenter --net=/proc/{pid}/ns/net nft \"$@\"\n"),
    )
    .unwrap();
    Command::new("chmod")
        .arg("0755")
        .arg(&wrapper)
        .status()
        .unwrap();
    Nft {
        program: wrapper.display().to_string(),
    }
}

/// A new network namespace (needs root and nft).
fn namespace() -> Namespace {
    assert!(
        nft_and_root(),
        "this test needs root and nft (Debian's nftables): run it as root after scripts/setup.sh"
    );
    let ns = Namespace(
        Command::new("unshare")
            .args(["-n", "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the child is in its own namespace.
    let own = fs::read_link("/proc/self/ns/net").unwrap();
    for _ in 0..200 {
        let theirs = fs::read_link(format!("/proc/{}/ns/net", ns.0.id()));
        if theirs.is_ok_and(|t| t != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ns
}

#[test]
fn nft_checks_and_applies_the_rules_in_a_private_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let mut nft = nft_in(&ns, dir.path());
    nft.apply(BASE).unwrap();

    // A restrictive LAN and WAN ports: the default-open rule goes, the provisioned ones come.
    let rules = inbound_rules(
        &inbound(r#"{"wan": {"tcp": [443], "udp": [51820]}, "lan": {"tcp": [9000]}}"#),
        &Interfaces::default(),
    );
    let listing = nft.list_input().unwrap();
    let text = script(&tagged_handles(&listing), &rules);
    nft.check(&text).unwrap();
    nft.apply(&text).unwrap();
    let after = nft.list_input().unwrap();
    assert_eq!(count_tagged(&after, TAG_PROVISIONED), 4, "{after}");
    assert_eq!(count_tagged(&after, TAG_LAN_DEFAULT), 0, "{after}");
    assert!(
        after.contains("tcp dport { 22, 53, 8080, 9000 } accept"),
        "{after}"
    );
    assert!(
        after.contains("iifname \"tun0\" tcp dport 22 accept"),
        "{after}"
    );

    // Applying an open LAN replaces them all and restores the default rule.
    let rules = inbound_rules(
        &inbound(r#"{"wan": {"tcp": [443]}}"#),
        &Interfaces::default(),
    );
    let text = script(&tagged_handles(&after), &rules);
    nft.apply(&text).unwrap();
    let again = nft.list_input().unwrap();
    assert_eq!(count_tagged(&again, TAG_PROVISIONED), 1, "{again}");
    assert_eq!(count_tagged(&again, TAG_LAN_DEFAULT), 1, "{again}");

    // A bad script is refused by the check and changes nothing.
    let bad = "add rule inet filter input iifname \"eth0\" tcp dport { 0x } accept\n";
    assert!(nft.check(bad).is_err());
    assert!(nft.apply(bad).is_err());
    assert_eq!(nft.list_input().unwrap(), again);
}

/// The image's input chain once the full fixture's rules are in, as `nft list` prints it.
const FULL_INPUT: &str = r#"table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		ct state invalid drop
		icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
		iifname "eth0" tcp dport { 22, 443 } accept comment "ATOMIXOS_PROVISIONED_INBOUND"
		iifname "eth1" tcp dport { 22, 53, 80, 443, 8080 } accept comment "ATOMIXOS_PROVISIONED_INBOUND"
		iifname "eth1" udp dport { 53, 67, 68, 123 } accept comment "ATOMIXOS_PROVISIONED_INBOUND"
	}
}
"#;

#[test]
fn the_images_ruleset_with_the_full_fixtures_rules_lists_as_the_golden() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace();
    let mut nft = nft_in(&ns, dir.path());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = fs::read_to_string(workspace.join("rootfs/tree/etc/nftables.conf")).unwrap();
    nft.apply(&base).unwrap();
    // The rules of the firewall-inbound.json the full fixture's import writes, as the engine
    // makes them.
    let src = fs::read_to_string(workspace.join("config/tests/fixtures/full.toml")).unwrap();
    let config = atomix_config::Config::parse(&src).unwrap();
    let inbound = inbound(&config.firewall_inbound_json().to_pretty());
    let rules = inbound_rules(&inbound, &Interfaces::default());
    let text = script(&tagged_handles(&nft.list_input().unwrap()), &rules);
    nft.check(&text).unwrap();
    nft.apply(&text).unwrap();
    let listing = Command::new(dir.path().join("nft-in-ns"))
        .args(["list", "chain", "inet", "filter", "input"])
        .output()
        .unwrap();
    assert!(listing.status.success());
    assert_eq!(String::from_utf8(listing.stdout).unwrap(), FULL_INPUT);
}
