//! The bootstrap WAN toggle with a recording firewall (T0).

#![allow(clippy::unwrap_used)]

use std::fs;

use atomix_provision::activate::bootstrap::{TAG_BOOTSTRAP_WAN, toggle, wan_wanted_open};
use atomix_provision::activate::{FakeFirewall, Interfaces};
use atomix_provision::store::{ConfigRoot, RealFs};

fn bootstrap_rules(fw: &FakeFirewall) -> Vec<String> {
    fw.rules
        .iter()
        .filter(|(_, r)| r.contains(TAG_BOOTSTRAP_WAN))
        .map(|(_, r)| r.clone())
        .collect()
}

#[test]
fn the_wan_port_is_open_exactly_while_unprovisioned_or_pending() {
    let dir = tempfile::tempdir().unwrap();
    let root = ConfigRoot::unchecked(&dir.path().join("config")).unwrap();
    let mut fw = FakeFirewall::default();
    let ifaces = Interfaces::default();

    // Unprovisioned (not even the directory): open, and one rule however often it runs.
    assert!(wan_wanted_open(&RealFs, &root).unwrap());
    for _ in 0..3 {
        assert!(toggle(&RealFs, &root, &mut fw, &ifaces).unwrap());
    }
    assert_eq!(
        bootstrap_rules(&fw),
        ["iifname \"eth0\" tcp dport 8080 accept comment \"ATOMIXOS_BOOTSTRAP_WAN\""]
    );

    // Provisioned: closed, whichever file says so.
    fs::create_dir_all(root.active()).unwrap();
    fs::write(root.active().join("admin-signers"), "k\n").unwrap();
    assert!(!toggle(&RealFs, &root, &mut fw, &ifaces).unwrap());
    assert!(bootstrap_rules(&fw).is_empty());
    fs::remove_file(root.active().join("admin-signers")).unwrap();
    fs::write(root.active_config(), "version = 1\n").unwrap();
    assert!(!toggle(&RealFs, &root, &mut fw, &ifaces).unwrap());
    let applied = fw.applied.len();
    assert!(!toggle(&RealFs, &root, &mut fw, &ifaces).unwrap());
    assert_eq!(
        fw.applied.len(),
        applied,
        "nothing to change: no transaction"
    );

    // A promotion pending: open again.
    fs::write(root.marker(), "pending\n").unwrap();
    assert!(toggle(&RealFs, &root, &mut fw, &ifaces).unwrap());
    assert_eq!(bootstrap_rules(&fw).len(), 1);
}
