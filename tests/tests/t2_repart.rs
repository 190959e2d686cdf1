//! T2: `atomix_repart::apply` on a real block device while one of its partitions is mounted.
//! Needs root (loop devices, BLKPG, mounts): without root it fails, it is not skipped.
//!
//! Fixture: a flashed 4 GiB rock64 image (boot-a vfat, rootfs-a a real squashfs) on a loop
//! device (`losetup --find --show --partscan`). The host kernel has no GPT parser, so the
//! fixture announces p1 and p2 with `addpart` (BLKPG, as a GPT-aware kernel would at
//! attach time), then mounts p2. Apply must add p3..p5 with BLKPG while p2 stays mounted — a
//! `BLKRRPART` would fail with EBUSY, and on this kernel would also drop p1 and p2 — and sysfs
//! must show each start and size. The host kernel has no f2fs either: the data directories are
//! made with sload.f2fs on /dev/loopNp5 (the `Host` outcome), and checked with fsck.f2fs.
//!
//! The mount and the loop device are undone on every path by a guard's `Drop`.

#![allow(clippy::unwrap_used)]

use atomix_systests::{require_root, run_tool};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_repart::apply::{self, ApplyOptions, MakeDirsOutcome};
use atomix_repart::definitions::{self, Arch};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table, types};
use atomix_repart::vfat;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The loop device and the mount of its p2, undone when dropped (also on a panic).
struct Attached {
    dev: PathBuf,
    mounted: Option<PathBuf>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(dir) = self.mounted.take() {
            let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn name_of(dev: &Path) -> String {
    dev.file_name().unwrap().to_string_lossy().into_owned()
}

fn sysfs(part: &str, field: &str) -> u64 {
    fs::read_to_string(format!("/sys/class/block/{part}/{field}"))
        .unwrap_or_else(|e| panic!("/sys/class/block/{part}/{field}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// The flashed image: GPT (boot-a, rootfs-a, backup after rootfs-a), boot-a a FAT16, rootfs-a
/// a squashfs holding /etc/marker; extended to 4 GiB.
fn flashed_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/marker"), "rootfs-a\n").unwrap();
    let sqfs = dir.join("rootfs.sqfs");
    run_tool(Command::new("mksquashfs").arg(&tree).arg(&sqfs).args([
        "-noappend",
        "-quiet",
        "-no-progress",
        "-all-root",
    ]));

    let image = dir.join("disk.img");
    let size = 1169 * MIB;
    let g = Geometry::new(size, 512).unwrap();
    let mut t = Table::spanning(&g, Guid::from_seed(b"t2/disk"));
    t.first_usable_lba = 32768;
    t.partitions = vec![
        Partition {
            number: 1,
            type_guid: types::XBOOTLDR,
            uuid: Guid::from_seed(b"t2/boot-a"),
            first_lba: 32768,
            last_lba: 294_911,
            attributes: gpt::ATTR_LEGACY_BIOS_BOOTABLE,
            name: "boot-a".into(),
        },
        Partition {
            number: 2,
            type_guid: types::ROOT_ARM64,
            uuid: Guid::from_seed(b"t2/rootfs-a"),
            first_lba: 294_912,
            last_lba: 2_392_063,
            attributes: 0,
            name: "rootfs-a".into(),
        },
    ];
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&image)
        .unwrap();
    f.set_len(size).unwrap();
    gpt::write(&mut f, size, &t).unwrap();
    let opts = vfat::VfatOptions {
        volume_label: *b"BOOT-A     ",
        volume_id: 1,
        fat_type: None,
        time: 1_700_000_000,
    };
    vfat::format(&f, 16 * MIB, 128 * MIB, &opts, &[]).unwrap();
    f.write_all_at(&fs::read(&sqfs).unwrap(), 144 * MIB)
        .unwrap();
    f.set_len(4 * GIB).unwrap();
    image
}

#[test]
fn apply_adds_partitions_with_blkpg_while_p2_is_mounted() {
    require_root("loop devices, BLKPG, mounts");
    let dir = tempfile::tempdir().unwrap();
    let image = flashed_image(dir.path());
    let dev = PathBuf::from(
        run_tool(
            Command::new("losetup")
                .args(["--find", "--show", "--partscan"])
                .arg(&image),
        )
        .trim(),
    );
    let mut attached = Attached {
        dev: dev.clone(),
        mounted: None,
    };
    let disk = name_of(&dev);
    let part = |n: u32| format!("{disk}p{n}");
    // What a GPT-aware kernel does at attach time.
    for (n, start, sectors) in [(1u32, 32768u64, 262_144u64), (2, 294_912, 2_097_152)] {
        if !Path::new(&format!("/sys/class/block/{}", part(n))).exists() {
            run_tool(Command::new("addpart").arg(&dev).args([
                n.to_string(),
                start.to_string(),
                sectors.to_string(),
            ]));
        }
    }
    let p2 = PathBuf::from(format!("/dev/{}", part(2)));
    for _ in 0..500 {
        if p2.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mnt = dir.path().join("rootfs-a");
    fs::create_dir(&mnt).unwrap();
    rustix::mount::mount(
        &p2,
        &mnt,
        "squashfs",
        rustix::mount::MountFlags::RDONLY,
        None,
    )
    .unwrap();
    attached.mounted = Some(mnt.clone());

    // The board's definitions, planned as /init does.
    let board = atomix_board::Board::builtin("rock64").unwrap();
    let defs: Vec<_> = board
        .repart
        .definitions
        .iter()
        .map(|(f, t)| definitions::parse_definition(f, t, Arch::Arm64).unwrap())
        .collect();
    let current = apply::read_current(&dev).unwrap();
    assert!(current.is_block_device);
    assert_eq!(current.disk_bytes, 4 * GIB);
    let plan = apply::plan_current(&defs, &current, None, board.repart.first_usable_bytes).unwrap();
    let opts = ApplyOptions {
        reproducible: None,
        mount_dir: dir.path().join("mnt-data"),
    };
    let mut steps = Vec::new();
    let report = apply::apply(&plan, &dev, &opts, &mut |s| steps.push(s.to_owned())).unwrap();
    eprintln!("{}\n{report}", steps.join("\n"));

    // The kernel sees all five partitions where the table puts them.
    assert!(report.table_written);
    assert_eq!(report.kernel.len(), 5, "{report:?}");
    for p in &plan.table_after.partitions {
        let name = part(p.number);
        assert_eq!(sysfs(&name, "start"), p.first_lba, "{name} start");
        assert_eq!(sysfs(&name, "size"), p.sectors(), "{name} size");
        assert_eq!(sysfs(&name, "partition"), u64::from(p.number));
    }
    // p2 stayed mounted and readable throughout (a BLKRRPART would have failed with EBUSY).
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(mnt.to_str().unwrap()),
        "p2 is no longer mounted"
    );
    assert_eq!(
        fs::read_to_string(mnt.join("etc/marker")).unwrap(),
        "rootfs-a\n"
    );
    assert!(steps.iter().any(|s| s.contains("BLKPG")), "{steps:?}");

    // The new file systems, through the kernel's partition devices.
    run_tool(
        Command::new("fsck.vfat")
            .arg("-n")
            .arg(format!("/dev/{}", part(3))),
    );
    run_tool(
        Command::new("fsck.f2fs")
            .arg("--dry-run")
            .arg(format!("/dev/{}", part(5))),
    );
    let tree = run_tool(
        Command::new("fsck.f2fs")
            .args(["--dry-run", "-t"])
            .arg(format!("/dev/{}", part(5))),
    );
    for d in [
        "config",
        "quadlet",
        "ssh-authorized-keys",
        "containers",
        "logs",
    ] {
        assert!(
            tree.contains(&format!("-- {d} <ino")),
            "{d} missing:\n{tree}"
        );
    }
    // This kernel has no f2fs: the directories were made with sload.f2fs on the device.
    assert_eq!(
        report.make_directories[0].2,
        MakeDirsOutcome::Host("sload.f2fs".into())
    );
    // The on-disk table agrees with the kernel.
    let t = gpt::read(&mut fs::File::open(&dev).unwrap(), 4 * GIB).unwrap();
    assert_eq!(t, plan.table_after);

    // Second run: nothing to do, no byte written, the kernel view unchanged.
    let current = apply::read_current(&dev).unwrap();
    let again =
        apply::plan_current(&defs, &current, None, board.repart.first_usable_bytes).unwrap();
    assert!(again.nothing_to_do, "{again}");
    assert!(apply::pending(&again, &dev).unwrap().is_empty());
    let report = apply::apply(&again, &dev, &opts, &mut |_| {}).unwrap();
    assert!(report.nothing_done(), "{report:?}");
    assert_eq!(report.kernel.len(), 5);
    drop(attached);
    assert!(
        !Path::new(&format!("/sys/class/block/{disk}/loop/backing_file")).exists()
            || fs::read_to_string(format!("/sys/class/block/{disk}/loop/backing_file"))
                .map_or(true, |b| !b.contains("disk.img")),
        "the loop device is still attached"
    );
}
