//! T3 of provisioning on the real root filesystem (systemd, podman, nftables, RAUC), booted
//! through U-Boot and our `/init` in QEMU: `atomix-first-boot.service` finds a seed,
//! `atomix-provision` imports and activates it, and only a committed activation marks the
//! booted slot good, which the next boot's U-Boot counter shows.
//!
//! Two disks, four power cycles:
//! - disk 1, boot 1: a fresh flash whose boot partition carries a bundle seed (a config.toml
//!   and the files of a container image built on the device, offline) is provisioned from it:
//!   users, the container running, networkd/dnsmasq/chrony and nftables with the settings, the
//!   WAN's bootstrap port closed, the slot marked good;
//! - disk 1, boot 2: every later boot activates the config again and marks the slot good
//!   (`atomix-activate.service`); then /data is wiped;
//! - disk 1, boot 3: with a USB seed (a second virtio disk, a vfat labelled ATOMIX-SEED) the
//!   device is provisioned from USB, and the boot partition's seed is not replayed;
//! - disk 2, boot 1: a fresh flash with an invalid seed on its boot partition falls through to
//!   the USB seed (the error, with its line:col, in the journal), whose required container
//!   never becomes active: the import is rolled back and the slot is not marked good.
//!
//! Console transcripts: `<target>/qemu-logs/t3-provision-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_board::{Board, Slot};
use atomix_qemu::Ending;
use atomix_systests::appliance::{
    self, chosen_slot, counters, free_ports, http_get, journal, ok, run, tcp, wait_until,
};
use atomix_systests::seed::{self, probe_config};
use atomix_systests::{Artifacts, Guest};

/// First boot to provisioned, container build included: minutes under TCG.
const PROVISIONING: Duration = Duration::from_secs(1200);

/// A config whose required container cannot start (its image is nowhere: no registry).
fn failing_config(key: &str) -> String {
    format!(
        r#"version = 1

[users.admin]
isAdmin = true
ssh_key = "{key}"

[activation]
required = ["broken"]
timeout_seconds = 120

[containers.container.broken]
privileged = true

[containers.container.broken.Container]
Image = "localhost/missing:latest"
Exec = "/bin/true"
"#
    )
}

/// Two errors; the first at 1:11.
const INVALID: &str = "version = 2\n\n[users.admin]\nisAdmin = \"yes\"\n";

struct Fixture {
    artifacts: Artifacts,
    board: Board,
    dir: PathBuf,
    key: String,
}

fn fixture() -> Fixture {
    let artifacts = Artifacts::locate().unwrap();
    let dir = artifacts.fresh_dir("t3-provision").unwrap();
    let (_, key) = seed::ssh_keypair(&dir, "t3-provision").unwrap();
    Fixture {
        artifacts,
        board: Board::builtin("qemu-virt").unwrap(),
        dir,
        key,
    }
}

impl Fixture {
    /// A flashed 16 GiB disk of the real root filesystem.
    fn disk(&self, name: &str) -> PathBuf {
        let rootfs = self.artifacts.real_rootfs("qemu-virt").unwrap();
        let dir = self.dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        self.artifacts
            .flashed_image(
                &rootfs.squashfs,
                16 << 30,
                &dir,
                &format!("t3-provision-{name}"),
            )
            .unwrap()
            .disk
    }

    /// A bundle of `config` and the probe image's files (`tar` with `compress`).
    fn bundle(&self, name: &str, config: &str, compress: &str) -> PathBuf {
        seed::probe_bundle(&self.artifacts, &self.dir, name, config, compress).unwrap()
    }

    /// A USB stick holding `file` as `name`.
    fn usb(&self, stick: &str, file: &Path, name: &str) -> PathBuf {
        let image = self.dir.join(stick);
        seed::usb_stick(&image, file, name).unwrap();
        image
    }
}

fn boot(f: &Fixture, disks: &[&Path], name: &str, wan: &[(u16, u16)]) -> Guest {
    appliance::boot(
        &f.artifacts,
        disks,
        &format!("t3-provision-{name}"),
        wan.iter().map(|&(h, g)| tcp(h, g)).collect(),
        Vec::new(),
    )
}

/// The device runs what the config says: users, the container, network, firewall.
fn assert_provisioned(g: &mut Guest, admin: &str, page: &str, wan_8081: u16) {
    // Users: the admin in the admin groups with its key, the viewer not; both locked.
    let admin_groups = ok(g, &format!("id -nG {admin}"));
    assert!(admin_groups.contains("sudo"), "{admin_groups}");
    assert!(!ok(g, "id -nG viewer").contains("sudo"));
    assert_eq!(
        ok(
            g,
            &format!("stat -c '%U %a' /data/config/ssh-authorized-keys/{admin}")
        )
        .trim(),
        format!("{admin} 600")
    );
    // The container, built on the device from the bundle's files, serves its page on the WAN
    // port the firewall opened.
    ok(g, "systemctl is-active probe.service");
    assert_eq!(
        ok(g, "busybox wget -qO- http://127.0.0.1:8081/").trim(),
        page
    );
    assert_eq!(
        http_get(wan_8081, "/", Duration::from_secs(30)).map(|(_, body)| body.trim().to_owned()),
        Some(page.to_owned())
    );
    // nftables: the provisioned WAN rule; the bootstrap port closed; the LAN still open.
    let input = ok(g, "nft list chain inet filter input");
    assert!(
        input.contains(
            "iifname \"eth0\" tcp dport 8081 accept comment \"ATOMIXOS_PROVISIONED_INBOUND\""
        ),
        "{input}"
    );
    assert!(!input.contains("ATOMIXOS_BOOTSTRAP_WAN"), "{input}");
    assert!(input.contains("ATOMIXOS_LAN_DEFAULT_OPEN"), "{input}");
    // networkd: eth0's resolver and search domain; dnsmasq: the LAN's range and names; chrony.
    let dns = ok(g, "resolvectl dns eth0; resolvectl domain eth0");
    assert!(
        dns.contains("9.9.9.9") && dns.contains("example.lab"),
        "{dns}"
    );
    let lan = ok(g, "cat /etc/dnsmasq.d/atomixos-lan.conf");
    assert!(
        lan.contains("dhcp-range=172.20.30.50,172.20.30.99,255.255.255.0,24h"),
        "{lan}"
    );
    assert!(lan.contains("domain=lab"), "{lan}");
    ok(g, "systemctl is-active dnsmasq chrony systemd-networkd");
    let name = ok(g, "busybox nslookup gw.lab 172.20.30.1");
    assert!(name.contains("172.20.30.1"), "{name}");
    let chrony = ok(g, "cat /etc/atomixos/chrony-lan.conf");
    assert!(chrony.contains("server 172.20.30.254 iburst"), "{chrony}");
}

#[test]
fn seeds_provision_the_device_and_only_a_committed_activation_marks_the_slot_good() {
    let f = fixture();

    // --- Disk 1, boot 1: a fresh flash with a bundle on its boot partition. -----------------
    let disk = f.disk("one");
    let boot_bundle = f.bundle("boot", &probe_config("admin", &f.key, "boot-ok"), "--zstd");
    seed::put_boot_seed(&disk, &boot_bundle, "config.tar.zst").unwrap();
    let [wan_8080, wan_8081] = free_ports();
    let wan = [(wan_8080, 8080), (wan_8081, 8081)];
    let mut g = boot(&f, &[&disk], "1-boot-seed", &wan);
    assert_eq!(chosen_slot(&g), ("A".into(), "2".into()));
    wait_until(&mut g, "test -e /data/.completed_first_boot", PROVISIONING);
    let log = journal(&mut g, "atomix-first-boot");
    assert!(
        log.contains("seed found: /dev/vda1:config.tar.zst"),
        "{log}"
    );
    assert!(log.contains("marked the booted slot boot.0 good"), "{log}");
    ok(&mut g, "systemctl is-active atomix-first-boot.service");
    assert_provisioned(&mut g, "admin", "boot-ok", wan_8081);
    let seed = ok(&mut g, "cat /data/config/config.toml");
    assert_eq!(seed.trim(), probe_config("admin", &f.key, "boot-ok").trim());
    ok(&mut g, "test ! -e /data/.atomixos-boot-seed-pending");
    let marks = appliance::provision_marks(&mut g, "probe").unwrap();
    assert!(
        marks.systemd_start < marks.build_start
            && marks.build_start < marks.container_active
            && marks.container_active < marks.marked_good,
        "{marks:?}"
    );
    eprintln!(
        "t3-provision: systemd start -> provisioned and marked good {:.1} s (guest clock), \
         of which the container's build and start {:.1} s",
        marks.to_marked_good(),
        marks.container_start()
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(
        counters(&disk, &f.board),
        ([3, 3], Some(Slot::A)),
        "marked good"
    );

    // --- Disk 1, boot 2: the config is activated again, and the slot marked good again. -----
    let mut g = boot(&f, &[&disk], "2-activate", &wan);
    assert_eq!(chosen_slot(&g), ("A".into(), "2".into()));
    assert_eq!(
        ok(&mut g, "systemctl is-system-running --wait").trim(),
        "running"
    );
    assert!(journal(&mut g, "atomix-activate").contains("marked the booted slot good"));
    assert_eq!(
        run(&mut g, "systemctl is-active atomix-first-boot.service")
            .text()
            .trim(),
        "inactive",
        "first boot is done"
    );
    assert_provisioned(&mut g, "admin", "boot-ok", wan_8081);
    // /data is wiped.
    ok(
        &mut g,
        "systemctl stop probe.service probe-build.service \
         && rm -rf /data/* /data/.[!.]* && sync",
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(counters(&disk, &f.board), ([3, 3], Some(Slot::A)));

    // --- Disk 1, boot 3: the USB seed reprovisions; the boot seed is not replayed. -----------
    let usb_bundle = f.bundle("usb", &probe_config("operator", &f.key, "usb-ok"), "--gzip");
    let usb = f.usb("usb-one.img", &usb_bundle, "config.tar.gz");
    let mut g = boot(&f, &[&disk, &usb], "3-usb-seed", &wan);
    wait_until(&mut g, "test -e /data/.completed_first_boot", PROVISIONING);
    let log = journal(&mut g, "atomix-first-boot");
    assert!(log.contains("not a fresh flash"), "{log}");
    assert!(log.contains("seed found: /dev/vdb:config.tar.gz"), "{log}");
    assert!(!log.contains("/dev/vda1:config"), "{log}");
    assert_provisioned(&mut g, "operator", "usb-ok", wan_8081);
    assert_eq!(
        ok(&mut g, "cat /data/config/config.toml").trim(),
        probe_config("operator", &f.key, "usb-ok").trim()
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(counters(&disk, &f.board), ([3, 3], Some(Slot::A)));

    // --- Disk 2: an invalid boot seed, then a USB seed whose container never starts. --------
    let disk = f.disk("two");
    let invalid = f.dir.join("invalid.toml");
    fs::write(&invalid, INVALID).unwrap();
    seed::put_boot_seed(&disk, &invalid, "config.toml").unwrap();
    let failing = f.dir.join("failing.toml");
    fs::write(&failing, failing_config(&f.key)).unwrap();
    let usb = f.usb("usb-two.img", &failing, "config.toml");
    let mut g = boot(&f, &[&disk, &usb], "4-fall-through", &wan);
    wait_until(
        &mut g,
        "journalctl -b -u atomix-first-boot -o cat | grep -q \"Waiting for provisioning\"",
        PROVISIONING,
    );
    let log = journal(&mut g, "atomix-first-boot");
    assert!(
        log.contains("seed /dev/vda1:config.toml not used")
            && log.contains("/dev/vda1:config.toml:1:11: version"),
        "{log}"
    );
    assert!(log.contains("seed found: /dev/vdb:config.toml"), "{log}");
    assert!(
        log.contains("broken.service") && log.contains("rollback: discarded"),
        "{log}"
    );
    assert!(!log.contains("marked the booted slot"), "{log}");
    ok(
        &mut g,
        "test ! -e /data/config/config.toml && test ! -e /data/.completed_first_boot",
    );
    // Still unprovisioned: the console's port is open on the WAN again.
    assert!(ok(&mut g, "nft list chain inet filter input").contains("ATOMIXOS_BOOTSTRAP_WAN"));
    let status = ok(&mut g, "cat /run/atomixos/provisioning-status.json");
    assert!(
        status.contains("\"waiting\"") && status.contains("/dev/vdb:config.toml"),
        "{status}"
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(
        counters(&disk, &f.board),
        ([2, 3], Some(Slot::A)),
        "not marked good"
    );
}
