//! T3 of the provisioning API on the real root filesystem in QEMU (issue 10): a device with no
//! seed waits and serves the console on the WAN's forwarded tcp/8080; `atomix device push` from
//! the host provisions it (first boot then marks the slot good); the API moves to the LAN
//! gateway's address, where a signed re-apply works; after a reboot it listens on the LAN
//! address only.
//!
//! Console transcripts: `<target>/qemu-logs/t3-api-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use atomix_board::{Board, Slot};
use atomix_qemu::Ending;
use atomix_systests::appliance::{
    self, counters, free_ports, http_get, journal, ok, tcp, wait_until,
};
use atomix_systests::seed::{self, probe_config};
use atomix_systests::{Artifacts, Guest, atomix_binary};

const PROVISIONING: Duration = Duration::from_secs(1200);

/// `atomix device ARGS`.
fn device(args: &[&str], file: Option<&Path>) -> Output {
    let mut cmd = Command::new(atomix_binary());
    cmd.arg("device").args(args);
    if let Some(f) = file {
        cmd.arg(f);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits until `GET /api/health` on `port` answers 200.
fn wait_for_api(port: u16, limit: Duration, g: &Guest) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if http_get(port, "/api/health", Duration::from_secs(10))
            .is_some_and(|(status, _)| status.contains(" 200 "))
        {
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!(
        "the API never answered on 127.0.0.1:{port} (console: {})",
        g.log()
    );
}

struct Fixture {
    artifacts: Artifacts,
    board: Board,
    dir: PathBuf,
    key: PathBuf,
    public: String,
}

fn fixture() -> Fixture {
    let artifacts = Artifacts::locate().unwrap();
    let dir = artifacts.fresh_dir("t3-api").unwrap();
    let (key, public) = seed::ssh_keypair(&dir, "t3-api").unwrap();
    Fixture {
        artifacts,
        board: Board::builtin("qemu-virt").unwrap(),
        dir,
        key,
        public,
    }
}

impl Fixture {
    /// A probe bundle (see `atomix_systests::seed`) named `<page>.tar.zst`, serving `<page>-ok`.
    fn bundle(&self, page: &str) -> PathBuf {
        let config = probe_config("admin", &self.public, page);
        let made = seed::probe_bundle(&self.artifacts, &self.dir, page, &config, "--zstd").unwrap();
        let named = self.dir.join(format!("{page}.tar.zst"));
        fs::rename(made, &named).unwrap();
        named
    }
}

#[test]
fn the_client_provisions_a_waiting_device_and_the_api_moves_to_the_lan() {
    let f = fixture();
    let rootfs = f.artifacts.real_rootfs("qemu-virt").unwrap();
    let disk = f
        .artifacts
        .flashed_image(&rootfs.squashfs, 16 << 30, &f.dir, "t3-api")
        .unwrap()
        .disk;
    let [wan_8080, wan_8081, lan_8080] = free_ports();
    let boot = |name: &str| -> Guest {
        appliance::boot(
            &f.artifacts,
            &[&disk],
            &format!("t3-api-{name}"),
            vec![tcp(wan_8080, 8080), tcp(wan_8081, 8081)],
            vec![tcp(lan_8080, 8080)],
        )
    };

    // --- Boot 1: no seed; the console on the WAN, the client provisions the device. --------
    let mut g = boot("1-console");
    wait_until(
        &mut g,
        "journalctl -b -u atomix-first-boot -o cat | grep -q \"Waiting for provisioning\"",
        PROVISIONING,
    );
    wait_for_api(wan_8080, Duration::from_secs(120), &g);
    let (status, page) = http_get(wan_8080, "/", Duration::from_secs(30)).unwrap();
    assert!(
        status.contains(" 200 ") && page.contains("<html"),
        "{status}\n{page}"
    );
    let url = format!("http://127.0.0.1:{wan_8080}");
    let first = f.bundle("console");
    let pushed = device(&["push", "--url", &url], Some(&first));
    assert!(pushed.status.success(), "{}", text(&pushed));
    wait_until(&mut g, "test -e /data/.completed_first_boot", PROVISIONING);
    let log = journal(&mut g, "atomix-first-boot");
    assert!(
        log.contains("a config arrived") && log.contains("marked the booted slot boot.0 good"),
        "{log}"
    );
    ok(&mut g, "systemctl is-active probe.service");
    assert_eq!(
        ok(&mut g, "busybox wget -qO- http://127.0.0.1:8081/").trim(),
        "console-ok"
    );
    // The console is gone once provisioned; the API moved to the LAN gateway's address.
    wait_for_api(lan_8080, Duration::from_secs(180), &g);
    let lan = format!("http://127.0.0.1:{lan_8080}");
    // A signed re-apply from the LAN.
    let second = f.bundle("reapply");
    let key = f.key.to_str().unwrap();
    let pushed = device(&["push", "--url", &lan, "--key", key], Some(&second));
    assert!(pushed.status.success(), "{}", text(&pushed));
    assert_eq!(
        ok(&mut g, "busybox wget -qO- http://127.0.0.1:8081/").trim(),
        "reapply-ok"
    );
    // An unsigned push is refused now.
    let refused = device(&["push", "--url", &lan], Some(&first));
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
    assert_eq!(
        counters(&disk, &f.board),
        ([3, 3], Some(Slot::A)),
        "marked good"
    );

    // --- Boot 2: the API listens on the LAN address only. ----------------------------------
    let mut g = boot("2-lan-only");
    assert_eq!(
        ok(&mut g, "systemctl is-system-running --wait").trim(),
        "running"
    );
    wait_for_api(lan_8080, Duration::from_secs(120), &g);
    let sockets = ok(&mut g, "ss -Hltn 'sport = :8080' | awk '{print $4}'");
    assert_eq!(sockets.trim(), "172.20.30.1:8080", "{sockets}");
    assert_eq!(
        http_get(wan_8080, "/api/health", Duration::from_secs(15)),
        None,
        "8080 on the WAN"
    );
    assert!(!ok(&mut g, "nft list chain inet filter input").contains("ATOMIXOS_BOOTSTRAP_WAN"));
    let exported = device(&["export", "--url", &lan, "--key", key], None);
    assert!(
        exported.status.success() && text(&exported).contains("reapply"),
        "{}",
        text(&exported)
    );
    let out = g.power_off(Duration::from_secs(180)).unwrap();
    assert_eq!(out.ending, Ending::PowerOff);
}
