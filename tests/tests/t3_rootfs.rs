//! T3 with the real root filesystem: the AtomixOS squashfs `scripts/rootfs.sh` builds (Debian
//! trixie, systemd, networkd, dnsmasq, chrony, sshd, nftables, podman with Quadlet, RAUC) in a
//! 16 GiB qemu-virt image, booted through U-Boot, boot.scr and our `/init` with both NICs on
//! restricted user networking. The guest is read over its serial console (the qemu-virt board
//! logs root in there) and from the host through the forwarded ports.
//!
//! Three boots of one disk, each a QEMU run, because a boot to multi-user takes a minute or two
//! under TCG: the first boot (repartitioning, then the whole device checked, RAUC's mark-good),
//! the steady state of slot A after slot B was written (what persisted, then RAUC's mark-bad),
//! and the fallback to slot B that mark-bad caused.
//!
//! Needs the artifacts of `scripts/test.sh`, the root filesystem included. Console transcripts:
//! `<target>/qemu-logs/t3-rootfs-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use atomix_board::{Board, Slot};
use atomix_image::slot::{self, SlotSpec};
use atomix_qemu::{Ending, Outcome};
use atomix_systests::appliance::{self, banner, chosen_slot, free_ports, http_get, ok, run, tcp};
use atomix_systests::{Artifacts, Guest};

const BUILD_ID: &str = "t3-rootfs-1";

/// Host ports forwarded into the guest for one boot.
struct Ports {
    wan_8080: u16,
    wan_22: u16,
    wan_8081: u16,
    lan_22: u16,
    lan_8081: u16,
}

impl Ports {
    fn pick() -> Self {
        let [wan_8080, wan_22, wan_8081, lan_22, lan_8081] = free_ports();
        Self {
            wan_8080,
            wan_22,
            wan_8081,
            lan_22,
            lan_8081,
        }
    }
}

struct Fixture {
    artifacts: Artifacts,
    board: Board,
    disk: PathBuf,
    rootfs: PathBuf,
    boot_files: PathBuf,
    key: PathBuf,
}

fn fixture() -> Fixture {
    let artifacts = Artifacts::locate().unwrap();
    let rootfs = artifacts.real_rootfs("qemu-virt").unwrap();
    let board = Board::builtin("qemu-virt").unwrap();
    let dir = artifacts.fresh_dir("t3-rootfs").unwrap();
    let image = artifacts
        .flashed_image(&rootfs.squashfs, 16 << 30, &dir, BUILD_ID)
        .unwrap();
    let key = dir.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "t3-rootfs", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success(), "ssh-keygen");
    Fixture {
        artifacts,
        board,
        disk: image.disk,
        rootfs: rootfs.squashfs,
        boot_files: image.boot_files,
        key,
    }
}

/// One power cycle with both NICs: U-Boot, boot.scr, /init, systemd, until a root shell.
fn boot(f: &Fixture, name: &str, ports: &Ports) -> Guest {
    appliance::boot(
        &f.artifacts,
        &[&f.disk],
        &format!("t3-rootfs-{name}"),
        vec![
            tcp(ports.wan_8080, 8080),
            tcp(ports.wan_22, 22),
            tcp(ports.wan_8081, 8081),
        ],
        vec![tcp(ports.lan_22, 22), tcp(ports.lan_8081, 8081)],
    )
}

/// The boot reached multi-user with every unit working: `running`, nothing failed.
fn assert_healthy(guest: &mut Guest) {
    let state = run(guest, "systemctl is-system-running --wait");
    let failed = ok(guest, "systemctl --failed --plain --no-legend");
    assert_eq!(
        (state.text().trim(), failed.trim()),
        ("running", ""),
        "console: {}",
        guest.log()
    );
    ok(guest, "systemctl is-active multi-user.target");
}

/// `[BOOT_A_LEFT, BOOT_B_LEFT]` and the next slot, read from the disk by the host.
fn counters(f: &Fixture) -> ([u32; 2], Option<Slot>) {
    appliance::counters(&f.disk, &f.board)
}

/// `ssh` to the guest's LAN port as root with the test key (or `extra` options).
fn ssh(f: &Fixture, port: u16, extra: &[&str], command: &str) -> std::process::Output {
    Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(&f.key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=60",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(extra)
        .arg("root@127.0.0.1")
        .arg(command)
        .output()
        .unwrap()
}

/// A root and a rootless (appsvc) Quadlet container from images built in the guest from a
/// Containerfile (no registry): busybox httpd answering `probe-ok` on 8081 (host network) and
/// 8082 (pasta, published on the guest's 127.0.0.1).
fn start_quadlet_containers(guest: &mut Guest) {
    ok(
        guest,
        "mkdir -p /data/probe/www && cp /usr/bin/busybox /data/probe/busybox \
         && echo probe-ok > /data/probe/www/index.html \
         && printf 'FROM scratch\\nCOPY busybox /bin/busybox\\nCOPY www /www\\n' > /data/probe/Containerfile",
    );
    for (dir, name, port, network) in [
        ("/etc/containers/systemd", "probe", 8081, "Network=host"),
        (
            "/etc/containers/systemd/users/1000",
            "probe-user",
            8082,
            "Network=pasta\nPublishPort=127.0.0.1:8082:8082",
        ),
    ] {
        ok(
            guest,
            &format!(
                "mkdir -p {dir}\n\
                 cat > {dir}/{name}.build <<'EOF'\n[Build]\nImageTag=localhost/{name}:latest\n\
                 File=/data/probe/Containerfile\nSetWorkingDirectory=/data/probe\nEOF\n\
                 cat > {dir}/{name}.container <<'EOF'\n[Container]\nImage={name}.build\n\
                 Exec=/bin/busybox httpd -f -p {port} -h /www\n{network}\nEOF"
            ),
        );
    }
    ok(
        guest,
        "systemctl daemon-reload && systemctl start probe.service",
    );
    ok(guest, "systemctl is-active probe.service");
    assert_eq!(
        ok(guest, "busybox wget -qO- http://127.0.0.1:8081/").trim(),
        "probe-ok"
    );
    // Rootless: appsvc's user manager, as the provisioner starts it.
    ok(
        guest,
        "loginctl enable-linger appsvc \
         && until systemctl --user -M appsvc@ is-system-running >/dev/null 2>&1; do sleep 1; done; \
         systemctl --user -M appsvc@ daemon-reload \
         && systemctl --user -M appsvc@ start probe-user.service",
    );
    ok(
        guest,
        "systemctl --user -M appsvc@ is-active probe-user.service",
    );
    assert_eq!(
        ok(guest, "busybox wget -qO- http://127.0.0.1:8082/").trim(),
        "probe-ok"
    );
    let owners = ok(guest, "ps -o user= -C busybox | sort -u | tr '\\n' ' '");
    assert!(
        owners.contains("root") && owners.contains("appsvc"),
        "{owners}"
    );
}

#[test]
fn the_real_root_filesystem_boots_to_multi_user_and_falls_back_to_b_after_mark_bad() {
    let f = fixture();

    // --- Boot 1: the first boot of a flashed disk. ------------------------------------------
    let ports = Ports::pick();
    let mut g = boot(&f, "1-first", &ports);
    assert_eq!(chosen_slot(&g), ("A".into(), "2".into()));
    assert_healthy(&mut g);
    // /data: f2fs on the partition /init made, with its directories.
    assert_eq!(
        ok(&mut g, "findmnt -no FSTYPE,SOURCE /data").trim(),
        "f2fs /dev/vda5"
    );
    assert_eq!(
        ok(&mut g, "ls /data/config | tr '\\n' ' '").trim(),
        "quadlet ssh-authorized-keys"
    );
    ok(&mut g, "test -f /etc/atomixos/fresh-flash");
    // Network: eth0 is the first NIC (the WAN, though its MAC is the higher one) with a DHCP
    // lease; eth1 the LAN at its static address.
    assert_eq!(
        ok(&mut g, "cat /sys/class/net/eth0/address").trim(),
        "52:54:00:a7:00:99"
    );
    assert!(ok(&mut g, "ip -4 -o addr show dev eth0").contains("inet 10.0.2.15/24"));
    assert!(ok(&mut g, "ip -4 -o addr show dev eth1").contains("inet 172.20.30.1/24"));
    assert!(ok(&mut g, "networkctl status eth0 --no-pager").contains("DHCPv4"));
    ok(
        &mut g,
        "systemctl is-active dnsmasq chrony ssh nftables systemd-networkd systemd-resolved",
    );
    // dnsmasq answers DNS on the LAN address only.
    let sockets = ok(&mut g, "ss -Hlnup");
    assert!(sockets.contains("172.20.30.1:53"), "{sockets}");
    assert!(!sockets.contains("10.0.2.15:53"), "{sockets}");
    // The base firewall, with the WAN's tcp/8080 open while unprovisioned.
    let input = ok(&mut g, "nft list chain inet filter input");
    for rule in [
        "policy drop;",
        "iif \"lo\" accept",
        "ct state established,related accept",
        "iifname \"eth1\" accept comment \"ATOMIXOS_LAN_DEFAULT_OPEN\"",
        "iifname \"eth0\" tcp dport 8080 accept comment \"ATOMIXOS_BOOTSTRAP_WAN\"",
    ] {
        assert!(input.contains(rule), "{rule}:\n{input}");
    }
    assert!(ok(&mut g, "nft list chain inet filter forward").contains("policy drop;"));

    // sshd: keys from /data only.
    let key = fs::read_to_string(f.key.with_extension("pub")).unwrap();
    ok(
        &mut g,
        &format!(
            "echo '{}' > /data/config/ssh-authorized-keys/root",
            key.trim()
        ),
    );
    let banner_lan = banner(ports.lan_22, Duration::from_secs(60)).unwrap_or_default();
    assert!(banner_lan.starts_with("SSH-2.0-OpenSSH"), "{banner_lan:?}");
    let login = ssh(&f, ports.lan_22, &[], "cat /proc/cmdline");
    assert!(
        login.status.success()
            && String::from_utf8_lossy(&login.stdout).contains("rauc.slot=boot.0"),
        "{login:?}"
    );
    let password = ssh(
        &f,
        ports.lan_22,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        "true",
    );
    assert!(!password.status.success());
    assert!(
        String::from_utf8_lossy(&password.stderr).contains("Permission denied (publickey)"),
        "{password:?}"
    );
    assert_eq!(
        banner(ports.wan_22, Duration::from_secs(15)),
        None,
        "ssh on the WAN"
    );
    // tcp/8080 on the WAN reaches the provisioner's API (the device is not provisioned yet).
    let health = http_get(ports.wan_8080, "/api/health", Duration::from_secs(120));
    assert!(
        health
            .as_ref()
            .is_some_and(|(status, _)| status.contains(" 200 ")),
        "{health:?}"
    );

    // Quadlet, rootful and rootless; the rootful one is reachable from the LAN, not the WAN.
    start_quadlet_containers(&mut g);
    assert_eq!(
        http_get(ports.lan_8081, "/", Duration::from_secs(30))
            .map(|(_, body)| body.trim().to_owned())
            .as_deref(),
        Some("probe-ok")
    );
    assert_eq!(
        http_get(ports.wan_8081, "/", Duration::from_secs(15)),
        None,
        "8081 on the WAN"
    );

    // RAUC names the booted slot; mark-good gives it its tries back on the disk.
    let status = ok(&mut g, "rauc status --output-format=json");
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["booted"], "boot.0");
    assert_eq!(status["compatible"], "atomixos-qemu-virt");
    ok(&mut g, "rauc status mark-good");
    let host_key = ok(&mut g, "cat /data/ssh/ssh_host_ed25519_key.pub");
    // A re-apply cut off after its promotion: the previous root in the rollback, the marker
    // still there. The next boot's atomix-config-recover.service puts the previous one back.
    ok(
        &mut g,
        "mkdir -p /data/config && cp -a /data/config /data/config-rollback \
         && echo 'previous' > /data/config-rollback/config.toml \
         && echo 'half-applied' > /data/config/config.toml \
         && printf 'pending\\n' > /data/config.atomixos-promotion-pending && sync",
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(counters(&f), ([3, 3], Some(Slot::A)), "mark-good");

    // An update brings slot B.
    slot::write_slot(
        &f.disk,
        &SlotSpec {
            board: &f.board,
            slot: Slot::B,
            boot_dir: f.boot_files.clone(),
            rootfs: f.rootfs.clone(),
            time: 0,
        },
        &mut |_| {},
    )
    .unwrap();

    // --- Boot 2: steady state of slot A. ----------------------------------------------------
    let ports = Ports::pick();
    let mut g = boot(&f, "2-steady", &ports);
    // U-Boot saw the counter mark-good restored: 3, minus this boot's try.
    assert_eq!(chosen_slot(&g), ("A".into(), "2".into()));
    assert_healthy(&mut g);
    let initrd: serde_json::Value =
        serde_json::from_str(&ok(&mut g, "cat /run/atomix/initrd.json")).unwrap();
    assert_eq!(initrd["fresh_flash"], false);
    assert_eq!(run(&mut g, "test -e /etc/atomixos/fresh-flash").status, 1);
    // The interrupted promotion was undone before anything read the config.
    assert_eq!(
        ok(&mut g, "cat /data/config/config.toml").trim(),
        "previous"
    );
    ok(
        &mut g,
        "test ! -e /data/config-rollback && test ! -e /data/config.atomixos-promotion-pending",
    );
    let recovered = ok(
        &mut g,
        "journalctl -b -u atomix-config-recover.service -o cat",
    );
    assert!(
        recovered.contains("restored the previous config root"),
        "{recovered}"
    );
    ok(&mut g, "rm /data/config/config.toml");
    // What lives on /data outlived the per-boot root: the images built, the host keys.
    ok(&mut g, "podman image exists localhost/probe:latest");
    assert_eq!(
        ok(&mut g, "cat /data/ssh/ssh_host_ed25519_key.pub"),
        host_key
    );
    ok(&mut g, "rauc status mark-bad");
    let order = ok(&mut g, "atomix env --board qemu-virt /dev/vda print");
    assert!(order.contains("BOOT_ORDER=B\n"), "{order}");
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(counters(&f), ([0, 3], Some(Slot::B)), "mark-bad");

    // --- Boot 3: U-Boot falls back to slot B. -----------------------------------------------
    let ports = Ports::pick();
    let mut g = boot(&f, "3-slot-b", &ports);
    assert_eq!(chosen_slot(&g), ("B".into(), "2".into()));
    assert_healthy(&mut g);
    let cmdline = ok(&mut g, "cat /proc/cmdline");
    assert!(
        cmdline.contains("atomixos.lowerdev=/dev/vda4 rauc.slot=boot.1"),
        "{cmdline}"
    );
    let status = ok(&mut g, "rauc status --output-format=json");
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["booted"], "boot.1");
    // systemd finds nothing wrong with our units (the image has no manual pages to check).
    let verify = ok(
        &mut g,
        "cd /etc/systemd/system && systemd-analyze verify --man=no data.mount atomix-data-failed.service \
         atomix-ssh-hostkeys.service atomix-bootstrap-wan.service atomix-config-recover.service \
         atomix-first-boot.service atomix-activate.service atomix-provision-api.service \
         rauc.service ssh.service \
         systemd-networkd-wait-online.service",
    );
    for ours in ["data.mount", "atomix-", "rauc.service", "atomixos.conf"] {
        assert!(
            !verify.lines().any(|l| l.contains(ours)),
            "systemd-analyze verify: {verify}"
        );
    }
    let out: Outcome = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
}
