//! The network step on a copy of the image's `/etc` in a temporary directory, with a fake
//! sysfs and a recording runner: what it writes, what it leaves alone, what it removes, what
//! it reports, and that a plan that fails writes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_config::system::RenderError;
use atomix_provision::activate::{EtcNetwork, FakeRunner, Network, NetworkChanges, NetworkError};
use common::snapshot;

const WAN_DROP_IN: &str = "systemd/network/10-wan.network.d/50-atomixos.conf";
const LAN_DROP_IN: &str = "systemd/network/20-lan.network.d/50-atomixos.conf";
const ETH2: &str = "systemd/network/30-atomixos-eth2.network";
const RELOAD: [&str; 2] = ["networkctl", "reload"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    fs::read_to_string(workspace().join(format!("config/tests/fixtures/{name}.toml"))).unwrap()
}

/// A device: the image's `/etc`, eth1's address in sysfs, a config root.
struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    net: EtcNetwork<FakeRunner>,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let status = Command::new("cp")
            .arg("-a")
            .arg(workspace().join("rootfs/tree/etc"))
            .arg(root.join("etc"))
            .status()
            .unwrap();
        assert!(status.success());
        let eth1 = root.join("sys/class/net/eth1");
        fs::create_dir_all(&eth1).unwrap();
        fs::write(eth1.join("address"), "02:00:0a:2c:00:01\n").unwrap();
        let config = root.join("data/config");
        fs::create_dir_all(&config).unwrap();
        let net = EtcNetwork {
            etc: root.join("etc"),
            sysfs: root.join("sys"),
            runner: FakeRunner::default(),
        };
        Self {
            _dir: dir,
            root,
            config,
            net,
        }
    }

    fn etc(&self, path: &str) -> PathBuf {
        self.root.join("etc").join(path)
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.etc(path)).unwrap()
    }

    fn apply(&mut self, config: &str) -> Result<NetworkChanges, NetworkError> {
        fs::write(self.config.join("config.toml"), config).unwrap();
        self.net.apply(&self.config)
    }

    fn reloads(&self) -> usize {
        self.net.runner.ran.iter().filter(|r| **r == RELOAD).count()
    }
}

const ALL: NetworkChanges = NetworkChanges {
    network: true,
    dnsmasq: true,
    chrony: true,
};

#[test]
fn the_full_fixture_is_written_into_the_images_etc() {
    let mut d = Device::new();
    let before = d.read("systemd/network/10-wan.network");
    assert_eq!(d.apply(&fixture("full")).unwrap(), ALL);
    assert_eq!(d.net.runner.ran, [RELOAD]);
    // What is written is the golden rendering, mode 0644.
    let golden = workspace().join("config/tests/fixtures/full.etc");
    let want = snapshot(&golden).unwrap();
    for (path, entry) in &want {
        if let common::Entry::File(_, bytes) = entry {
            assert_eq!(d.read(path).as_bytes(), bytes.as_slice(), "{path}");
            let mode = fs::metadata(d.etc(path)).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o644, "{path}");
        }
    }
    // The drop-in directories are made; the base files and the rest of /etc are left alone.
    let mode = fs::metadata(d.etc("systemd/network/20-lan.network.d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(d.read("systemd/network/10-wan.network"), before);
    assert!(d.etc("chrony/chrony.conf").is_file());
    // No temporary file is left.
    let etc = snapshot(&d.root.join("etc")).unwrap();
    assert!(etc.keys().all(|p| !p.contains("atomixos-tmp")), "{etc:?}");
}

#[test]
fn a_second_apply_changes_nothing_rewrites_nothing_and_reloads_nothing() {
    let mut d = Device::new();
    d.apply(&fixture("full")).unwrap();
    let paths = [
        LAN_DROP_IN,
        WAN_DROP_IN,
        "hosts",
        "atomixos/chrony-lan.conf",
    ];
    let inodes = |d: &Device| -> Vec<u64> {
        let inode = |p: &&str| fs::metadata(d.etc(p)).unwrap().ino();
        paths.iter().map(inode).collect()
    };
    let first = inodes(&d);
    let before = snapshot(&d.root.join("etc"));
    assert_eq!(
        d.apply(&fixture("full")).unwrap(),
        NetworkChanges::default()
    );
    assert_eq!(d.reloads(), 1);
    assert_eq!(snapshot(&d.root.join("etc")), before);
    assert_eq!(inodes(&d), first, "rewritten");
}

#[test]
fn the_image_defaults_are_rewritten_only_where_the_rendering_differs() {
    let mut d = Device::new();
    // The minimal config renders the image's settings; only the comments differ.
    let changes = d.apply(&fixture("minimal")).unwrap();
    assert_eq!(changes, ALL);
    // hosts is already what the minimal config renders: left as it was.
    let hosts = d.etc("hosts");
    let ino = fs::metadata(&hosts).unwrap().ino();
    fs::set_permissions(
        d.etc("atomixos/dnsmasq-hosts"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // A wrong mode alone is a change.
    let changes = d.apply(&fixture("minimal")).unwrap();
    assert_eq!(
        changes,
        NetworkChanges {
            dnsmasq: true,
            ..NetworkChanges::default()
        }
    );
    let mode = fs::metadata(d.etc("atomixos/dnsmasq-hosts"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
    assert_eq!(fs::metadata(&hosts).unwrap().ino(), ino);
}

#[test]
fn each_change_is_reported_for_the_service_that_reads_it() {
    let mut d = Device::new();
    let full = fixture("full");
    d.apply(&full).unwrap();
    let only = |network, dnsmasq, chrony| NetworkChanges {
        network,
        dnsmasq,
        chrony,
    };
    let ntp = full.replace(
        "servers = [\"time.cloudflare.com\", \"192.168.1.1\"]",
        "servers = [\"pool.example.org\"]",
    );
    assert_eq!(d.apply(&ntp).unwrap(), only(false, false, true));
    assert!(
        d.read("atomixos/chrony-lan.conf")
            .contains("server pool.example.org iburst\n")
    );
    let range = ntp.replace("dhcp_end = \"10.44.0.200\"", "dhcp_end = \"10.44.0.150\"");
    assert_eq!(d.apply(&range).unwrap(), only(false, true, false));
    let alias = range.replace("\"gateway\", \"AtomixOS\"", "\"gw\"");
    assert_eq!(d.apply(&alias).unwrap(), only(false, true, false));
    assert!(d.read("hosts").contains(" gw gw.edge.lan "));
    assert_eq!(d.reloads(), 1);
    let wan = alias.replace(
        "dns_servers = [\"192.168.1.1\"]",
        "dns_servers = [\"192.168.1.2\"]",
    );
    assert_eq!(d.apply(&wan).unwrap(), only(true, false, false));
    assert!(d.read(WAN_DROP_IN).contains("DNS=192.168.1.2\n"));
    assert_eq!(d.reloads(), 2);
}

#[test]
fn stale_interface_files_and_an_unneeded_eth0_drop_in_are_removed() {
    let mut d = Device::new();
    let with_eth2 = fixture("full") + "\n[network.interfaces.eth2]\nmode = \"dhcp\"\n";
    d.apply(&with_eth2).unwrap();
    assert!(d.etc(ETH2).is_file());
    // Files that are not the step's stay.
    let others = [
        "systemd/network/30-other.network",
        "systemd/network/10-wan.network.d/60-local.conf",
    ];
    for other in others {
        fs::write(d.etc(other), "[Network]\n").unwrap();
    }
    symlink(
        "/dev/null",
        d.etc("systemd/network/30-atomixos-eth7.network"),
    )
    .unwrap();

    let changes = d.apply(&fixture("minimal")).unwrap();
    assert!(changes.network);
    assert_eq!(d.reloads(), 2);
    assert!(!d.etc(ETH2).exists());
    assert!(fs::symlink_metadata(d.etc("systemd/network/30-atomixos-eth7.network")).is_err());
    assert!(!d.etc(WAN_DROP_IN).exists());
    for other in others {
        assert_eq!(d.read(other), "[Network]\n", "{other}");
    }

    // With nothing stale and nothing different, nothing happens.
    assert_eq!(
        d.apply(&fixture("minimal")).unwrap(),
        NetworkChanges::default()
    );
    assert_eq!(d.reloads(), 2);
}

#[test]
fn a_symlink_is_replaced_not_followed() {
    let mut d = Device::new();
    let outside = d.root.join("outside.conf");
    fs::write(&outside, "keep me\n").unwrap();
    let link = d.etc("atomixos/chrony-lan.conf");
    fs::remove_file(&link).unwrap();
    symlink(&outside, &link).unwrap();
    d.apply(&fixture("full")).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
    assert!(
        d.read("atomixos/chrony-lan.conf")
            .contains("allow 10.44.0.0/24\n")
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep me\n");
}

/// Applies `config` and expects an error that leaves `/etc` exactly as it was.
fn fails_without_writing(d: &mut Device, config: &str) -> NetworkError {
    let before = snapshot(&d.root.join("etc"));
    let err = d.apply(config).unwrap_err();
    assert_eq!(snapshot(&d.root.join("etc")), before, "{err}");
    assert!(d.net.runner.ran.is_empty());
    err
}

#[test]
fn a_plan_that_fails_writes_nothing() {
    // Something in the way of the last file (chrony's, after the networkd and dnsmasq ones).
    let mut d = Device::new();
    let path = d.etc("atomixos/chrony-lan.conf");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let err = fails_without_writing(&mut d, &fixture("full"));
    assert!(
        matches!(&err, NetworkError::NotAFile { path: p } if *p == path),
        "{err}"
    );

    // A file where a drop-in directory goes.
    let mut d = Device::new();
    let dir = d.etc("systemd/network/20-lan.network.d");
    fs::write(&dir, "").unwrap();
    let err = fails_without_writing(&mut d, &fixture("full"));
    assert!(
        matches!(&err, NetworkError::NotADirectory { path: p } if *p == dir),
        "{err}"
    );

    // A host name pattern without the NIC's address.
    let mut d = Device::new();
    fs::remove_file(d.root.join("sys/class/net/eth1/address")).unwrap();
    let err = fails_without_writing(&mut d, &fixture("full"));
    assert!(
        matches!(err, NetworkError::Render(RenderError::NoMac)),
        "{err}"
    );

    // An address that is not a MAC.
    let mut d = Device::new();
    fs::write(d.root.join("sys/class/net/eth1/address"), "02:00\n").unwrap();
    let err = fails_without_writing(&mut d, &fixture("full"));
    assert!(matches!(err, NetworkError::Mac { .. }), "{err}");

    // A config that no longer parses, with its errors.
    let mut d = Device::new();
    let err = fails_without_writing(&mut d, "version = 2\n");
    let NetworkError::Config { errors, .. } = &err else {
        panic!("{err}");
    };
    assert!(errors.iter().any(|e| e.contains("version")), "{errors:?}");
}

#[test]
fn without_a_pattern_no_mac_is_needed() {
    let mut d = Device::new();
    fs::remove_file(d.root.join("sys/class/net/eth1/address")).unwrap();
    assert_eq!(d.apply(&fixture("eth1-lan")).unwrap(), ALL);
}

#[test]
fn an_unprovisioned_root_changes_nothing() {
    let mut d = Device::new();
    let before = snapshot(&d.root.join("etc"));
    assert_eq!(d.net.apply(&d.config).unwrap(), NetworkChanges::default());
    assert_eq!(snapshot(&d.root.join("etc")), before);
    assert!(d.net.runner.ran.is_empty());
}

#[test]
fn a_failed_reload_is_an_error() {
    let mut d = Device::new();
    d.net.runner.fail = true;
    let err = d.apply(&fixture("full")).unwrap_err();
    assert!(
        matches!(&err, NetworkError::Command { command, .. } if command == "networkctl reload"),
        "{err}"
    );
}
