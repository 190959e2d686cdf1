//! T1: single files in the root directory of an existing FAT file system inside a partition
//! window (`vfat::{list_root, read_file, write_file}`), checked with mtools and `fsck.vfat -n`,
//! on file systems made by our formatter and by `mkfs.vfat`.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use atomix_repart::vfat::{self, VfatError, VfatOptions};
use common::{MIB, extract, run};

const START: u64 = 16 * MIB;
const SIZE: u64 = 128 * MIB;

/// A 200 MiB sparse file with a FAT16 at 16 MiB holding `hello.txt`.
fn image_with_fat(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("disk.img");
    let f = create_rw(&img, 200 * MIB);
    let src = dir.join("hello.txt");
    std::fs::write(&src, b"hello").unwrap();
    let opts = VfatOptions {
        volume_label: *b"BOOT-A     ",
        volume_id: 0x1234_5678,
        fat_type: None,
        time: 1_700_000_000,
    };
    vfat::format(&f, START, SIZE, &opts, &[("hello.txt".into(), src)]).unwrap();
    img
}

/// A new sparse file of `len` bytes, open for reading and writing (FAT formatting reads too).
fn create_rw(img: &Path, len: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(img)
        .unwrap();
    f.set_len(len).unwrap();
    f
}

fn open_rw(img: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(img).unwrap()
}

fn mtype(img: &Path, name: &str) -> String {
    let (code, text) = run(
        "mtype",
        &[
            "-i",
            &format!("{}@@{START}", img.display()),
            &format!("::{name}"),
        ],
    );
    assert_eq!(code, 0, "mtype {name}: {text}");
    text
}

fn assert_fsck_clean(img: &Path, scratch: &Path) {
    let part = scratch.join("part.vfat");
    extract(img, START, SIZE, &part);
    let (code, text) = run("fsck.vfat", &["-n", part.to_str().unwrap()]);
    assert_eq!(code, 0, "fsck.vfat -n:\n{text}");
}

fn outside_window_is_zero(img: &Path) {
    let f = File::open(img).unwrap();
    let mut buf = vec![0u8; START as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "wrote before the window");
    let mut buf = vec![0u8; (200 * MIB - START - SIZE) as usize];
    f.read_exact_at(&mut buf, START + SIZE).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "wrote after the window");
}

#[test]
fn create_rewrite_shrink_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let img = image_with_fat(dir.path());
    let f = open_rw(&img);

    assert_eq!(
        vfat::read_file(&f, START, SIZE, "abstate.txt").unwrap(),
        None
    );
    let state = b"BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n\0";
    vfat::write_file(&f, START, SIZE, "abstate.txt", state, 1_700_000_000).unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        mtype(&img, "abstate.txt").as_bytes(),
        state,
        "mtype shows what was written"
    );
    assert_fsck_clean(&img, dir.path());

    // Case-insensitive lookup, as FAT (and U-Boot) does.
    assert_eq!(
        vfat::read_file(&f, START, SIZE, "ABSTATE.TXT")
            .unwrap()
            .unwrap(),
        state
    );

    // Rewriting truncates: a shorter text leaves no tail of the old one.
    vfat::write_file(
        &f,
        START,
        SIZE,
        "abstate.txt",
        b"BOOT_B_LEFT=1\n\0",
        1_700_000_100,
    )
    .unwrap();
    assert_eq!(mtype(&img, "abstate.txt"), "BOOT_B_LEFT=1\n\0");
    // A file spanning many clusters, then a shrink of it.
    let big: Vec<u8> = (0..3 * MIB as usize).map(|i| (i % 251) as u8).collect();
    vfat::write_file(&f, START, SIZE, "big.bin", &big, 1_700_000_000).unwrap();
    assert_eq!(
        vfat::read_file(&f, START, SIZE, "big.bin")
            .unwrap()
            .unwrap(),
        big
    );
    vfat::write_file(&f, START, SIZE, "big.bin", &big[..1000], 1_700_000_000).unwrap();
    f.sync_all().unwrap();
    assert_fsck_clean(&img, dir.path());

    let mut listed = vfat::list_root(&f, START, SIZE).unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(&str, u64, bool)> = listed
        .iter()
        .map(|e| (e.name.as_str(), e.size, e.is_dir))
        .collect();
    assert_eq!(
        summary,
        [
            ("abstate.txt", 15, false),
            ("big.bin", 1000, false),
            ("hello.txt", 5, false)
        ]
    );
    // mdir agrees on the names (long names on the right).
    let (code, text) = run(
        "mdir",
        &["-i", &format!("{}@@{START}", img.display()), "-b", "::"],
    );
    assert_eq!(code, 0, "{text}");
    for name in ["abstate.txt", "big.bin", "hello.txt"] {
        assert!(text.contains(name), "mdir misses {name}:\n{text}");
    }
    outside_window_is_zero(&img);
}

#[test]
fn works_on_a_file_system_made_by_mkfs_vfat() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part.vfat");
    let (code, text) = run(
        "mkfs.vfat",
        &["-C", "-n", "BOOT-B", part.to_str().unwrap(), "131072"],
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(
        "mcopy",
        &["-i", part.to_str().unwrap(), "/etc/hostname", "::Image"],
    );
    assert_eq!(code, 0, "{text}");
    // Put it at 16 MiB of a bigger image.
    let img = dir.path().join("disk.img");
    let out = File::create(&img).unwrap();
    out.set_len(200 * MIB).unwrap();
    out.write_all_at(&std::fs::read(&part).unwrap(), START)
        .unwrap();
    drop(out);
    let f = open_rw(&img);
    vfat::write_file(&f, START, SIZE, "abstate.txt", b"BOOT_ORDER=B A\n\0", 0).unwrap();
    f.sync_all().unwrap();
    assert_eq!(mtype(&img, "abstate.txt"), "BOOT_ORDER=B A\n\0");
    assert_eq!(
        vfat::read_file(&f, START, SIZE, "Image").unwrap().unwrap(),
        std::fs::read("/etc/hostname").unwrap()
    );
    assert_fsck_clean(&img, dir.path());
}

#[test]
fn no_file_system_and_bad_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("zeros.img");
    File::create(&img).unwrap().set_len(200 * MIB).unwrap();
    let f = open_rw(&img);
    let err = vfat::read_file(&f, START, SIZE, "abstate.txt").unwrap_err();
    assert!(
        matches!(err, VfatError::Open { start: START, end, .. } if end == START + SIZE),
        "{err:?}"
    );
    assert!(err.to_string().contains("16777216..150994944"), "{err}");
    let err = vfat::write_file(&f, START, SIZE, "x", b"1", 0).unwrap_err();
    assert!(matches!(err, VfatError::Open { .. }), "{err:?}");
    assert!(matches!(
        vfat::list_root(&f, START, SIZE),
        Err(VfatError::Open { .. })
    ));
    // Nothing was written to the blank disk.
    let mut buf = vec![0u8; SIZE as usize];
    f.read_exact_at(&mut buf, START).unwrap();
    assert!(buf.iter().all(|&b| b == 0));

    let img = image_with_fat(dir.path());
    let f = open_rw(&img);
    for bad in ["", "dir/file", "a\\b"] {
        assert!(
            matches!(
                vfat::write_file(&f, START, SIZE, bad, b"1", 0),
                Err(VfatError::FileName { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_full_file_system_is_an_update_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("small.img");
    let f = create_rw(&img, 4 * MIB);
    let opts = VfatOptions {
        volume_label: *b"SMALL      ",
        volume_id: 1,
        fat_type: None,
        time: 0,
    };
    vfat::format(&f, MIB, 2 * MIB, &opts, &[]).unwrap();
    let f = open_rw(&img);
    let err = vfat::write_file(&f, MIB, 2 * MIB, "big.bin", &vec![1u8; 3 << 20], 0).unwrap_err();
    assert!(
        matches!(&err, VfatError::UpdateFile { name, .. } if name == "big.bin"),
        "{err:?}"
    );
}
