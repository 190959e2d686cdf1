//! The stage runner against the recording fake: stage order, report contents, log lines,
//! `atomix.break=`, values passed from stage to stage.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::fake::{CMDLINE, Call, Fake, Op, capture, lines, with_modules};
use crate::stage::STAGES;

#[test]
fn happy_path_order_and_report() {
    capture();
    let mut f = with_modules(Fake::new(CMDLINE));
    f.files.insert(
        PROC_SELF_STATUS.into(),
        "Name:\tinit\nVmPeak:\t    9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1900 kB\n".into(),
    );
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert_eq!(
        f.calls,
        [
            Call::MountEarly,
            Call::read_file("/proc/cmdline"),
            Call::read_file("/etc/atomix/modules.load"),
            Call::load_module("/lib/modules/virtio_blk.ko"),
            Call::load_module("/lib/modules/squashfs.ko"),
            Call::WaitDevice {
                spec: "PARTLABEL=rootfs-a".into(),
                timeout: Duration::from_secs(60),
            },
            Call::SlotDisk("/dev/vda2".into()),
            Call::ReadDisk("/dev/vda".into()),
            Call::WriteMarker("/run/atomixos/fresh-flash".into()),
            Call::LoadDefinitions("/etc/repart.d".into()),
            Call::mount_lower("/dev/vda2", "squashfs"),
            Call::AssembleOverlay {
                lower: "/run/rootfs-base".into(),
                overlay_root: "/run/overlay-root".into(),
                target: "/sysroot".into(),
            },
            Call::WriteMarker("/sysroot/etc/atomixos/fresh-flash".into()),
            Call::write_report(),
            Call::SwitchRoot {
                new_root: "/sysroot".into(),
                moves: MOVED_MOUNTS.iter().map(|m| (*m).to_owned()).collect(),
            },
            Call::read_file("/proc/self/status"),
            Call::read_file("/proc/self/smaps_rollup"),
            Call::write_report(),
            Call::ExecInit("/sbin/init".into()),
        ]
    );
    assert_eq!(f.contexts, STAGES);
    let stage_lines: Vec<String> = lines()
        .into_iter()
        .filter(|l| l.starts_with("INFO stage "))
        .collect();
    assert_eq!(
        stage_lines,
        [
            "INFO stage early: ok in 1.0 ms",
            "INFO stage cmdline: ok in 1.0 ms (lowerdev=PARTLABEL=rootfs-a fstype=squashfs init=/sbin/init rauc.slot=boot.0)",
            "INFO stage modules: ok in 3.0 ms (2 modules, 1 already loaded)",
            "INFO stage device: ok in 1.0 ms (PARTLABEL=rootfs-a -> /dev/vda2)",
            "INFO stage fresh-flash: ok in 3.0 ms (fresh flash: /dev/vda has no boot-b partition; wrote /run/atomixos/fresh-flash)",
            "INFO stage repart: ok in 1.0 ms (skipped: no /etc/repart.d in the initramfs)",
            "INFO stage lower: ok in 1.0 ms (/dev/vda2 squashfs at /run/rootfs-base)",
            "INFO stage overlay: ok in 1.0 ms (/sysroot)",
            "INFO stage marker: ok in 2.0 ms (/run/atomix/initrd.json, /sysroot/etc/atomixos/fresh-flash)",
            "INFO stage switch-root: ok in 1.0 ms (/sysroot is /)",
        ]
    );
    assert!(lines().contains(&"INFO boot done in 18.0 ms: exec /sbin/init".to_string()));

    // The marker stage's report has the stages before it; the final one has all of them.
    assert_eq!(f.reports.len(), 2);
    let first = &f.reports[0];
    assert_eq!(first["stages"].as_array().unwrap().len(), 8);
    let r = &f.reports[1];
    assert_eq!(r["version"], 1);
    let names: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "early",
            "cmdline",
            "modules",
            "device",
            "fresh-flash",
            "repart",
            "lower",
            "overlay",
            "marker",
            "switch-root"
        ]
    );
    assert!(
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "ok")
    );
    assert_eq!(r["stages"][2]["ms"], 3.0);
    assert_eq!(r["start_uptime_ms"], 900.0);
    assert_eq!(
        r["total_ms"], 17.0,
        "measured when the final report is serialised"
    );
    assert_eq!(
        first["peak_rss_kib"],
        serde_json::Value::Null,
        "only the final report has it"
    );
    assert_eq!(r["peak_rss_kib"], 2048);
    assert_eq!(
        r["slot"],
        serde_json::json!({"lowerdev": "PARTLABEL=rootfs-a", "device": "/dev/vda2", "fstype": "squashfs"})
    );
    assert_eq!(r["rauc_slot"], "boot.0");
    assert_eq!(r["init"], "/sbin/init");
    assert_eq!(
        r["modules"],
        serde_json::json!([
            {"name": "virtio_blk", "ms": 1.0, "result": "loaded"},
            {"name": "squashfs", "ms": 1.0, "result": "already-loaded"}
        ])
    );
    assert_eq!(r["warnings"], serde_json::json!([]));
    assert_eq!(r["fresh_flash"], true);
    assert_eq!(r["repart"]["outcome"], "skipped");
    assert_eq!(r["repart"]["reason"], "no /etc/repart.d in the initramfs");
    assert_eq!(r["repart"]["disk"], "/dev/vda");
}

#[test]
fn no_module_list_is_no_modules() {
    capture();
    let mut f = Fake::new(
        "atomixos.lowerdev=/dev/vda2 atomixos.lowerfstype=erofs init=/init2 atomix.bogus=1",
    );
    assert_eq!(run(&mut f), Ending::Exec("/init2".into()));
    assert!(!f.called(Op::LoadModule));
    assert!(f.calls.contains(&Call::mount_lower("/dev/vda2", "erofs")));
    let l = lines();
    assert!(
        l.contains(
            &"INFO stage modules: ok in 1.0 ms (no /etc/atomix/modules.load: no modules)"
                .to_string()
        ),
        "{l:?}"
    );
    assert!(l.contains(&"WARN unknown boot parameter atomix.bogus=1 ignored".to_string()));
    assert_eq!(
        f.reports[1]["warnings"],
        serde_json::json!(["unknown boot parameter atomix.bogus=1 ignored"])
    );
    assert_eq!(f.reports[1]["rauc_slot"], serde_json::Value::Null);
}

#[test]
fn rootdelay_sleeps_before_the_device_and_timeout_is_passed() {
    capture();
    let mut f =
        Fake::new("atomixos.lowerdev=/dev/vda2 rootwait rootdelay=2 atomix.device-timeout=7");
    run(&mut f);
    let i = f.calls.iter().position(|c| *c == Call::sleep(2)).unwrap();
    assert_eq!(
        f.calls[i + 1],
        Call::WaitDevice {
            spec: "/dev/vda2".into(),
            timeout: Duration::from_secs(7),
        }
    );
}

#[test]
fn device_timeout_reboots_after_the_delay() {
    capture();
    let mut f = Fake::new(&format!(
        "{CMDLINE} atomix.device-timeout=3 atomix.reboot-delay=4"
    ));
    f.fail = Some(Op::WaitDevice);
    assert_eq!(run(&mut f), Ending::Reboot);
    let tail = f.last_calls(3);
    assert_eq!(tail, [Call::write_report(), Call::sleep(4), Call::Reboot]);
    assert!(!f.called(Op::MountLower));
    let l = lines();
    let fatal: Vec<&String> = l.iter().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(
        fatal,
        [
            "ERROR fatal: stage device failed: timed out after 3 s waiting for PARTLABEL=rootfs-a (block devices seen: vda)",
            "ERROR hint: check atomixos.lowerdev= against the disk's partitions and that the storage driver is built in or in the initramfs",
            "ERROR rebooting in 4 s (atomix.emergency=reboot)",
        ]
    );
    assert!(
        l.contains(&"INFO stage device: failed in 3001.0 ms".to_string()),
        "{l:?}"
    );
    // The failure report records the failed stage.
    let r = f.reports.last().unwrap();
    assert_eq!(
        r["stages"][3],
        serde_json::json!({"name": "device", "ms": 3001.0, "outcome": "failed"})
    );
}

#[test]
fn module_failure_names_module_path_errno() {
    capture();
    let mut f = with_modules(Fake::new(CMDLINE));
    f.modules.insert("/lib/modules/squashfs.ko".into(), Err(8));
    assert_eq!(run(&mut f), Ending::Reboot);
    let l = lines();
    assert!(l.contains(&"ERROR fatal: stage modules failed: cannot load module squashfs from /lib/modules/squashfs.ko".to_string()), "{l:?}");
    assert!(
        l.contains(&"ERROR   caused by: Exec format error (os error 8)".to_string()),
        "{l:?}"
    );
    assert!(!f.called(Op::WaitDevice));
}

#[test]
fn missing_module_file() {
    capture();
    let mut f = with_modules(Fake::new(CMDLINE));
    f.modules.remove(Path::new("/lib/modules/virtio_blk.ko"));
    run(&mut f);
    assert!(lines().contains(&"ERROR fatal: stage modules failed: cannot open module virtio_blk at /lib/modules/virtio_blk.ko".to_string()));
}

#[test]
fn bad_cmdline_keeps_its_valid_policy_keys() {
    capture();
    // The malformed delay falls back to its default; the valid emergency= still counts.
    let mut f = Fake::new(
        "atomixos.lowerdev=PARTLABEL=rootfs-a atomix.emergency=halt atomix.reboot-delay=x",
    );
    assert_eq!(run(&mut f), Ending::PowerOff);
    assert_eq!(f.calls.last(), Some(&Call::PowerOff));
    assert!(lines().contains(&"ERROR fatal: stage cmdline failed: invalid boot parameter atomix.reboot-delay=\"x\": expected a whole number of seconds".to_string()));
}

#[test]
fn early_failure_does_not_write_a_report() {
    capture();
    let mut f = Fake::new(CMDLINE);
    f.fail = Some(Op::MountEarly);
    assert_eq!(run(&mut f), Ending::Reboot);
    assert_eq!(f.calls, [Call::MountEarly, Call::sleep(10), Call::Reboot]);
    assert!(
        lines().contains(
            &"ERROR fatal: stage early failed: cannot mount devtmpfs at /dev".to_string()
        )
    );
}

#[test]
fn exec_failure_is_fatal() {
    capture();
    let mut f = Fake::new(CMDLINE);
    f.fail = Some(Op::ExecInit);
    assert_eq!(run(&mut f), Ending::Reboot);
    assert!(
        lines()
            .contains(&"ERROR fatal: stage switch-root failed: cannot exec /sbin/init".to_string())
    );
}

#[test]
fn break_runs_shell_before_the_stage_and_continues() {
    capture();
    let mut f = Fake::new(&format!("{CMDLINE} atomix.break=lower"));
    f.shell = true;
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    let i = f.calls.iter().position(|c| *c == Call::RunShell).unwrap();
    assert!(f.calls[i - 1].op() == Op::LoadDefinitions);
    assert!(f.calls[i + 1].op() == Op::MountLower);
    assert!(lines().contains(&"WARN break before stage lower (atomix.break): starting /bin/sh; exit it to continue the boot".to_string()));
    // The shell's time is not charged to the stage.
    assert!(lines().contains(
        &"INFO stage lower: ok in 1.0 ms (/dev/vda2 squashfs at /run/rootfs-base)".to_string()
    ));
}

#[test]
fn break_without_shell_continues() {
    capture();
    let mut f = Fake::new(&format!("{CMDLINE} atomix.break=modules"));
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.called(Op::RunShell));
    assert!(lines().contains(&"WARN break before stage modules (atomix.break) but the initramfs has no /bin/sh; continuing".to_string()));
}
