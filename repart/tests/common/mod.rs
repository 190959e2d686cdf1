//! Fixtures shared by the T1 apply tests: flashed images, the board plan, extraction of a
//! partition into its own sparse file, fsck and `sfdisk -d` runners, hashes.

// Fixture helpers panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used, dead_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use atomix_repart::apply::{self, ApplyOptions, ApplyReport};
use atomix_repart::definitions::{self, Arch, Definition};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table, types};
use atomix_repart::plan::Plan;
use atomix_repart::vfat;
use sha2::Digest;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// SOURCE_DATE_EPOCH of the reproducible runs.
pub const EPOCH: u64 = 1_700_000_000;

/// The rock64 board's definitions (board/repart.d/atomixos-ab), parsed.
pub fn board_definitions() -> Vec<Definition> {
    let board = atomix_board::Board::builtin("rock64").unwrap();
    board
        .repart
        .definitions
        .iter()
        .map(|(file, text)| definitions::parse_definition(file, text, Arch::Arm64).unwrap())
        .collect()
}

pub fn first_usable_bytes() -> u64 {
    atomix_board::Board::builtin("rock64")
        .unwrap()
        .repart
        .first_usable_bytes
}

/// A deterministic byte pattern standing in for U-Boot (idbloader at sector 64, u-boot.itb at
/// sector 16384) and the rootfs squashfs.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(salt);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The AtomixOS table as flashed: boot-a at 16 MiB (128 MiB, legacy-BIOS-bootable), rootfs-a at
/// 144 MiB (1 GiB), first usable LBA 32768, on a disk of `disk_bytes`.
pub fn atomix_table(disk_bytes: u64) -> Table {
    let g = Geometry::new(disk_bytes, 512).unwrap();
    let mut t = Table::spanning(&g, Guid::from_seed(b"t1/disk"));
    t.first_usable_lba = 32768;
    t.partitions = vec![
        Partition {
            number: 1,
            type_guid: types::XBOOTLDR,
            uuid: Guid::from_seed(b"t1/boot-a"),
            first_lba: 16 * MIB / 512,
            last_lba: 144 * MIB / 512 - 1,
            attributes: gpt::ATTR_LEGACY_BIOS_BOOTABLE,
            name: "boot-a".into(),
        },
        Partition {
            number: 2,
            type_guid: types::ROOT_ARM64,
            uuid: Guid::from_seed(b"t1/rootfs-a"),
            first_lba: 144 * MIB / 512,
            last_lba: 1168 * MIB / 512 - 1,
            attributes: 0,
            name: "rootfs-a".into(),
        },
    ];
    t
}

/// The flashed AtomixOS image of DESIGN section 3: raw loader bytes below 16 MiB, boot-a (a
/// real FAT16) at 16 MiB, rootfs-a (squashfs magic and data) at 144 MiB, the backup GPT in the
/// MiB after rootfs-a; then the file is extended to `disk` bytes, as when the 1169 MiB image is
/// written to a larger disk.
pub fn flashed_image(path: &Path, disk: u64) -> Table {
    let image = 1169 * MIB;
    let t = atomix_table(image);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    f.set_len(image).unwrap();
    gpt::write(&mut f, image, &t).unwrap();
    f.write_all_at(&pattern(200 * 1024, 1), 64 * 512).unwrap();
    f.write_all_at(&pattern(900 * 1024, 2), 16384 * 512)
        .unwrap();
    let opts = vfat::VfatOptions {
        volume_label: *b"BOOT-A     ",
        volume_id: 0x1234_5678,
        fat_type: None,
        time: EPOCH,
    };
    vfat::format(&f, 16 * MIB, 128 * MIB, &opts, &[]).unwrap();
    let mut sqfs = b"hsqs".to_vec();
    sqfs.extend(pattern(3 * MIB as usize, 3));
    f.write_all_at(&sqfs, 144 * MIB).unwrap();
    f.set_len(disk).unwrap();
    t
}

/// The plan `atomix repart --board rock64` makes for `image` (seed: the disk GUID).
pub fn board_plan(image: &Path) -> Plan {
    let current = apply::read_current(image).unwrap();
    apply::plan_current(&board_definitions(), &current, None, first_usable_bytes()).unwrap()
}

pub fn reproducible() -> ApplyOptions {
    ApplyOptions {
        reproducible: Some(EPOCH),
        ..ApplyOptions::default()
    }
}

/// Plans and applies the board definitions reproducibly.
pub fn board_apply(image: &Path) -> ApplyReport {
    let plan = board_plan(image);
    apply::apply(&plan, image, &reproducible(), &mut |s| {
        eprintln!("apply: {s}")
    })
    .unwrap()
}

/// A content digest of a whole file (see [`sha256_range`]).
pub fn sha256(path: &Path) -> String {
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    sha256_range(&f, 0, size)
}

/// A content digest of bytes `start..start + len` of `f`: SHA-256 over the length and, for every
/// 64 KiB block that is not all zeros, its offset and bytes. Two ranges get the same digest
/// exactly when their contents are equal, whatever is a hole and whatever is written zeros, and
/// the holes of a 32 GiB sparse image are skipped instead of hashed.
pub fn sha256_range(f: &File, start: u64, len: u64) -> String {
    const BLOCK: u64 = 64 * 1024;
    let mut h = sha2::Sha256::new();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; BLOCK as usize];
    let end = start + len;
    let mut pos = start;
    while pos < end {
        let data = match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(pos)) {
            Ok(at) => at.min(end),
            Err(_) => end,
        };
        if data >= end {
            break;
        }
        let hole = rustix::fs::seek(f, rustix::fs::SeekFrom::Hole(data))
            .unwrap()
            .min(end);
        // Blocks are aligned to `start`, so that the same content gives the same blocks.
        pos = start + (data - start) / BLOCK * BLOCK;
        while pos < hole {
            let n = (end - pos).min(BLOCK) as usize;
            f.read_exact_at(&mut buf[..n], pos).unwrap();
            if buf[..n].iter().any(|&b| b != 0) {
                h.update((pos - start).to_le_bytes());
                h.update(&buf[..n]);
            }
            pos += n as u64;
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The raw loader region: everything between the primary GPT (LBA 0-33) and 16 MiB.
pub fn raw_region_hash(path: &Path) -> String {
    let f = File::open(path).unwrap();
    sha256_range(&f, 34 * 512, 16 * MIB - 34 * 512)
}

/// Copies bytes `start..start + len` of `image` into a new sparse file `out` (data extents only).
pub fn extract(image: &Path, start: u64, len: u64, out: &Path) {
    let src = File::open(image).unwrap();
    let dst = File::create(out).unwrap();
    dst.set_len(len).unwrap();
    let end = start + len;
    let mut pos = start;
    let mut buf = vec![0u8; MIB as usize];
    while pos < end {
        let Ok(data) = rustix::fs::seek(&src, rustix::fs::SeekFrom::Data(pos)) else {
            break;
        };
        if data >= end {
            break;
        }
        let hole = rustix::fs::seek(&src, rustix::fs::SeekFrom::Hole(data))
            .unwrap()
            .min(end);
        pos = data;
        while pos < hole {
            let n = (hole - pos).min(MIB) as usize;
            src.read_exact_at(&mut buf[..n], pos).unwrap();
            dst.write_all_at(&buf[..n], pos - start).unwrap();
            pos += n as u64;
        }
    }
}

/// Extracts partition `number` of `image` into `out`.
pub fn extract_partition(image: &Path, number: u32, out: &Path) {
    let disk = File::open(image).unwrap().metadata().unwrap().len();
    let t = gpt::read(&mut File::open(image).unwrap(), disk).unwrap();
    let p = t.partition(number).unwrap();
    extract(image, p.first_lba * 512, p.sectors() * 512, out);
}

pub fn run(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `sfdisk -d` of an image.
pub fn sfdisk_dump(image: &Path) -> String {
    let (code, text) = run("sfdisk", &["-d", image.to_str().unwrap()]);
    assert_eq!(code, 0, "sfdisk -d failed:\n{text}");
    text
}

/// `fsck.f2fs --dry-run` of partition `number` is clean; returns its output.
pub fn assert_f2fs_clean(image: &Path, number: u32, scratch: &Path) -> String {
    let part = scratch.join(format!("p{number}.f2fs"));
    extract_partition(image, number, &part);
    let (code, text) = run("fsck.f2fs", &["--dry-run", part.to_str().unwrap()]);
    std::fs::remove_file(&part).unwrap();
    assert_eq!(code, 0, "fsck.f2fs failed:\n{text}");
    assert!(
        !text.contains("[Fail]") && !text.contains("Wrong"),
        "fsck.f2fs reports a failure:\n{text}"
    );
    text
}

/// `fsck.vfat -n` of partition `number` is clean.
pub fn assert_vfat_clean(image: &Path, number: u32, scratch: &Path) -> String {
    let part = scratch.join(format!("p{number}.vfat"));
    extract_partition(image, number, &part);
    let (code, text) = run("fsck.vfat", &["-n", part.to_str().unwrap()]);
    std::fs::remove_file(&part).unwrap();
    assert_eq!(code, 0, "fsck.vfat -n failed:\n{text}");
    text
}

/// The directory tree of the f2fs in partition `number`, as `fsck.f2fs --dry-run -t` prints it
/// (f2fs cannot be mounted on this host; fsck's tree walks the on-disk dentries).
pub fn f2fs_tree(image: &Path, number: u32, scratch: &Path) -> String {
    let part = scratch.join(format!("p{number}.tree"));
    extract_partition(image, number, &part);
    let (code, text) = run("fsck.f2fs", &["--dry-run", "-t", part.to_str().unwrap()]);
    std::fs::remove_file(&part).unwrap();
    assert_eq!(code, 0, "fsck.f2fs -t failed:\n{text}");
    text
}
