//! T3: boots of the real Debian arm64 kernel in QEMU aarch64 (TCG) with our initramfs and a
//! disk image built by `atomix-image`, judged by console markers and the probe rootfs's report.
//!
//! Needs the artifacts `scripts/test.sh` prepares (the cache from `scripts/setup.sh` and the
//! `--profile init` aarch64 `/init`); a missing one fails the test, naming the command that makes
//! it. Console transcripts are kept in `<target>/qemu-logs/t3-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use atomix_image::initramfs;
use atomix_qemu::{Ending, Expect, Outcome};
use atomix_systests::{Artifacts, Probe, build_test_rootfs, qemu_config_for, qemu_log_path};

/// Everything the boots share, built once per test binary.
struct Fixture {
    kernel: PathBuf,
    /// Initramfs without a shell.
    initramfs: PathBuf,
    /// Initramfs with `--shell` (static busybox as /bin/sh).
    initramfs_shell: PathBuf,
    /// Disk image: boot-a + rootfs-a holding the probe rootfs.
    disk: PathBuf,
    /// The same disk with the start of rootfs-a overwritten by garbage.
    garbage_disk: PathBuf,
    /// PARTUUID of rootfs-a.
    rootfs_uuid: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture().unwrap_or_else(|e| panic!("T3 fixture: {e:#}")))
}

fn build_fixture() -> anyhow::Result<Fixture> {
    let artifacts = Artifacts::locate()?;
    let dir = artifacts.fresh_dir("t3")?;

    let mut spec = artifacts.qemu_virt_initramfs(false)?;
    let initramfs = dir.join("initramfs.img");
    initramfs::build(&spec, &initramfs)?;
    spec.shell = Some(artifacts.busybox_aarch64.clone());
    let initramfs_shell = dir.join("initramfs-shell.img");
    initramfs::build(&spec, &initramfs_shell)?;

    let rootfs = dir.join("rootfs");
    build_test_rootfs(&rootfs, &artifacts.busybox_aarch64)?;
    let disk = dir.join("disk.img");
    let report = artifacts.probe_disk(&rootfs, &initramfs, "t3", None, &disk)?;
    let rootfs_part = report
        .partitions
        .iter()
        .find(|p| p.label == "rootfs-a")
        .ok_or_else(|| anyhow::anyhow!("no rootfs-a in the built image"))?;

    // A slot holding garbage: 1 MiB of a fixed pseudo-random pattern over the squashfs start.
    let garbage_disk = dir.join("garbage.img");
    std::fs::copy(&disk, &garbage_disk)?;
    let mut file = OpenOptions::new().write(true).open(&garbage_disk)?;
    file.seek(SeekFrom::Start(rootfs_part.start))?;
    let mut state = 0x2545_f491_u32;
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    file.write_all(&garbage)?;
    file.sync_all()?;

    Ok(Fixture {
        kernel: artifacts.kernel_image,
        initramfs,
        initramfs_shell,
        disk,
        garbage_disk,
        rootfs_uuid: rootfs_part.uuid.clone(),
    })
}

/// One boot. Disks are attached with `-snapshot` so that parallel boots share the image
/// read-only and no boot changes it.
fn boot(name: &str, initramfs: &Path, disk: &Path, args: &str, script: Vec<Expect>) -> Outcome {
    let f = fixture();
    let append = format!("console=ttyAMA0 panic=-1 {args}");
    let mut cfg = qemu_config_for(
        &f.kernel,
        initramfs,
        Some(disk),
        &append,
        Duration::from_secs(90),
        &format!("t3-{name}"),
    );
    cfg.extra_args.push("-snapshot".to_owned());
    cfg.script = script;
    atomix_qemu::run(&cfg, &mut |_| {}).unwrap_or_else(|e| panic!("{name}: qemu: {e}"))
}

/// Fails with the log's path when `cond` is false.
fn check(name: &str, cond: bool, what: &str) {
    assert!(
        cond,
        "{name}: {what} (console: {})",
        qemu_log_path(&format!("t3-{name}")).display()
    );
}

/// The kernel timestamp (seconds) of the first console line containing `text`.
fn kernel_time(console: &str, text: &str) -> Option<f64> {
    console.lines().find(|l| l.contains(text)).and_then(|l| {
        let inner = l.trim_start().strip_prefix('[')?.split(']').next()?;
        inner.trim().parse().ok()
    })
}

/// Checks everything a successful boot must show, for the slot device `device`.
fn assert_booted(name: &str, outcome: &Outcome, lowerdev: &str) {
    check(
        name,
        outcome.ending == Ending::PowerOff,
        &format!("ended {}", outcome.ending),
    );
    let probe = Probe::parse(&outcome.console);
    check(name, probe.done, "the probe did not finish");
    check(name, probe.problems.is_empty(), "unparsable probe lines");
    check(name, probe.pid == Some(1), "the rootfs init is not PID 1");

    let root = probe.mount_at("/").expect("no mount at /");
    check(name, root.fstype == "overlay", "/ is not overlay");
    check(
        name,
        root.option_value("lowerdir") == Some("/run/rootfs-base")
            && root.option_value("upperdir") == Some("/run/overlay-root/upper")
            && root.option_value("workdir") == Some("/run/overlay-root/work"),
        &format!("overlay options: {}", root.options),
    );
    let base = probe
        .mount_at("/run/rootfs-base")
        .expect("no /run/rootfs-base");
    check(
        name,
        base.fstype == "squashfs" && base.has_option("ro") && base.source == "/dev/vda2",
        &format!("lower mount: {base:?}"),
    );
    let upper = probe
        .mount_at("/run/overlay-root")
        .expect("no /run/overlay-root");
    check(name, upper.fstype == "tmpfs", "upper is not tmpfs");
    for api in ["/dev", "/proc", "/sys", "/run"] {
        check(
            name,
            probe.mount_at(api).is_some(),
            &format!("{api} not moved"),
        );
    }
    check(name, probe.write_root_ok, "writing to / failed");
    check(
        name,
        probe.lower_writable == Some(false),
        "the slot is writable",
    );

    let json = probe.initrd_json.as_ref().expect("no initrd.json");
    let stages: Vec<&str> = json["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            assert_eq!(s["outcome"], "ok", "{name}: {s}");
            assert!(s["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{name}: {s}");
            s["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(stages, atomix_systests::STAGE_ORDER, "{name}");
    // This initramfs carries no repart data (first boot has its own tests, t3_firstboot): the
    // disk, which has no boot-b, is a fresh flash and repart skips.
    assert_eq!(json["fresh_flash"], true, "{name}");
    check(
        name,
        probe.fresh_flash == Some(true),
        "no fresh-flash marker",
    );
    assert_eq!(json["repart"]["outcome"], "skipped", "{name}");
    assert_eq!(
        json["repart"]["reason"], "no /etc/repart.d in the initramfs",
        "{name}"
    );
    assert_eq!(json["slot"]["lowerdev"], lowerdev, "{name}");
    assert_eq!(json["slot"]["device"], "/dev/vda2", "{name}");
    assert_eq!(json["slot"]["fstype"], "squashfs", "{name}");
    assert_eq!(json["init"], "/sbin/init", "{name}");
    let modules: Vec<&str> = json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        modules.contains(&"virtio_blk") && modules.contains(&"squashfs"),
        "{name}: {modules:?}"
    );
    // One log line per stage, with its duration.
    for stage in stages {
        check(
            name,
            outcome
                .console
                .contains(&format!("atomix-init: stage {stage}: ok in ")),
            &format!("no log line for stage {stage}"),
        );
    }
}

/// Checks a boot that failed in `stage` with `message` (and a hint), announced `policy_line`,
/// never reached the rootfs, and ended in a reset.
fn assert_fatal_then_reset(
    name: &str,
    out: &Outcome,
    stage: &str,
    message: &str,
    policy_line: &str,
) {
    let c = &out.console;
    check(
        name,
        out.ending == Ending::Reset,
        &format!("ended {}", out.ending),
    );
    check(
        name,
        c.contains(&format!("fatal: stage {stage} failed")) && c.contains(message),
        &format!("no `{stage}` failure saying `{message}`"),
    );
    check(name, c.contains("hint: "), "no hint");
    check(
        name,
        c.contains(policy_line),
        &format!("no `{policy_line}`"),
    );
    check(name, !c.contains("ROOTFS-INIT"), "the rootfs ran");
}

#[test]
fn boots_from_device_path() {
    let f = fixture();
    let out = boot(
        "device-path",
        &f.initramfs,
        &f.disk,
        "atomixos.lowerdev=/dev/vda2",
        vec![],
    );
    assert_booted("device-path", &out, "/dev/vda2");
    let json = Probe::parse(&out.console).initrd_json.unwrap();
    assert!(json["rauc_slot"].is_null());
}

#[test]
fn boots_from_partlabel_and_records_rauc_slot() {
    let f = fixture();
    let out = boot(
        "partlabel",
        &f.initramfs,
        &f.disk,
        "atomixos.lowerdev=PARTLABEL=rootfs-a rauc.slot=boot.0 atomix.frobnicate=1",
        vec![],
    );
    assert_booted("partlabel", &out, "PARTLABEL=rootfs-a");
    let probe = Probe::parse(&out.console);
    let json = probe.initrd_json.unwrap();
    assert_eq!(json["rauc_slot"], "boot.0");
    // Passed through untouched to the real init.
    assert!(probe.cmdline.unwrap().contains("rauc.slot=boot.0"));
    // An unknown atomix.* key warns and is recorded.
    let warnings = json["warnings"].to_string();
    assert!(warnings.contains("atomix.frobnicate"), "{warnings}");
}

#[test]
fn boots_from_partuuid() {
    let f = fixture();
    let lowerdev = format!(
        "atomixos.lowerdev=PARTUUID={}",
        f.rootfs_uuid.to_lowercase()
    );
    let out = boot("partuuid", &f.initramfs, &f.disk, &lowerdev, vec![]);
    assert_booted(
        "partuuid",
        &out,
        &format!("PARTUUID={}", f.rootfs_uuid.to_uppercase()),
    );
}

#[test]
fn missing_slot_device_times_out_then_reboots() {
    let f = fixture();
    let name = "device-timeout";
    let out = boot(
        name,
        &f.initramfs,
        &f.disk,
        "atomixos.lowerdev=PARTLABEL=rootfs-z atomix.device-timeout=3 atomix.reboot-delay=2",
        vec![],
    );
    assert_fatal_then_reset(
        name,
        &out,
        "device",
        "timed out after 3 s waiting for PARTLABEL=rootfs-z",
        "rebooting in 2 s",
    );
    let c = &out.console;
    // Guest clock: the wait lasted the timeout, and the reset came after the delay.
    let start = kernel_time(c, "atomix-init: stage cmdline: ok").unwrap();
    let fatal = kernel_time(c, "fatal: stage device failed").unwrap();
    let reset = kernel_time(c, "reboot: Restarting system").unwrap();
    assert!(
        (2.9..4.5).contains(&(fatal - start)),
        "waited {:.2} s for a 3 s timeout",
        fatal - start
    );
    assert!(
        (1.9..3.5).contains(&(reset - fatal)),
        "rebooted {:.2} s after the error, delay 2 s",
        reset - fatal
    );
}

#[test]
fn garbage_slot_fails_to_mount_naming_device_and_fs() {
    let f = fixture();
    let name = "garbage-slot";
    let out = boot(
        name,
        &f.initramfs,
        &f.garbage_disk,
        "atomixos.lowerdev=PARTLABEL=rootfs-a atomix.reboot-delay=1",
        vec![],
    );
    assert_fatal_then_reset(
        name,
        &out,
        "lower",
        "cannot mount /dev/vda2 (squashfs) read-only at /run/rootfs-base",
        "rebooting in 1 s",
    );
}

#[test]
fn emergency_shell_is_interactive_then_reboots() {
    let f = fixture();
    let name = "emergency-shell";
    let out = boot(
        name,
        &f.initramfs_shell,
        &f.disk,
        "atomixos.lowerdev=PARTLABEL=rootfs-z atomix.device-timeout=1 atomix.emergency=shell",
        // The echo of the typed line shows `$((6*7))`, never `42`: only the shell prints it.
        vec![Expect::new(
            "the machine reboots when it exits",
            "echo SHELL-$((6*7)); exit",
        )],
    );
    check(
        name,
        out.ending == Ending::Reset,
        &format!("ended {}", out.ending),
    );
    let c = &out.console;
    check(name, c.contains("fatal: stage device failed"), "no error");
    check(
        name,
        c.contains("SHELL-42"),
        "the shell did not run the command",
    );
    check(
        name,
        c.contains("shell exited; rebooting"),
        "no reboot after the shell",
    );
}

#[test]
fn break_before_overlay_gives_a_shell_then_continues() {
    let f = fixture();
    let name = "break-overlay";
    let out = boot(
        name,
        &f.initramfs_shell,
        &f.disk,
        "atomixos.lowerdev=PARTLABEL=rootfs-a atomix.break=overlay",
        vec![Expect::new(
            "exit it to continue the boot",
            // Before the overlay stage: the slot is mounted, /sysroot is not.
            "echo MOUNTS-$(busybox grep -c ' /run/rootfs-base ' /proc/mounts)-$(busybox grep -c ' /sysroot ' /proc/mounts); exit",
        )],
    );
    let c = &out.console;
    let brk = c
        .find("break before stage overlay")
        .expect("no break notice");
    let lower = c.find("stage lower: ok").expect("no lower stage");
    let overlay = c
        .find("stage overlay: ok")
        .expect("no overlay stage after the shell");
    assert!(
        lower < brk && brk < overlay,
        "{name}: break not between lower and overlay"
    );
    check(
        name,
        c.contains("MOUNTS-1-0"),
        "the shell did not see the pre-overlay mounts",
    );
    assert_booted(name, &out, "PARTLABEL=rootfs-a");
}
