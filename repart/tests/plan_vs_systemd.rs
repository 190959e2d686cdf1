//! T1: `plan` against the reference, systemd-repart v252, on sparse image files.
//!
//! Each case writes the same starting disk twice, runs systemd-repart on one copy (`--dry-run=no
//! --empty=allow --discard=no --seed=SEED`) and compares the table it wrote, read back with
//! `gpt::read` and cross-checked with `sfdisk -J`, with our plan of the starting table: disk GUID,
//! usable range, and per partition number, type, UUID, first and last LBA, attributes and label.
//!
//! The definitions are the board's with `Format=` and `MakeDirectories=` dropped: v252 cannot
//! make f2fs, and formatting is not part of the plan. systemd-repart's `--dry-run=yes` cannot be
//! used for the flashed image: it opens the disk read-only, so libfdisk does not move the short
//! image's backup GPT to the end and repart reports that nothing fits ("Can't fit requested
//! partitions into available free space (1004.0K)"); `--dry-run=no` moves it and then plans.

// Fixture helpers panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::process::Command;

mod common;

use atomix_repart::definitions::{self, Arch, Definition};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table, types};
use atomix_repart::plan::{PlanOptions, plan};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SEED: &str = "11111111-2222-3333-4444-555555555555";

fn seed() -> Guid {
    SEED.parse().unwrap()
}

/// The board's definitions, as the files the board crate embeds.
fn board_files(name: &str) -> &'static [(&'static str, &'static str)] {
    atomix_board::Board::builtin(name)
        .unwrap()
        .repart
        .definitions
}

/// A copy of a board's definitions without the keys systemd-repart v252 cannot carry out here.
fn stripped_definitions(board: &str, into: &Path) -> Vec<Definition> {
    fs::create_dir(into).unwrap();
    for (file, text) in board_files(board) {
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("Format=") && !l.starts_with("MakeDirectories="))
            .collect();
        fs::write(into.join(file), kept.join("\n") + "\n").unwrap();
    }
    definitions::load_dir(into, Arch::Arm64).unwrap()
}

fn create(path: &Path, bytes: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    f.set_len(bytes).unwrap();
    f
}

fn sha256(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut h).unwrap();
    h.finalize().to_vec()
}

fn read_table(path: &Path, disk: u64) -> Table {
    gpt::read(&mut File::open(path).unwrap(), disk).unwrap()
}

/// Runs systemd-repart on `image`; returns whether it succeeded and its stderr.
///
/// `--json=short` replaces the human table and bar chart: v252 (252.38) segfaults drawing the
/// bar chart after it has dropped a definition by priority, after planning and before writing.
fn systemd_repart(defs: &Path, image: &Path) -> (bool, String) {
    let out = Command::new("systemd-repart")
        .arg("--json=short")
        .arg("--dry-run=no")
        .arg("--empty=allow")
        .arg("--discard=no")
        .arg(format!("--seed={SEED}"))
        .arg(format!("--definitions={}", defs.display()))
        .arg(image)
        .output()
        .unwrap_or_else(|e| panic!("cannot run systemd-repart (v252 is a test dependency): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sfdisk -J`'s view: last usable LBA and (start, size, type, name) per partition.
fn sfdisk_view(image: &Path) -> (u64, Vec<(u64, u64, String, String)>) {
    let out = Command::new("sfdisk")
        .arg("-J")
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["partitiontable"];
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_uppercase(),
                p["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (t["lastlba"].as_u64().unwrap(), parts)
}

/// Plans `defs` on the table of `image` (or a blank disk), runs systemd-repart on the image and
/// asserts both give the same table. Returns it.
fn compare(defs_dir: &Path, defs: &[Definition], image: &Path, disk: u64, blank: bool) -> Table {
    let before = (!blank).then(|| read_table(image, disk));
    let ours = plan(defs, before.as_ref(), disk, seed(), &PlanOptions::default()).unwrap();
    let (ok, stderr) = systemd_repart(defs_dir, image);
    assert!(ok, "systemd-repart failed on a {disk}-byte disk:\n{stderr}");
    let theirs = read_table(image, disk);
    assert_eq!(
        ours.table_after, theirs,
        "our plan differs from systemd-repart on a {disk}-byte disk:\n{ours}"
    );
    // An independent reader agrees on the moved backup and the partitions.
    let (last_lba, parts) = sfdisk_view(image);
    assert_eq!(last_lba, ours.last_usable_lba);
    let ours_view: Vec<_> = ours
        .table_after
        .partitions
        .iter()
        .map(|p| {
            (
                p.first_lba,
                p.sectors(),
                p.type_guid.to_string(),
                p.name.clone(),
            )
        })
        .collect();
    assert_eq!(parts, ours_view);
    theirs
}

#[test]
fn rock64_first_boot_matches_systemd_repart_on_4_8_16_32_gib() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = stripped_definitions("rock64", &defs_dir);
    for gib in [4, 8, 16, 32] {
        let disk = gib * GIB;
        let image = dir.path().join(format!("rock64-{gib}.img"));
        common::flashed_image(&image, disk);
        let t = compare(&defs_dir, &defs, &image, disk, false);
        let rows: Vec<_> = t
            .partitions
            .iter()
            .map(|p| format!("{}:{}+{}", p.name, p.first_lba, p.sectors()))
            .collect();
        eprintln!(
            "{gib} GiB: last usable {} | {}",
            t.last_usable_lba,
            rows.join(" ")
        );
        fs::remove_file(&image).unwrap();
    }
}

#[test]
fn rock64_16_gib_has_the_design_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = stripped_definitions("rock64", &defs_dir);
    let disk = 16 * GIB;
    let image = dir.path().join("rock64.img");
    common::flashed_image(&image, disk);
    let t = compare(&defs_dir, &defs, &image, disk, false);
    // DESIGN section 3, in sectors: boot-b at 1168 MiB, rootfs-b at 1296 MiB, data at 2320 MiB
    // to the last 4096-byte boundary before the backup GPT (33554432 sectors - 33 for the backup
    // entries and header = 33554399, rounded down to 8 sectors = 33554392).
    let expected: [(u32, &str, Guid, u64, u64); 5] = [
        (1, "boot-a", types::XBOOTLDR, 32_768, 262_144),
        (2, "rootfs-a", types::ROOT_ARM64, 294_912, 2_097_152),
        (3, "boot-b", types::XBOOTLDR, 2_392_064, 262_144),
        (4, "rootfs-b", types::ROOT_ARM64, 2_654_208, 2_097_152),
        (5, "data", types::LINUX_GENERIC, 4_751_360, 28_803_032),
    ];
    let got: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.name.as_str(),
                p.type_guid,
                p.first_lba,
                p.sectors(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        (t.first_usable_lba, t.last_usable_lba),
        (32_768, 33_554_398)
    );
}

#[test]
fn blank_disk_matches_systemd_repart_including_the_disk_guid() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = stripped_definitions("qemu-virt", &defs_dir);
    let disk = 8 * GIB;
    let image = dir.path().join("blank.img");
    drop(create(&image, disk));
    let t = compare(&defs_dir, &defs, &image, disk, true);
    // libfdisk's default first usable LBA, which systemd-repart v252 cannot change: the boards
    // pass 32768 to `plan` instead (see PlanOptions::first_usable_lba).
    assert_eq!(t.first_usable_lba, 2048);
    assert_eq!(t.partitions[0].first_lba, 2048);
}

#[test]
fn a_foreign_partition_gap_matches_systemd_repart() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = stripped_definitions("rock64", &defs_dir);
    let disk = 16 * GIB;
    let image = dir.path().join("foreign.img");
    // The flashed layout plus an ESP at 3 GiB that no definition describes, on a table that
    // already spans the disk.
    let g = Geometry::new(disk, 512).unwrap();
    let mut t = Table::spanning(&g, Guid::from_seed(b"t1/foreign"));
    t.first_usable_lba = 32768;
    let part = |number, type_guid, name: &str, start_mib: u64, mib: u64| Partition {
        number,
        type_guid,
        uuid: Guid::from_seed(name.as_bytes()),
        first_lba: start_mib * MIB / 512,
        last_lba: (start_mib + mib) * MIB / 512 - 1,
        attributes: 0,
        name: name.into(),
    };
    t.partitions = vec![
        part(1, types::XBOOTLDR, "boot-a", 16, 128),
        part(2, types::ROOT_ARM64, "rootfs-a", 144, 1024),
        part(6, types::ESP, "vendor", 3072, 512),
    ];
    let mut f = create(&image, disk);
    gpt::write(&mut f, disk, &t).unwrap();
    drop(f);
    let after = compare(&defs_dir, &defs, &image, disk, false);
    assert_eq!(after.partition(6), t.partition(6));
    assert_eq!(after.partitions.len(), 6);
}

#[test]
fn every_type_name_matches_systemd_repart() {
    // One small partition per symbolic name we know; systemd-repart (native arch x86-64 on this
    // machine) resolves the names, derives the labels (type name, -2, -3 for repeats), the UUIDs
    // (seed, type and instance counter) and the default attributes (GrowFileSystem, ReadOnly).
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    fs::create_dir(&defs_dir).unwrap();
    let mut names: Vec<String> = [
        "esp",
        "xbootldr",
        "swap",
        "home",
        "srv",
        "var",
        "tmp",
        "user-home",
        "linux-generic",
    ]
    .map(str::to_owned)
    .to_vec();
    let suffixes = ["", "-verity", "-verity-sig"];
    for class in ["root", "usr"] {
        for s in suffixes {
            names.push(format!("{class}{s}"));
            names.push(format!("{class}-secondary{s}"));
            for arch in Arch::ALL {
                names.push(format!("{class}-{arch}{s}"));
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        fs::write(
            defs_dir.join(format!("{i:03}-{name}.conf")),
            format!("[Partition]\nType={name}\nSizeMinBytes=1M\nSizeMaxBytes=1M\n"),
        )
        .unwrap();
    }
    let defs = definitions::load_dir(&defs_dir, Arch::X86_64).unwrap();
    assert_eq!(defs.len(), names.len());
    let disk = 256 * MIB;
    let image = dir.path().join("types.img");
    drop(create(&image, disk));
    let t = compare(&defs_dir, &defs, &image, disk, true);
    assert_eq!(t.partitions.len(), names.len());
    assert!(t.partitions.iter().any(|p| p.name == "root-x86-64-2"));
}

#[test]
fn a_too_small_disk_is_refused_by_both_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = stripped_definitions("rock64", &defs_dir);
    let disk = 2 * GIB;
    let image = dir.path().join("small.img");
    common::flashed_image(&image, disk);
    let before = sha256(&image);
    let current = read_table(&image, disk);
    let err = plan(&defs, Some(&current), disk, seed(), &PlanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bytes too small"), "{err}");
    let (ok, stderr) = systemd_repart(&defs_dir, &image);
    assert!(!ok, "systemd-repart accepted a 2 GiB disk");
    assert!(
        stderr.contains("Can't fit requested partitions"),
        "{stderr}"
    );
    assert_eq!(
        sha256(&image),
        before,
        "systemd-repart changed a refused disk"
    );
}

fn write_definitions(dir: &Path, files: &[(&str, &str)]) -> Vec<Definition> {
    fs::create_dir(dir).unwrap();
    for (name, body) in files {
        fs::write(dir.join(name), format!("[Partition]\n{body}\n")).unwrap();
    }
    definitions::load_dir(dir, Arch::X86_64).unwrap()
}

#[test]
fn weights_and_padding_match_systemd_repart() {
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = write_definitions(
        &defs_dir,
        &[
            ("10-a.conf", "Type=home\nWeight=1000\nPaddingWeight=500"),
            ("20-b.conf", "Type=srv\nWeight=3000\nSizeMaxBytes=700M"),
            (
                "30-c.conf",
                "Type=var\nSizeMinBytes=100M\nPaddingMinBytes=10M\nPaddingWeight=200\nLabel=c",
            ),
            ("40-d.conf", "Type=tmp\nWeight=0"),
            (
                "50-e.conf",
                "Type=linux-generic\nWeight=333\nPaddingMaxBytes=1M\nPaddingWeight=9",
            ),
        ],
    );
    for disk in [GIB + 12345 * 4096, 4 * GIB] {
        let image = dir.path().join(format!("w{disk}.img"));
        drop(create(&image, disk));
        let t = compare(&defs_dir, &defs, &image, disk, true);
        assert_eq!(t.partitions.len(), 5);
    }
}

#[test]
fn priority_drops_match_systemd_repart() {
    // 1 GiB holds a and d, or a and c, but not all four: c (priority 10) and then b (5) are
    // dropped; a (0) and d (-3) are never dropped.
    let dir = tempfile::tempdir().unwrap();
    let defs_dir = dir.path().join("defs");
    let defs = write_definitions(
        &defs_dir,
        &[
            ("a.conf", "Type=home\nSizeMinBytes=600M\nPriority=0"),
            ("b.conf", "Type=srv\nSizeMinBytes=600M\nPriority=5"),
            ("c.conf", "Type=var\nSizeMinBytes=300M\nPriority=10"),
            ("d.conf", "Type=tmp\nSizeMinBytes=100M\nPriority=-3"),
        ],
    );
    let disk = GIB;
    let image = dir.path().join("prio.img");
    drop(create(&image, disk));
    let t = compare(&defs_dir, &defs, &image, disk, true);
    let kept: Vec<_> = t.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(kept, ["home", "tmp"]);
}
