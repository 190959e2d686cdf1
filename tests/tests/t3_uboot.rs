//! T3 through the real boot chain: QEMU runs Debian's u-boot-qemu (`-bios`), whose distro boot
//! finds the generated `boot.scr` on boot-a of a qemu-virt image made by
//! `atomix_image::flashable` (what `atomix image build` makes); the script picks the slot from
//! the counters in `abstate.txt`, counts down, saves, and boots `Image` + `initrd` with the
//! DESIGN section 2 command line. Every boot is one QEMU run (`-no-reboot`): a reset or a panic
//! ends it, the disk keeps the state, and the host reads the counters back between runs with
//! `atomix_image::bootenv` — as a board's next power cycle would find them.
//!
//! Needs the artifacts of `scripts/test.sh` (kernel, busybox, the aarch64 `/init`) and
//! `u-boot-qemu`. Console transcripts: `<target>/qemu-logs/t3-uboot-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use atomix_board::{Board, Slot};
use atomix_image::bootenv::{self, Base};
use atomix_image::disk;
use atomix_image::slot::{self, SlotSpec};
use atomix_qemu::{Ending, Outcome};
use atomix_repart::gpt;
use atomix_systests::{Artifacts, Probe, TEST_IMAGE_VERSION, build_test_rootfs, qemu_log_path};

const BUILD_ID: &str = "t3-uboot-1";
const GIB: u64 = 1 << 30;

struct Fixture {
    artifacts: Artifacts,
    board: Board,
    /// The qemu-virt image as `atomix image build` makes it (4 GiB sparse).
    image: PathBuf,
    /// `Image`, `initrd` and `boot.scr` for `write-slot`.
    boot_files: PathBuf,
    /// The probe rootfs as a squashfs (a healthy slot).
    good_rootfs: PathBuf,
    /// A rootfs whose `/sbin/init` exits 1: the kernel panics ("Attempted to kill init").
    broken_rootfs: PathBuf,
    dir: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture().unwrap_or_else(|e| panic!("T3 U-Boot fixture: {e:#}")))
}

fn build_fixture() -> anyhow::Result<Fixture> {
    let artifacts = Artifacts::locate()?;
    let board = Board::builtin("qemu-virt")?;
    let dir = artifacts.fresh_dir("t3-uboot")?;
    let good = dir.join("rootfs-good");
    build_test_rootfs(&good, &artifacts.busybox_aarch64)?;
    let good_rootfs = dir.join("good.sqfs");
    disk::pack_rootfs(&good, &good_rootfs, 0)?;
    let broken = dir.join("rootfs-broken");
    build_test_rootfs(&broken, &artifacts.busybox_aarch64)?;
    let init = broken.join("sbin/init");
    fs::write(
        &init,
        "#!/bin/sh\necho \"ROOTFS-BROKEN: this slot's init fails\"\nexit 1\n",
    )?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    let broken_rootfs = dir.join("broken.sqfs");
    disk::pack_rootfs(&broken, &broken_rootfs, 0)?;

    let flashed = artifacts.flashed_image(&good_rootfs, 4 * GIB, &dir, BUILD_ID)?;
    Ok(Fixture {
        artifacts,
        board,
        image: flashed.disk,
        boot_files: flashed.boot_files,
        good_rootfs,
        broken_rootfs,
        dir,
    })
}

/// A sparse copy of the fixture image for one test.
fn disk_copy(name: &str) -> PathBuf {
    let to = fixture().dir.join(name);
    let status = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&fixture().image)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}

/// One power cycle: U-Boot, boot.scr, and whatever it boots, until QEMU ends.
fn boot(name: &str, disk: &Path) -> (Outcome, Probe) {
    let f = fixture();
    let log_name = format!("t3-uboot-{name}");
    let cfg = f
        .artifacts
        .uboot_config(disk, Duration::from_secs(180), &log_name)
        .unwrap();
    let out = atomix_qemu::run(&cfg, &mut |_| {}).unwrap_or_else(|e| panic!("{name}: qemu: {e}"));
    let probe = Probe::parse(&out.console);
    (out, probe)
}

fn log(name: &str) -> String {
    qemu_log_path(&format!("t3-uboot-{name}"))
        .display()
        .to_string()
}

/// The slot boot.scr announced, and the tries it said are left.
fn chosen(name: &str, out: &Outcome) -> (String, u32) {
    let line = out
        .console
        .lines()
        .find(|l| l.starts_with("AtomixOS: booting slot "))
        .unwrap_or_else(|| panic!("{name}: boot.scr chose no slot (console: {})", log(name)));
    let mut words = line["AtomixOS: booting slot ".len()..].split_whitespace();
    let slot = words.next().unwrap().to_owned();
    let left = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no tries count in {line:?}"));
    (slot, left)
}

/// `[BOOT_A_LEFT, BOOT_B_LEFT]` as saved on the disk, and the slot boot.scr picks next.
fn counters(disk: &Path) -> ([u32; 2], Option<Slot>) {
    let state = bootenv::read(disk, &fixture().board).unwrap();
    ([state.ab.left[0].1, state.ab.left[1].1], state.ab.next)
}

fn cmdline(probe: &Probe) -> String {
    probe.cmdline.clone().unwrap_or_default()
}

fn mark_good(disk: &Path, slot: Slot) {
    bootenv::update(disk, &fixture().board, Base::Saved, 0, &mut |env| {
        atomix_board::env::mark_good(env, slot, 3)
    })
    .unwrap();
}

fn write_slot(disk: &Path, slot: Slot, rootfs: &Path) {
    let f = fixture();
    slot::write_slot(
        disk,
        &SlotSpec {
            board: &f.board,
            slot,
            boot_dir: f.boot_files.clone(),
            rootfs: rootfs.to_owned(),
            time: 0,
        },
        &mut |_| {},
    )
    .unwrap();
}

#[test]
fn uboot_runs_the_script_which_boots_slot_a_and_the_first_boot_completes() {
    let disk = disk_copy("first-boot.img");
    let (out, probe) = boot("first-boot", &disk);
    let name = "first-boot";
    assert!(
        out.console.contains(&format!(
            "AtomixOS build: {BUILD_ID} (version {TEST_IMAGE_VERSION}, board qemu-virt)"
        )),
        "{name}: no build ID (console: {})",
        log(name)
    );
    assert!(out.console.contains("Found U-Boot script /boot.scr"));
    assert_eq!(chosen(name, &out), ("A".to_owned(), 2));
    assert_eq!(out.ending, Ending::PowerOff, "console: {}", log(name));
    assert!(
        probe.done,
        "{name}: no ROOTFS-DONE (console: {})",
        log(name)
    );
    // The command line boot.scr made (DESIGN section 2), as the switched root sees it.
    let cmd = cmdline(&probe);
    assert!(
        cmd.contains("console=ttyAMA0 atomixos.lowerdev=/dev/vda2 rauc.slot=boot.0"),
        "{cmd}"
    );
    // First boot: repartitioned, fresh-flash marker in the switched root.
    assert_eq!(probe.fresh_flash, Some(true), "console: {}", log(name));
    let json = probe.initrd_json.clone().unwrap();
    assert_eq!(json["fresh_flash"], true);
    assert_eq!(json["rauc_slot"], "boot.0");
    assert_eq!(json["repart"]["outcome"], "applied", "{}", json["repart"]);
    let mut file = fs::File::open(&disk).unwrap();
    let size = file.metadata().unwrap().len();
    let table = gpt::read(&mut file, size).unwrap();
    let labels: Vec<&str> = table.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(labels, ["boot-a", "rootfs-a", "boot-b", "rootfs-b", "data"]);
    // The spent try was saved before the kernel started.
    assert_eq!(counters(&disk), ([2, 3], Some(Slot::A)));
}

#[test]
fn a_failing_slot_a_falls_back_to_b_after_three_tries_and_mark_good_keeps_b() {
    let disk = disk_copy("fallback.img");
    // Flash, first boot (creates boot-b, rootfs-b, data), and the system marks A good.
    let (out, probe) = boot("fallback-0-first", &disk);
    assert_eq!(
        out.ending,
        Ending::PowerOff,
        "console: {}",
        log("fallback-0-first")
    );
    assert!(probe.done);
    mark_good(&disk, Slot::A);
    assert_eq!(counters(&disk), ([3, 3], Some(Slot::A)));

    // An update writes B; slot A breaks (its init dies).
    write_slot(&disk, Slot::B, &fixture().good_rootfs);
    write_slot(&disk, Slot::A, &fixture().broken_rootfs);
    assert_eq!(
        counters(&disk),
        ([3, 3], Some(Slot::A)),
        "write-slot a keeps the counters"
    );

    for (try_no, left) in [(1, 2), (2, 1), (3, 0)] {
        let name = format!("fallback-{try_no}-a");
        let (out, probe) = boot(&name, &disk);
        assert_eq!(chosen(&name, &out), ("A".to_owned(), left), "{name}");
        assert!(
            out.console.contains("ROOTFS-BROKEN"),
            "{name}: slot A's init did not run (console: {})",
            log(&name)
        );
        assert!(
            matches!(&out.ending, Ending::Panic { message } if message.contains("Attempted to kill init")),
            "{name}: ended {} (console: {})",
            out.ending,
            log(&name)
        );
        assert!(!probe.done);
        assert_eq!(counters(&disk).0, [left, 3], "{name}");
    }
    assert_eq!(counters(&disk), ([0, 3], Some(Slot::B)));

    let name = "fallback-4-b";
    let (out, probe) = boot(name, &disk);
    assert_eq!(chosen(name, &out), ("B".to_owned(), 2));
    assert_eq!(out.ending, Ending::PowerOff, "console: {}", log(name));
    assert!(
        probe.done,
        "{name}: no ROOTFS-DONE (console: {})",
        log(name)
    );
    let cmd = cmdline(&probe);
    assert!(
        cmd.contains("atomixos.lowerdev=/dev/vda4 rauc.slot=boot.1"),
        "{cmd}"
    );
    assert_eq!(probe.fresh_flash, Some(false));
    assert_eq!(counters(&disk), ([0, 2], Some(Slot::B)));

    // The healthy B marks itself good: its counter is full again, and the next boot goes
    // straight to B without touching A.
    mark_good(&disk, Slot::B);
    assert_eq!(counters(&disk), ([0, 3], Some(Slot::B)));
    let name = "fallback-5-b";
    let (out, probe) = boot(name, &disk);
    assert_eq!(chosen(name, &out), ("B".to_owned(), 2));
    assert!(!out.console.contains("ROOTFS-BROKEN"));
    assert_eq!(out.ending, Ending::PowerOff, "console: {}", log(name));
    assert!(probe.done);
    assert_eq!(counters(&disk), ([0, 2], Some(Slot::B)));
}

#[test]
fn with_every_counter_spent_the_script_refills_them_and_resets() {
    let disk = disk_copy("all-spent.img");
    bootenv::update(&disk, &fixture().board, Base::Saved, 0, &mut |env| {
        env.set("BOOT_A_LEFT", "0")?;
        env.set("BOOT_B_LEFT", "0")
    })
    .unwrap();
    assert_eq!(counters(&disk), ([0, 0], None));
    let name = "all-spent";
    let (out, _) = boot(name, &disk);
    assert!(
        out.console
            .contains("AtomixOS: no slot has tries left (BOOT_ORDER=A B); every counter back to 3"),
        "console: {}",
        log(name)
    );
    assert!(!out.console.contains("Starting kernel"));
    assert_eq!(out.ending, Ending::Reset, "console: {}", log(name));
    assert_eq!(counters(&disk), ([3, 3], Some(Slot::A)));
}
