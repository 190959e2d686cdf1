//! T1: disk images checked with the real tools (sfdisk, sgdisk, fsck.vfat, mtools, unsquashfs).

// Helpers outside #[test] functions panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used)]

mod tools;

use tools::{GOLDEN_SFDISK, noise, run, run_text};

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use atomix_image::disk::{
    self, BootSource, DiskError, DiskLayout, DiskReport, DiskSpec, RawFile, Reserved, RootfsSource,
};

const MIB: u64 = 1 << 20;
const EPOCH: u64 = 1_700_000_000;

/// Inputs in `dir/in`: three boot files and a small rootfs tree.
struct Inputs {
    boot_files: Vec<(String, PathBuf)>,
    rootfs: PathBuf,
}

fn inputs(dir: &Path) -> Inputs {
    let input = dir.join("in");
    fs::create_dir_all(&input).unwrap();
    let mut boot_files = Vec::new();
    for (name, data) in [
        ("Image", noise(3 * MIB as usize + 12_345, 1)),
        ("initrd.img", noise(700_001, 2)),
        ("boot.scr", b"echo atomix\n".to_vec()),
    ] {
        let path = input.join(format!("src-{name}"));
        fs::write(&path, data).unwrap();
        boot_files.push((name.to_owned(), path));
    }
    let rootfs = input.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    fs::write(rootfs.join("etc/os-release"), "ID=atomixos\n").unwrap();
    fs::write(rootfs.join("usr/bin/blob"), noise(2 * MIB as usize, 3)).unwrap();
    std::os::unix::fs::symlink("usr/bin", rootfs.join("bin")).unwrap();
    Inputs { boot_files, rootfs }
}

fn spec(inputs: &Inputs, seed: &str) -> DiskSpec {
    DiskSpec {
        layout: DiskLayout::atomix().unwrap(),
        loader: Vec::new(),
        boot_files: inputs
            .boot_files
            .iter()
            .map(|(name, path)| (name.clone(), BootSource::File(path.clone())))
            .collect(),
        rootfs: RootfsSource::Dir(inputs.rootfs.clone()),
        epoch: EPOCH,
        seed: seed.to_owned(),
        size: None,
    }
}

fn build(spec: &DiskSpec, out: &Path) -> Result<DiskReport, DiskError> {
    let mut steps = Vec::new();
    let started = Instant::now();
    let result = disk::build(spec, out, &mut |s| {
        steps.push(format!("{:.2?} {s}", started.elapsed()));
    });
    eprintln!(
        "build of {} took {:?}: {steps:?}",
        out.display(),
        started.elapsed()
    );
    result
}

/// Copies `len` bytes at `offset` of `image` into a new file `to`.
fn extract(image: &Path, offset: u64, len: u64, to: &Path) {
    let mut buf = vec![0u8; len as usize];
    File::open(image)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    fs::write(to, buf).unwrap();
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn image_passes_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let img = d.join("disk.img");
    let report = build(&spec(&inputs, "golden"), &img).unwrap();

    // Size, sparseness, report.
    let meta = fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 1169 * MIB);
    assert_eq!(report.size, meta.len());
    eprintln!(
        "image: apparent {} bytes, allocated {} bytes, rootfs {} bytes",
        report.size, report.allocated, report.rootfs_bytes
    );
    assert!(
        report.allocated < 32 * MIB,
        "image not sparse: {} bytes allocated",
        report.allocated
    );
    let sha = run_text(d, "sha256sum", &["disk.img"]);
    assert_eq!(sha.split_whitespace().next().unwrap(), report.sha256);
    assert_eq!(
        listing(d),
        ["disk.img", "in"],
        "temporary files left behind"
    );

    // GPT: golden sfdisk dump, sgdisk verification.
    let dump = run_text(d, "sfdisk", &["-d", "disk.img"]);
    assert_eq!(dump, GOLDEN_SFDISK);
    let verify = run_text(d, "sgdisk", &["-v", "disk.img"]);
    assert!(
        verify.contains("No problems found."),
        "sgdisk -v:\n{verify}"
    );
    assert_eq!(report.partitions[0].uuid, dump_uuid(&dump, 1));
    assert_eq!(report.partitions[1].uuid, dump_uuid(&dump, 2));

    // Boot vfat: fsck clean, FAT16, label, files equal to the inputs.
    extract(&img, 16 * MIB, 128 * MIB, &d.join("boot.vfat"));
    let fsck = run_text(d, "fsck.vfat", &["-n", "-v", "boot.vfat"]);
    // fsck.fat exits non-zero on any damage; `run` checked that. Its file count includes the
    // volume label entry.
    assert!(
        fsck.contains("2 FATs, 16 bit entries"),
        "fsck.vfat:\n{fsck}"
    );
    assert!(fsck.contains("boot.vfat: 4 files"), "fsck.vfat:\n{fsck}");
    assert!(!fsck.contains("Dirty"), "fsck.vfat:\n{fsck}");
    let mdir = run_text(d, "mdir", &["-i", "disk.img@@16M", "::"]);
    assert!(
        mdir.contains("Volume in drive : is BOOT-A"),
        "mdir:\n{mdir}"
    );
    for (name, src) in &inputs.boot_files {
        assert!(
            mdir.contains(name.as_str()),
            "{name} missing from mdir:\n{mdir}"
        );
        let data = run(d, "mtype", &["-i", "disk.img@@16M", &format!("::{name}")]);
        assert!(
            data == fs::read(src).unwrap(),
            "{name} differs from its input"
        );
    }
    // Timestamps come from the epoch (2023-11-14 22:13:20 UTC).
    assert!(mdir.contains("2023-11-14  22:13"), "mdir:\n{mdir}");

    // Rootfs: zstd, 1 MiB blocks, contents equal to the input tree.
    extract(&img, 144 * MIB, report.rootfs_bytes, &d.join("rootfs.sqfs"));
    let stat = run_text(d, "unsquashfs", &["-s", "rootfs.sqfs"]);
    assert!(stat.contains("Compression zstd"), "unsquashfs -s:\n{stat}");
    assert!(
        stat.contains("Block size 1048576"),
        "unsquashfs -s:\n{stat}"
    );
    run(
        d,
        "unsquashfs",
        &["-q", "-n", "-d", "unpacked", "rootfs.sqfs"],
    );
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&inputs.rootfs)
        .arg(d.join("unpacked"))
        .status()
        .unwrap();
    assert!(diff.success(), "unpacked rootfs differs from the input");
}

fn dump_uuid(dump: &str, n: u32) -> String {
    let line = dump
        .lines()
        .find(|l| l.starts_with(&format!("disk.img{n} ")))
        .unwrap();
    let at = line.find("uuid=").unwrap() + 5;
    line[at..at + 36].to_owned()
}

#[test]
fn same_spec_gives_identical_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let a = build(&spec(&inputs, "repro"), &d.join("a.img")).unwrap();
    let b = build(&spec(&inputs, "repro"), &d.join("b.img")).unwrap();
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(a, b);
    let cmp = Command::new("cmp")
        .arg(d.join("a.img"))
        .arg(d.join("b.img"))
        .status();
    assert!(cmp.unwrap().success(), "a.img and b.img differ");

    // The seed and the epoch really reach the image.
    let c = build(&spec(&inputs, "other"), &d.join("c.img")).unwrap();
    assert_ne!(a.sha256, c.sha256);
    assert_ne!(a.partitions[0].uuid, c.partitions[0].uuid);
    let mut later = spec(&inputs, "repro");
    later.epoch += 3600;
    let e = build(&later, &d.join("e.img")).unwrap();
    assert_ne!(a.sha256, e.sha256);
    assert_eq!(a.partitions, e.partitions);
}

#[test]
fn ready_squashfs_and_larger_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let sqfs = d.join("in/root.sqfs");
    run(
        d,
        "mksquashfs",
        &[
            inputs.rootfs.to_str().unwrap(),
            sqfs.to_str().unwrap(),
            "-quiet",
            "-no-progress",
        ],
    );
    let mut s = spec(&inputs, "ready");
    s.rootfs = RootfsSource::Squashfs(sqfs.clone());
    s.size = Some(4096 * MIB);
    let report = build(&s, &d.join("big.img")).unwrap();
    assert_eq!(fs::metadata(d.join("big.img")).unwrap().len(), 4096 * MIB);
    assert_eq!(report.rootfs_bytes, fs::metadata(&sqfs).unwrap().len());
    let mut copied = vec![0u8; report.rootfs_bytes as usize];
    File::open(d.join("big.img"))
        .unwrap()
        .read_exact_at(&mut copied, 144 * MIB)
        .unwrap();
    assert!(copied == fs::read(&sqfs).unwrap());
    let dump = run_text(d, "sfdisk", &["-d", "big.img"]);
    assert!(dump.contains("last-lba: 8388574"), "{dump}");
    let verify = run_text(d, "sgdisk", &["-v", "big.img"]);
    assert!(
        verify.contains("No problems found."),
        "sgdisk -v:\n{verify}"
    );
}

#[test]
fn too_large_rootfs_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let out = d.join("disk.img");
    fs::write(&out, "previous").unwrap();
    let huge = d.join("in/huge.sqfs");
    fs::write(&huge, b"hsqs").unwrap();
    File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(1024 * MIB + 1)
        .unwrap();
    let mut s = spec(&inputs, "huge");
    s.rootfs = RootfsSource::Squashfs(huge);
    let err = build(&s, &out).unwrap_err();
    assert!(matches!(err, DiskError::RootfsTooLarge { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("1073741825") && msg.contains("1073741824"),
        "{msg}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"previous", "output was touched");
    assert_eq!(
        listing(d),
        ["disk.img", "in"],
        "temporary files left behind"
    );
}

#[test]
fn not_a_squashfs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut s = spec(&inputs, "x");
    s.rootfs = RootfsSource::Squashfs(inputs.boot_files[0].1.clone());
    let err = build(&s, &d.join("disk.img")).unwrap_err();
    assert!(matches!(err, DiskError::NotSquashfs { .. }), "{err:?}");
    assert_eq!(listing(d), ["in"]);
}

#[test]
fn missing_boot_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut s = spec(&inputs, "missing");
    s.boot_files.push((
        "rk3328-rock64.dtb".into(),
        BootSource::File(d.join("in/nowhere.dtb")),
    ));
    let err = build(&s, &d.join("disk.img")).unwrap_err();
    assert!(matches!(err, DiskError::BootFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("rk3328-rock64.dtb") && msg.contains("nowhere.dtb"),
        "{msg}"
    );
    assert_eq!(listing(d), ["in"], "output or temporary files left behind");
}

#[test]
fn rootfs_dir_that_does_not_fit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut s = spec(&inputs, "small");
    // A 1 MiB slot cannot hold the 2 MiB of incompressible noise in the tree.
    s.layout.partitions[1].size = MIB;
    let err = build(&s, &d.join("disk.img")).unwrap_err();
    match &err {
        DiskError::RootfsTooLarge { size, slot, .. } => {
            assert_eq!(*slot, MIB);
            assert!(*size > MIB);
        }
        other => panic!("expected RootfsTooLarge, got {other:?}"),
    }
    assert_eq!(listing(d), ["in"], "output or temporary files left behind");
}

#[test]
fn bad_boot_file_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    for name in ["", "dtbs/x.dtb", ".hidden", "a:b"] {
        let mut s = spec(&inputs, "n");
        s.boot_files[0].0 = name.to_owned();
        let err = build(&s, &dir.path().join("disk.img")).unwrap_err();
        assert!(
            matches!(err, DiskError::BootFileName { .. }),
            "{name:?}: {err:?}"
        );
    }
    let mut s = spec(&inputs, "n");
    s.boot_files[1].0 = "IMAGE".into();
    let err = build(&s, &dir.path().join("disk.img")).unwrap_err();
    assert!(
        matches!(err, DiskError::DuplicateBootFile { .. }),
        "{err:?}"
    );
}

/// Two loader files like the Rock64's (at 32 KiB and 8 MiB) with an environment range reserved
/// between them.
fn with_loader(d: &Path, s: &mut DiskSpec) -> (Vec<u8>, Vec<u8>) {
    let idb = noise(100_000, 7);
    let itb = noise(800_001, 8);
    fs::write(d.join("in/idbloader.img"), &idb).unwrap();
    fs::write(d.join("in/u-boot.itb"), &itb).unwrap();
    s.loader = vec![
        RawFile {
            name: "idbloader.img".into(),
            offset: 64 * 512,
            source: d.join("in/idbloader.img"),
        },
        RawFile {
            name: "u-boot.itb".into(),
            offset: 16384 * 512,
            source: d.join("in/u-boot.itb"),
        },
    ];
    s.layout.reserved = vec![Reserved {
        name: "the U-Boot environment".into(),
        start: 0x3F8000,
        size: 0x8000,
    }];
    (idb, itb)
}

#[test]
fn loader_files_and_generated_boot_files_land_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut s = spec(&inputs, "golden");
    let (idb, itb) = with_loader(d, &mut s);
    s.boot_files.push((
        "abstate.txt".into(),
        BootSource::Bytes(b"BOOT_ORDER=A B\n\0".to_vec()),
    ));
    let img = d.join("disk.img");
    let report = build(&s, &img).unwrap();

    // The raw region holds exactly the two files; everything else between the primary GPT
    // and the first partition (the reserved environment included) is zero.
    let mut region = vec![0u8; (16 * MIB - 17408) as usize];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut region, 17408)
        .unwrap();
    let mut expected = vec![0u8; region.len()];
    expected[32768 - 17408..][..idb.len()].copy_from_slice(&idb);
    expected[(8 * MIB - 17408) as usize..][..itb.len()].copy_from_slice(&itb);
    assert!(
        region == expected,
        "raw region differs from the loader files"
    );
    assert_eq!(report.loader.len(), 2);
    assert_eq!(
        (report.loader[1].name.as_str(), report.loader[1].offset),
        ("u-boot.itb", 8 * MIB)
    );
    assert_eq!(report.loader[0].size, idb.len() as u64);

    // The GPT is the same as without loader files (same seed): the golden dump still holds.
    let dump = run_text(d, "sfdisk", &["-d", "disk.img"]);
    assert!(
        dump.contains("label-id: 4753FCBA-E1E2-4CAA-8266-732DEB341872"),
        "{dump}"
    );
    let verify = run_text(d, "sgdisk", &["-v", "disk.img"]);
    assert!(
        verify.contains("No problems found."),
        "sgdisk -v:\n{verify}"
    );

    // The generated file is in the vfat beside the copied ones, and fsck is clean.
    extract(&img, 16 * MIB, 128 * MIB, &d.join("boot.vfat"));
    let fsck = run_text(d, "fsck.vfat", &["-n", "-v", "boot.vfat"]);
    assert!(fsck.contains("boot.vfat: 5 files"), "fsck.vfat:\n{fsck}");
    let state = run(d, "mtype", &["-i", "disk.img@@16M", "::abstate.txt"]);
    assert_eq!(state, b"BOOT_ORDER=A B\n\0");
    assert_eq!(
        report.boot_bytes,
        inputs
            .boot_files
            .iter()
            .map(|(_, p)| fs::metadata(p).unwrap().len())
            .sum::<u64>()
            + 16
    );
    assert_eq!(
        listing(d),
        ["boot.vfat", "disk.img", "in"],
        "temporary files left behind"
    );
}

/// Builds `s` into `d/disk.img` expecting an error; checks nothing was left in `d`.
fn refused(d: &Path, s: &DiskSpec) -> DiskError {
    let err = build(s, &d.join("disk.img")).unwrap_err();
    assert_eq!(listing(d), ["in"], "output or temporary files left behind");
    err
}

#[test]
fn misplaced_loader_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut base = spec(&inputs, "raw");
    with_loader(d, &mut base);

    // Inside the primary GPT, not sector aligned, past the first partition.
    for (offset, what) in [
        (8 * 512, "in the GPT"),
        (64 * 512 + 1, "unaligned"),
        (16 * MIB - 512, "past"),
    ] {
        let mut s = base.clone();
        s.loader[0].offset = offset;
        let err = refused(d, &s);
        assert!(
            matches!(&err, DiskError::LoaderPlacement { name, start, .. } if name == "idbloader.img" && *start == offset),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("16777216"), "{err}");
    }

    // Over the reserved environment.
    let mut s = base.clone();
    s.loader[1].offset = 0x3F0000;
    let err = refused(d, &s);
    assert!(
        matches!(&err, DiskError::LoaderOverlap { name, other, .. } if name == "u-boot.itb" && other == "the U-Boot environment"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("u-boot.itb") && msg.contains("U-Boot environment"),
        "{msg}"
    );

    // Over each other.
    let mut s = base.clone();
    s.loader[1].offset = 64 * 512 + 4096;
    let err = refused(d, &s);
    assert!(
        matches!(&err, DiskError::LoaderOverlap { name, other, .. } if name == "u-boot.itb" && other == "idbloader.img"),
        "{err:?}"
    );
}

#[test]
fn missing_or_unreadable_loader_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d);
    let mut base = spec(&inputs, "raw");
    with_loader(d, &mut base);
    fs::create_dir(d.join("in/a-directory")).unwrap();
    fs::write(d.join("in/empty.img"), b"").unwrap();
    for source in ["in/nowhere/u-boot.itb", "in/a-directory", "in/empty.img"] {
        let mut s = base.clone();
        s.loader[1].source = d.join(source);
        let err = refused(d, &s);
        assert!(
            matches!(&err, DiskError::LoaderFile { name, .. } if name == "u-boot.itb"),
            "{source}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("u-boot.itb") && msg.contains(source), "{msg}");
    }
}
