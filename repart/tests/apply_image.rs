//! T1: `apply` on sparse image files (no root): the rock64 first boot on 8, 16 and 32 GiB, the
//! refusals, idempotence, a damaged primary GPT and a wiped data partition.
//!
//! The data partition's directories are checked with `fsck.f2fs --dry-run -t` (it prints the
//! directory tree from the on-disk dentries): the host kernel cannot mount f2fs. Partitions are
//! checked on sparse copies of their byte range (`common::extract`), since the f2fs and FAT
//! tools take no offset.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use atomix_repart::apply::{
    self, ApplyError, FormatReason, MakeDirsOutcome, PendingFormat, read_current,
};
use atomix_repart::definitions::Format;
use atomix_repart::gpt::{self, Guid, Partition, types};
use atomix_repart::plan::PlanError;
use common::*;

const DIRS: [&str; 5] = [
    "/config",
    "/config/quadlet",
    "/config/ssh-authorized-keys",
    "/containers",
    "/logs",
];

/// DESIGN section 3 in sectors, as `sfdisk -d` prints the 16 GiB rock64 disk after first boot
/// (device path replaced by IMG). boot-b and rootfs-b carry GrowFileSystem (bit 59), which
/// systemd-repart sets on new partitions of types that know it.
const GOLDEN_16_GIB: &str = r#"label: gpt
label-id: BA1E4634-E9C0-470E-8E83-3E36A3180342
device: IMG
unit: sectors
first-lba: 32768
last-lba: 33554398
sector-size: 512

IMG1 : start=       32768, size=      262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=2F736C35-FBE6-49DF-BDCF-E66B7E10ACDD, name="boot-a", attrs="LegacyBIOSBootable"
IMG2 : start=      294912, size=     2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=1E6DA520-C427-478A-826D-EA7AE97EB333, name="rootfs-a"
IMG3 : start=     2392064, size=      262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=792291D6-DD12-44EB-9E1B-E6628F9D270E, name="boot-b", attrs="GUID:59"
IMG4 : start=     2654208, size=     2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=8246FBF4-A664-4D47-B40C-3E177B766758, name="rootfs-b", attrs="GUID:59"
IMG5 : start=     4751360, size=    28803032, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=1A3F10F6-EB50-487F-9004-47D96F958FEB, name="data"
"#;

fn dump_as_img(image: &Path) -> String {
    sfdisk_dump(image).replace(image.to_str().unwrap(), "IMG")
}

fn assert_dirs(image: &Path, scratch: &Path) {
    let tree = f2fs_tree(image, 5, scratch);
    for name in [
        "config",
        "quadlet",
        "ssh-authorized-keys",
        "containers",
        "logs",
    ] {
        assert!(
            tree.contains(&format!("-- {name} <ino")),
            "{name} missing from the data tree:\n{tree}"
        );
    }
}

/// A second plan of the result is "nothing to do", and applying it writes no byte.
fn assert_second_run_is_nothing(image: &Path) {
    let before = sha256(image);
    let plan = board_plan(image);
    assert!(plan.nothing_to_do, "{plan}");
    let pending = apply::pending(&plan, image).unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    let report = apply::apply(&plan, image, &reproducible(), &mut |_| {}).unwrap();
    assert!(report.nothing_done(), "{report:?}");
    assert_eq!(sha256(image), before, "a nothing-to-do run changed bytes");
}

#[test]
fn rock64_16_gib_first_boot_golden() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("rock64-16.img");
    flashed_image(&image, 16 * GIB);
    let raw_before = raw_region_hash(&image);
    let boot_a_before = sha256_range(&File::open(&image).unwrap(), 16 * MIB, 128 * MIB);

    let plan = board_plan(&image);
    let pending = apply::pending(&plan, &image).unwrap();
    let expected = vec![
        PendingFormat {
            number: 3,
            label: "boot-b".into(),
            format: Format::Vfat,
            reason: FormatReason::Created,
        },
        PendingFormat {
            number: 5,
            label: "data".into(),
            format: Format::F2fs,
            reason: FormatReason::Created,
        },
    ];
    assert!(pending.table);
    assert_eq!(pending.format, expected);

    let report = apply::apply(&plan, &image, &reproducible(), &mut |_| {}).unwrap();
    assert!(report.table_written);
    assert_eq!(report.formatted, expected);
    assert!(report.kernel.is_empty(), "an image file has no kernel view");
    assert_eq!(
        report.make_directories,
        vec![(
            5,
            DIRS.iter().map(|d| d.to_string()).collect(),
            MakeDirsOutcome::Host("sload.f2fs".into())
        )]
    );

    assert_eq!(dump_as_img(&image), GOLDEN_16_GIB);
    assert_eq!(
        raw_region_hash(&image),
        raw_before,
        "the raw U-Boot region changed"
    );
    assert_eq!(
        sha256_range(&File::open(&image).unwrap(), 16 * MIB, 128 * MIB),
        boot_a_before,
        "boot-a changed"
    );
    let fat = assert_vfat_clean(&image, 3, dir.path());
    assert!(fat.contains("0 files") || fat.contains("1 files"), "{fat}");
    let fsck = assert_f2fs_clean(&image, 5, dir.path());
    assert!(fsck.contains("data") || !fsck.is_empty());
    assert_dirs(&image, dir.path());
    // The volume label and the file-system UUIDs derive from the partition.
    let mut boot = [0u8; 512];
    File::open(&image)
        .unwrap()
        .read_exact_at(&mut boot, 2_392_064 * 512)
        .unwrap();
    assert_eq!(&boot[43..54], b"BOOT-B     ");
    assert_eq!(&boot[54..59], b"FAT16");

    assert_second_run_is_nothing(&image);
}

#[test]
fn rock64_8_and_32_gib() {
    let dir = tempfile::tempdir().unwrap();
    for gib in [8, 32] {
        let image = dir.path().join(format!("rock64-{gib}.img"));
        flashed_image(&image, gib * GIB);
        let raw_before = raw_region_hash(&image);
        let plan = board_plan(&image);
        board_apply(&image);
        let disk = gib * GIB;
        let t = gpt::read(&mut File::open(&image).unwrap(), disk).unwrap();
        assert_eq!(t, plan.table_after);
        let data = t.by_name("data").unwrap();
        assert_eq!(data.first_lba, 4_751_360);
        // The data partition ends on the last 4096-byte boundary before the backup GPT.
        assert_eq!(data.last_lba + 1, (disk / 512 - 33) / 8 * 8);
        assert_eq!(raw_region_hash(&image), raw_before);
        assert_vfat_clean(&image, 3, dir.path());
        assert_f2fs_clean(&image, 5, dir.path());
        assert_dirs(&image, dir.path());
        assert_second_run_is_nothing(&image);
        std::fs::remove_file(&image).unwrap();
    }
}

#[test]
fn too_small_disk_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("small.img");
    flashed_image(&image, 2 * GIB);
    let before = sha256(&image);
    let current = read_current(&image).unwrap();
    let err = apply::plan_current(&board_definitions(), &current, None, first_usable_bytes())
        .unwrap_err();
    assert!(matches!(err, PlanError::DoesNotFit { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("bytes too small"), "{text}");
    assert_eq!(sha256(&image), before);
}

#[test]
fn foreign_partition_in_the_way_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("foreign.img");
    let disk = 16 * GIB;
    let mut t = flashed_image(&image, disk);
    // A swap partition (no definition has its type) right after rootfs-a, up to 1 GiB before the
    // end of the disk: boot-b (128 MiB), rootfs-b (1 GiB) and data (64 MiB) do not fit behind it.
    let g = gpt::Geometry::new(disk, 512).unwrap();
    t.last_usable_lba = g.max_last_usable_lba();
    t.partitions.push(Partition {
        number: 3,
        type_guid: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F".parse().unwrap(),
        uuid: Guid::from_seed(b"t1/swap"),
        first_lba: 1168 * MIB / 512,
        last_lba: (disk - GIB) / 512 - 1,
        attributes: 0,
        name: "swap".into(),
    });
    gpt::write(
        &mut OpenOptions::new().write(true).open(&image).unwrap(),
        disk,
        &t,
    )
    .unwrap();
    let before = sha256(&image);
    let current = read_current(&image).unwrap();
    let err = apply::plan_current(&board_definitions(), &current, None, first_usable_bytes())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("foreign partitions in the way") && text.contains("\"swap\""),
        "{text}"
    );
    assert_eq!(sha256(&image), before);
}

#[test]
fn a_plan_for_another_disk_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("stale.img");
    flashed_image(&image, 16 * GIB);
    let plan = board_plan(&image);
    board_apply(&image);
    let before = sha256(&image);
    // The first plan again: its partitions 3-5 exist now.
    let err = apply::apply(&plan, &image, &reproducible(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ApplyError::StalePlan { .. }), "{err:?}");
    assert!(err.to_string().contains("stale.img"), "{err}");
    assert_eq!(sha256(&image), before);
}

/// A damaged primary GPT with a good backup: read from the backup, both rewritten; the result is
/// the clean disk byte for byte. Both damaged: an error naming the disk.
#[test]
fn damaged_primary_gpt_is_repaired_from_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("damaged.img");
    flashed_image(&image, 16 * GIB);
    board_apply(&image);
    let clean = sha256(&image);
    let f = OpenOptions::new().write(true).open(&image).unwrap();
    f.write_all_at(&[0xFF; 16], 512 + 60).unwrap(); // the disk GUID field of the primary header

    let current = read_current(&image).unwrap();
    assert!(current.repaired_from_backup);
    let plan = board_plan(&image);
    assert!(plan.nothing_to_do, "{plan}");
    let pending = apply::pending(&plan, &image).unwrap();
    assert!(pending.table && pending.format.is_empty(), "{pending:?}");
    let report = apply::apply(&plan, &image, &reproducible(), &mut |_| {}).unwrap();
    assert!(report.table_written && report.formatted.is_empty());
    assert!(!read_current(&image).unwrap().repaired_from_backup);
    assert_eq!(
        sha256(&image),
        clean,
        "the repaired disk differs from the clean one"
    );

    // Both copies damaged.
    let disk = 16 * GIB;
    f.write_all_at(&[0xFF; 16], 512 + 60).unwrap();
    f.write_all_at(&[0xFF; 16], disk - 512 + 60).unwrap();
    let err = read_current(&image).unwrap_err();
    assert!(
        matches!(err, ApplyError::BothTablesDamaged { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("damaged.img"), "{err}");
}

/// The "reprovisioned" case: the data partition exists but its superblocks are gone. Only it is
/// formatted again (with its directories); the table is not written; with the same
/// SOURCE_DATE_EPOCH the disk comes out byte-identical to the first boot's.
#[test]
fn zeroed_data_superblock_is_formatted_again_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("wiped.img");
    flashed_image(&image, 16 * GIB);
    board_apply(&image);
    let clean = sha256(&image);
    let f = OpenOptions::new().write(true).open(&image).unwrap();
    f.write_all_at(&vec![0u8; MIB as usize], 4_751_360 * 512)
        .unwrap();
    let boot_b = sha256_range(&File::open(&image).unwrap(), 2_392_064 * 512, 128 * MIB);

    let plan = board_plan(&image);
    assert!(plan.nothing_to_do);
    let pending = apply::pending(&plan, &image).unwrap();
    let expected = vec![PendingFormat {
        number: 5,
        label: "data".into(),
        format: Format::F2fs,
        reason: FormatReason::Empty,
    }];
    assert!(!pending.table);
    assert_eq!(pending.format, expected);
    let report = apply::apply(&plan, &image, &reproducible(), &mut |_| {}).unwrap();
    assert!(!report.table_written);
    assert_eq!(report.formatted, expected);
    assert_eq!(
        sha256_range(&File::open(&image).unwrap(), 2_392_064 * 512, 128 * MIB),
        boot_b
    );
    assert_f2fs_clean(&image, 5, dir.path());
    assert_dirs(&image, dir.path());
    assert_eq!(sha256(&image), clean);
    assert_second_run_is_nothing(&image);
}

/// A partition that holds a file system is never formatted, even one the definition does not
/// name (here boot-b holding an ext4 signature).
#[test]
fn a_partition_holding_any_file_system_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("other.img");
    flashed_image(&image, 8 * GIB);
    board_apply(&image);
    let f = OpenOptions::new().write(true).open(&image).unwrap();
    let boot_b = 2_392_064 * 512;
    f.write_all_at(&vec![0u8; MIB as usize], boot_b).unwrap();
    f.write_all_at(&[0x53, 0xEF], boot_b + 1080).unwrap();
    let plan = board_plan(&image);
    assert!(apply::pending(&plan, &image).unwrap().is_empty());
    // Without the signature it is empty and is formatted again as vfat.
    f.write_all_at(&[0, 0], boot_b + 1080).unwrap();
    let pending = apply::pending(&plan, &image).unwrap();
    assert_eq!(pending.format.len(), 1);
    assert_eq!(pending.format[0].reason, FormatReason::Empty);
    assert_eq!(pending.format[0].format, Format::Vfat);
    apply::apply(&plan, &image, &reproducible(), &mut |_| {}).unwrap();
    assert_vfat_clean(&image, 3, dir.path());
    let _ = types::XBOOTLDR;
}
