//! First boot through the runner on the recording fake: the fresh-flash decision, the repart
//! stage's outcomes, its modules and the markers.

use std::path::Path;

use atomix_repart::apply::{Current, FormatReason, Pending, PendingFormat};
use atomix_repart::definitions::Format;
use atomix_repart::gpt::Guid;
use atomix_repart::plan::{self as repart_plan, PlanOptions};

use super::FRESH_FLASH_SYSROOT;
use crate::boot::{Ending, run};
use crate::fake::{
    CMDLINE, Call, Fake, MIB, Op, board_definitions, capture, first_boot, flashed, lines, pos,
    stage_detail,
};
use crate::modules::MODULES_REPART_LOAD;

#[test]
fn first_boot_loads_repart_modules_then_applies_and_marks() {
    capture();
    let mut f = first_boot(CMDLINE);
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    // Order: table read once, marker in /run, plan checked, modules, apply, then the slot.
    let read = pos(&f, &Call::ReadDisk("/dev/vda".into()));
    let run_marker = pos(&f, &Call::WriteMarker("/run/atomixos/fresh-flash".into()));
    let pending = pos(
        &f,
        &Call::RepartPending {
            actions: 5,
            disk: "/dev/vda".into(),
        },
    );
    let list = pos(&f, &Call::read_file("/etc/atomix/modules-repart.load"));
    let f2fs = pos(&f, &Call::load_module("/lib/modules/f2fs.ko"));
    let apply = pos(
        &f,
        &Call::RepartApply {
            disk: "/dev/vda".into(),
            mount_dir: "/run/atomix/repart".into(),
        },
    );
    let lower = pos(&f, &Call::mount_lower("/dev/vda2", "squashfs"));
    let overlay = pos(
        &f,
        &Call::AssembleOverlay {
            lower: "/run/rootfs-base".into(),
            overlay_root: "/run/overlay-root".into(),
            target: "/sysroot".into(),
        },
    );
    let sysroot_marker = pos(
        &f,
        &Call::WriteMarker("/sysroot/etc/atomixos/fresh-flash".into()),
    );
    assert!(read < run_marker && run_marker < pending && pending < list);
    assert!(list < f2fs && f2fs < apply && apply < lower);
    assert!(overlay < sysroot_marker);
    assert_eq!(
        f.calls.iter().filter(|c| c.op() == Op::ReadDisk).count(),
        1,
        "the table is read once, before repart"
    );
    assert!(f.markers.contains(Path::new("/run/atomixos/fresh-flash")));
    assert!(
        f.markers
            .contains(Path::new("/sysroot/etc/atomixos/fresh-flash"))
    );

    assert_eq!(
        stage_detail("repart"),
        "(applied on /dev/vda: 3 changed in the table (created: 3 boot-b, 4 rootfs-b, 5 data); formatted: 3 boot-b (vfat, created), 5 data (f2fs, created))"
    );
    let l = lines();
    for want in [
        "INFO repart: formatted 3 boot-b (vfat)",
        "INFO repart: wrote the GPT",
        "INFO repart: the table of /dev/vda changes",
        "INFO repart: partition 5 (data) gets a new f2fs (created)",
        "INFO repart: 2 modules from /etc/atomix/modules-repart.load, 0 already loaded",
    ] {
        assert!(l.contains(&want.to_owned()), "`{want}` not in {l:?}");
    }
    assert!(
        l.iter()
            .any(|x| x.starts_with("INFO repart plan: backup GPT moves to the end")),
        "{l:?}"
    );

    let r = f.reports.last().unwrap();
    assert_eq!(r["fresh_flash"], true);
    let rep = &r["repart"];
    assert_eq!(rep["outcome"], "applied");
    assert_eq!(rep["disk"], "/dev/vda");
    assert_eq!(rep["error"], serde_json::Value::Null);
    let actions: Vec<(u64, &str, &str)> = rep["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["number"].as_u64().unwrap(),
                a["label"].as_str().unwrap(),
                a["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (3, "boot-b", "create"),
            (4, "rootfs-b", "create"),
            (5, "data", "create")
        ]
    );
    // DESIGN section 3: boot-b at 1168 MiB, rootfs-b at 1296 MiB, data at 2320 MiB.
    let starts: Vec<u64> = rep["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start_lba"].as_u64().unwrap() * 512 / MIB)
        .collect();
    assert_eq!(starts, [1168, 1296, 2320]);
    assert_eq!(rep["formatted"][1]["label"], "data");
    // apply's report as it returned it (3 created), its keys sorted as schema 1 has them.
    assert_eq!(rep["apply"]["kernel"].as_array().unwrap().len(), 3);
    let apply_keys: Vec<&str> = rep["apply"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        apply_keys,
        ["formatted", "kernel", "make_directories", "table_written"]
    );
    let modules: Vec<&str> = r["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["virtio_blk", "squashfs", "crc32_generic", "f2fs"]);
}

#[test]
fn steady_state_is_nothing_to_do_without_modules_or_marker() {
    capture();
    let mut f = first_boot(CMDLINE);
    // The disk as the first boot left it: the plan's table.
    let before = flashed(16 << 30);
    let plan = repart_plan::plan(
        &board_definitions(),
        before.table.as_ref(),
        before.disk_bytes,
        Guid::from_u128(0xd15c),
        &PlanOptions {
            sector_size: 512,
            first_usable_lba: 32768,
        },
    )
    .unwrap();
    f.disk = Some(Current {
        table: Some(plan.table_after.clone()),
        ..before
    });
    f.pending = Some(Pending {
        table: false,
        format: Vec::new(),
    });
    // A marker shipped in the slot image is removed (and warned about).
    f.markers.insert(FRESH_FLASH_SYSROOT.into());
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.calls.iter().any(|c| *c == Call::read_file(MODULES_REPART_LOAD)
        || c.op() == Op::RepartApply
        || matches!(c, Call::LoadModule(p) | Call::ReadFile(p) if p.to_string_lossy().contains("f2fs"))
        || matches!(c, Call::MountLower { fstype, .. } if fstype == "f2fs")));
    assert!(f.calls.contains(&Call::RepartPending {
        actions: 5,
        disk: "/dev/vda".into(),
    }));
    assert!(
        f.calls
            .contains(&Call::RemoveMarker("/run/atomixos/fresh-flash".into()))
    );
    assert!(f.markers.is_empty(), "{:?}", f.markers);
    assert_eq!(
        stage_detail("fresh-flash"),
        "(not a fresh flash: /dev/vda has boot-b (partition 3))"
    );
    assert_eq!(stage_detail("repart"), "(nothing to do on /dev/vda)");
    assert_eq!(stage_detail("marker"), "(/run/atomix/initrd.json)");
    assert!(lines().iter().any(|l| {
        l.starts_with("WARN /sysroot/etc/atomixos/fresh-flash came from the slot image")
    }));
    assert!(!lines().iter().any(|l| l.contains("repart plan:")));
    let r = f.reports.last().unwrap();
    assert_eq!(r["fresh_flash"], false);
    assert_eq!(r["repart"]["outcome"], "nothing-to-do");
    assert_eq!(r["repart"]["formatted"], serde_json::json!([]));
    assert_eq!(r["modules"].as_array().unwrap().len(), 2);
}

#[test]
fn an_empty_data_partition_is_reformatted_without_a_marker() {
    capture();
    let mut f = first_boot(CMDLINE);
    let before = flashed(16 << 30);
    let plan = repart_plan::plan(
        &board_definitions(),
        before.table.as_ref(),
        before.disk_bytes,
        Guid::from_u128(0xd15c),
        &PlanOptions::default(),
    )
    .unwrap();
    f.disk = Some(Current {
        table: Some(plan.table_after.clone()),
        ..before
    });
    f.pending = Some(Pending {
        table: false,
        format: vec![PendingFormat {
            number: 5,
            label: "data".into(),
            format: Format::F2fs,
            reason: FormatReason::Empty,
        }],
    });
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(f.calls.contains(&Call::load_module("/lib/modules/f2fs.ko")));
    assert!(f.calls.contains(&Call::RepartApply {
        disk: "/dev/vda".into(),
        mount_dir: "/run/atomix/repart".into(),
    }));
    assert!(f.markers.is_empty());
    assert_eq!(
        stage_detail("repart"),
        "(applied on /dev/vda: 0 changed in the table (created: none); formatted: 5 data (f2fs, empty))"
    );
    let r = f.reports.last().unwrap();
    assert_eq!(r["fresh_flash"], false);
    assert_eq!(r["repart"]["outcome"], "applied");
    assert_eq!(r["repart"]["formatted"][0]["reason"], "empty");
}

#[test]
fn a_repart_failure_is_recorded_and_the_boot_continues() {
    capture();
    // Too small: 2 GiB cannot hold rootfs-b and data after rootfs-a.
    let mut f = first_boot(CMDLINE);
    f.disk = Some(flashed(2 << 30));
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.calls.iter().any(|c| c.op() == Op::RepartPending
        || c.op() == Op::RepartApply
        || *c == Call::read_file(MODULES_REPART_LOAD)));
    assert_eq!(
        stage_detail("repart"),
        "(failed on /dev/vda; the boot continues (atomix.repart=auto))"
    );
    let warn = lines()
        .into_iter()
        .find(|l| l.starts_with("WARN repart failed: "))
        .unwrap();
    assert!(
        warn.starts_with("WARN repart failed: cannot plan the partitions of /dev/vda: ")
            && warn.contains("too small"),
        "{warn}"
    );
    let r = f.reports.last().unwrap();
    assert_eq!(r["repart"]["outcome"], "failed");
    assert_eq!(
        r["repart"]["error"].as_str().unwrap(),
        warn.trim_start_matches("WARN repart failed: ")
    );
    assert!(
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "ok")
    );
    // Still a fresh flash: the marker does not depend on repart succeeding.
    assert_eq!(r["fresh_flash"], true);

    // apply itself failing: recorded the same way, with what was to be formatted.
    capture();
    let mut f = first_boot(CMDLINE);
    f.fail = Some(Op::RepartApply);
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    let r = f.reports.last().unwrap();
    assert_eq!(r["repart"]["outcome"], "failed");
    assert_eq!(r["repart"]["formatted"].as_array().unwrap().len(), 2);
    assert!(
        r["repart"]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot repartition /dev/vda: cannot open /nonexistent/atomix-test-disk"),
        "{}",
        r["repart"]["error"]
    );
}

#[test]
fn repart_required_makes_a_failure_fatal() {
    capture();
    let mut f = first_boot(&format!(
        "{CMDLINE} atomix.repart=required atomix.reboot-delay=1"
    ));
    f.disk = Some(flashed(2 << 30));
    assert_eq!(run(&mut f), Ending::Reboot);
    assert!(!f.called(Op::MountLower));
    let l = lines();
    assert!(
        l.contains(
            &"ERROR fatal: stage repart failed: cannot plan the partitions of /dev/vda".to_owned()
        ),
        "{l:?}"
    );
    assert!(
        l.iter()
            .any(|x| x.starts_with("ERROR hint: the disk holding the slot"))
    );
    let r = f.reports.last().unwrap();
    assert_eq!(r["stages"][5]["name"], "repart");
    assert_eq!(r["stages"][5]["outcome"], "failed");
    assert_eq!(r["repart"]["outcome"], "failed");

    // A module that does not load is a repart failure too.
    capture();
    let mut f = first_boot(&format!("{CMDLINE} atomix.repart=required"));
    f.modules.insert("/lib/modules/f2fs.ko".into(), Err(8));
    assert_eq!(run(&mut f), Ending::Reboot);
    assert!(!f.called(Op::RepartApply));
    assert!(lines().contains(
        &"ERROR   caused by: cannot load module f2fs from /lib/modules/f2fs.ko".to_owned()
    ));
}

#[test]
fn repart_off_whole_disk_slot_and_no_gpt() {
    capture();
    let mut f = first_boot(&format!("{CMDLINE} atomix.repart=off"));
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.called(Op::LoadDefinitions));
    assert_eq!(stage_detail("repart"), "(skipped: atomix.repart=off)");
    let r = f.reports.last().unwrap();
    assert_eq!(r["repart"]["reason"], "atomix.repart=off");
    assert_eq!(
        r["fresh_flash"], true,
        "fresh-flash is decided without repart"
    );

    capture();
    let mut f = first_boot("atomixos.lowerdev=/dev/vdb atomix.repart=required");
    f.slot_disk = None;
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.called(Op::ReadDisk));
    assert_eq!(
        stage_detail("fresh-flash"),
        "(not a fresh flash: the slot /dev/vda2 is not a partition: no disk to look at)"
    );
    assert_eq!(
        stage_detail("repart"),
        "(skipped: the slot is not a partition)"
    );
    assert_eq!(
        f.reports.last().unwrap()["repart"]["disk"],
        serde_json::Value::Null
    );

    // A disk without a GPT is never initialised.
    capture();
    let mut f = first_boot(CMDLINE);
    f.disk = Some(Current {
        table: None,
        ..flashed(16 << 30)
    });
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.called(Op::RepartPending) && !f.called(Op::RepartApply));
    assert_eq!(
        f.reports.last().unwrap()["repart"]["error"],
        "/dev/vda has no GPT: /init only completes a flashed disk and never initialises an empty one"
    );
}

#[test]
fn repart_device_and_an_unreadable_disk() {
    capture();
    let mut f = first_boot(&format!("{CMDLINE} atomix.repart.device=/dev/mmcblk1"));
    f.disk = None;
    assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
    assert!(!f.called(Op::SlotDisk));
    // Read by fresh-flash (not fresh: unknown), then again by repart, which fails.
    assert_eq!(
        f.calls
            .iter()
            .filter(|c| **c == Call::ReadDisk("/dev/mmcblk1".into()))
            .count(),
        2
    );
    assert_eq!(
        stage_detail("fresh-flash"),
        "(not a fresh flash: cannot read /dev/mmcblk1)"
    );
    assert!(lines().iter().any(|l| l.starts_with(
        "WARN cannot read the partition table of /dev/mmcblk1: cannot open /nonexistent/atomix-test-disk"
    )));
    let r = f.reports.last().unwrap();
    assert_eq!(r["fresh_flash"], false);
    assert_eq!(r["repart"]["disk"], "/dev/mmcblk1");
    assert!(
        r["repart"]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the partition table of /dev/mmcblk1: ")
    );
}

#[test]
fn a_marker_that_cannot_be_written_is_fatal() {
    capture();
    let mut f = Fake::new(CMDLINE);
    f.fail = Some(Op::WriteMarker);
    assert_eq!(run(&mut f), Ending::Reboot);
    assert!(lines().contains(
        &"ERROR fatal: stage fresh-flash failed: cannot write /run/atomixos/fresh-flash".to_owned()
    ));
}
