//! T1: formats sparse image files (no root) and checks them with f2fs-tools' own fsck.f2fs,
//! dump.f2fs and mkfs.f2fs, and blkid.
// The helpers below are test code too (clippy.toml only allows unwrap inside #[test] fns).
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use atomix_f2fs::{
    ChildEnding, F2fsError, Feature, Features, FormatOptions, Reproducible, Step, Uuid, format,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const MKFS_DEFAULT: &str =
    "extra_attr,inode_checksum,sb_checksum,flexible_inline_xattr,inode_crtime,lost_found";

fn sparse(dir: &TempDir, name: &str, size: u64) -> PathBuf {
    let path = dir.path().join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

fn run(program: &str, args: &[&str], file: &Path) -> (i32, String) {
    let out = Command::new(program).args(args).arg(file).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// fsck.f2fs --dry-run: exit 0, and every check line says Ok.
fn assert_fsck_clean(image: &Path) {
    let (code, text) = run("fsck.f2fs", &["--dry-run"], image);
    assert_eq!(code, 0, "fsck.f2fs failed:\n{text}");
    let checks: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[FSCK]") && l.contains("["))
        .collect();
    let ok = checks.iter().filter(|l| l.contains("[Ok..]")).count();
    assert!(ok >= 10, "fewer than 10 Ok checks:\n{text}");
    assert!(
        !text.contains("[Fail]"),
        "fsck.f2fs reports a failure:\n{text}"
    );
}

fn dump(image: &Path) -> String {
    let (code, text) = run("dump.f2fs", &["-d", "1"], image);
    assert_eq!(code, 0, "dump.f2fs failed:\n{text}");
    text
}

fn dump_line<'a>(dump: &'a str, prefix: &str) -> &'a str {
    dump.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{dump}"))
}

/// The dump without the lines that differ between any two formats: the random checkpoint
/// version, the superblock CRC (it covers the random UUID).
fn dump_without_random(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter(|l| {
            !l.starts_with("crc ")
                && !l.contains("CKPT version")
                && !l.starts_with("checkpoint_ver")
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

fn mkfs(image: &Path, label: &str, features: &str, extra: &[&str]) {
    let mut args = vec!["-q", "-t", "0", "-l", label];
    if !features.is_empty() {
        args.extend(["-O", features]);
    }
    args.extend(extra);
    let (code, text) = run("mkfs.f2fs", &args, image);
    assert_eq!(code, 0, "mkfs.f2fs failed:\n{text}");
}

#[test]
fn formats_512_mib_with_label_and_default_features() {
    let dir = TempDir::new().unwrap();
    let image = sparse(&dir, "a.img", 512 * MIB);
    format(&image, &FormatOptions::new("rootfs")).unwrap();

    assert_fsck_clean(&image);
    let dump = dump(&image);
    assert_eq!(
        dump_line(&dump, "Info: superblock features"),
        "Info: superblock features = b68 :  extra_attr inode_checksum flexible_inline_xattr inode_crtime lost_found sb_checksum"
    );
    assert!(dump_line(&dump, "volum_name").ends_with("[rootfs]"));
    assert!(dump_line(&dump, "Info: total FS sectors").contains("(512 MB)"));

    let (code, blkid) = run("blkid", &[], &image);
    assert_eq!(code, 0, "{blkid}");
    assert!(blkid.contains("LABEL=\"rootfs\""), "{blkid}");
    assert!(blkid.contains("TYPE=\"f2fs\""), "{blkid}");
}

#[test]
fn formats_16_gib_sparse_file() {
    let dir = TempDir::new().unwrap();
    let image = sparse(&dir, "big.img", 16 * GIB);
    let started = Instant::now();
    format(&image, &FormatOptions::new("data")).unwrap();
    let elapsed = started.elapsed();
    assert_fsck_clean(&image);
    assert!(dump_line(&dump(&image), "Info: total FS sectors").contains("(16384 MB)"));
    let written = allocated(&image);
    eprintln!(
        "16 GiB format: {} ms, {:.1} MiB allocated",
        elapsed.as_millis(),
        written as f64 / MIB as f64
    );
    // Only metadata is written: tens of MiB, not the size of the filesystem.
    assert!(
        written > MIB && written < 128 * MIB,
        "{written} bytes allocated"
    );
}

#[test]
fn matches_mkfs_f2fs_with_the_same_features() {
    let sets = [
        MKFS_DEFAULT.to_owned(),
        format!("{MKFS_DEFAULT},compression"),
        "extra_attr,project_quota,quota".to_owned(),
        "extra_attr,project_quota".to_owned(),
        "quota".to_owned(),
        "encrypt,verity".to_owned(),
        String::new(),
    ];
    let dir = TempDir::new().unwrap();
    for features in sets {
        let ours = sparse(&dir, "ours.img", 512 * MIB);
        let theirs = sparse(&dir, "theirs.img", 512 * MIB);
        let opts = FormatOptions {
            features: features.parse().unwrap(),
            ..FormatOptions::new("L")
        };
        format(&ours, &opts).unwrap();
        mkfs(&theirs, "L", &features, &[]);
        assert_fsck_clean(&ours);
        let (ours_dump, theirs_dump) = (dump(&ours), dump(&theirs));
        assert_eq!(
            dump_line(&ours_dump, "Info: superblock features"),
            dump_line(&theirs_dump, "Info: superblock features"),
            "features {features:?}"
        );
        assert_eq!(
            dump_without_random(&ours_dump),
            dump_without_random(&theirs_dump),
            "features {features:?}"
        );
        fs::remove_file(&ours).unwrap();
        fs::remove_file(&theirs).unwrap();
    }
}

#[test]
fn reproducible_output_is_byte_identical() {
    let dir = TempDir::new().unwrap();
    let uuid = Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
    let opts = FormatOptions {
        reproducible: Some(Reproducible {
            uuid,
            time: 1_700_000_000,
        }),
        ..FormatOptions::new("rootfs")
    };
    let first = sparse(&dir, "1.img", 512 * MIB);
    let second = sparse(&dir, "2.img", 512 * MIB);
    format(&first, &opts).unwrap();
    format(&second, &opts).unwrap();
    assert_fsck_clean(&first);
    assert_eq!(sha256(&first), sha256(&second));

    let (_, blkid) = run("blkid", &[], &first);
    assert!(blkid.contains(&format!("UUID=\"{uuid}\"")), "{blkid}");

    // Another UUID gives other bytes, and without the option two formats differ.
    let other_uuid = sparse(&dir, "3.img", 512 * MIB);
    let other = FormatOptions {
        reproducible: Some(Reproducible {
            uuid: Uuid::nil(),
            time: 1_700_000_000,
        }),
        ..opts.clone()
    };
    format(&other_uuid, &other).unwrap();
    assert_ne!(sha256(&first), sha256(&other_uuid));
    let random = [
        sparse(&dir, "4.img", 512 * MIB),
        sparse(&dir, "5.img", 512 * MIB),
    ];
    for image in &random {
        format(image, &FormatOptions::new("rootfs")).unwrap();
    }
    assert_ne!(sha256(&random[0]), sha256(&random[1]));

    // mkfs.f2fs -U -T gives the same superblock (same CRC); only its checkpoint version is
    // random, as mkfs.f2fs 1.15 does not fix the seed for -T.
    let theirs = sparse(&dir, "mkfs.img", 512 * MIB);
    mkfs(
        &theirs,
        "rootfs",
        MKFS_DEFAULT,
        &["-U", &uuid.to_string(), "-T", "1700000000"],
    );
    let (ours_dump, theirs_dump) = (dump(&first), dump(&theirs));
    assert_eq!(
        dump_line(&ours_dump, "crc "),
        dump_line(&theirs_dump, "crc ")
    );
    assert_eq!(
        dump_without_random(&ours_dump),
        dump_without_random(&theirs_dump)
    );
}

#[test]
fn nonexistent_device_is_a_typed_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing/f2fs.img");
    let err = format(&missing, &FormatOptions::new("x")).unwrap_err();
    let F2fsError::Failed {
        device,
        step,
        ending,
        messages,
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(device, &missing);
    assert_eq!(*step, Step::GetDeviceInfo);
    assert_eq!(*ending, ChildEnding::Exited(67));
    let messages = messages.as_ref().unwrap().to_string();
    assert!(
        messages.contains("Failed to get the device stat"),
        "{messages}"
    );
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    // This process survived and formats again.
    let image = sparse(&dir, "ok.img", 512 * MIB);
    format(&image, &FormatOptions::new("x")).unwrap();
    assert_fsck_clean(&image);
}

#[test]
fn too_small_file_is_a_typed_error_with_the_library_message() {
    let dir = TempDir::new().unwrap();
    let image = sparse(&dir, "small.img", MIB);
    let err = format(&image, &FormatOptions::new("x")).unwrap_err();
    let F2fsError::Failed {
        device,
        step,
        messages,
        ..
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(device, &image);
    assert_eq!(*step, Step::FormatDevice);
    let messages = messages.as_ref().unwrap();
    assert!(
        messages
            .to_string()
            .contains("Device size is not sufficient for F2FS volume"),
        "{messages}"
    );
    assert!(
        messages.text().contains("total sectors = 2048"),
        "{}",
        messages.text()
    );
}

#[test]
fn formats_twice_in_one_process_with_the_global_state_reset() {
    let dir = TempDir::new().unwrap();
    let first = sparse(&dir, "1.img", 512 * MIB);
    let second = sparse(&dir, "2.img", 512 * MIB);
    format(&first, &FormatOptions::new("first")).unwrap();
    let bare = FormatOptions {
        features: Features::new([Feature::ExtraAttr, Feature::SbChecksum]).unwrap(),
        total_sectors: Some(256 * MIB / 512),
        ..FormatOptions::new("second")
    };
    format(&second, &bare).unwrap();
    assert_fsck_clean(&first);
    assert_fsck_clean(&second);
    let (d1, d2) = (dump(&first), dump(&second));
    assert!(dump_line(&d1, "volum_name").ends_with("[first]"));
    assert!(dump_line(&d2, "volum_name").ends_with("[second]"));
    assert!(dump_line(&d1, "Info: total FS sectors").contains("(512 MB)"));
    // total_sectors applies (f2fs_get_f2fs_info is called), and the features of the first
    // format do not leak into the second.
    assert!(
        dump_line(&d2, "Info: total FS sectors").contains("(256 MB)"),
        "{d2}"
    );
    assert_eq!(
        dump_line(&d2, "Info: superblock features"),
        "Info: superblock features = 808 :  extra_attr sb_checksum"
    );
}

#[test]
fn formats_from_several_threads_at_once() {
    let dir = TempDir::new().unwrap();
    let images: Vec<PathBuf> = (0..4)
        .map(|i| sparse(&dir, &format!("{i}.img"), 512 * MIB))
        .collect();
    std::thread::scope(|s| {
        for (i, image) in images.iter().enumerate() {
            s.spawn(move || format(image, &FormatOptions::new(format!("t{i}"))).unwrap());
        }
    });
    for (i, image) in images.iter().enumerate() {
        assert_fsck_clean(image);
        assert!(dump_line(&dump(image), "volum_name").ends_with(&format!("[t{i}]")));
    }
}

#[test]
fn discard_is_off_by_default() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("full.img");
    let mut file = File::create(&path).unwrap();
    let chunk = vec![0xa5u8; MIB as usize];
    for _ in 0..64 {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let before = allocated(&path);

    format(&path, &FormatOptions::new("keep")).unwrap();
    assert_fsck_clean(&path);
    assert_eq!(
        allocated(&path),
        before,
        "a format without discard punched holes"
    );
    let data = fs::read(&path).unwrap();
    assert!(
        data[32 * MIB as usize..].contains(&0xa5),
        "the old data is gone without discard"
    );

    let discard = FormatOptions {
        discard: true,
        ..FormatOptions::new("trim")
    };
    format(&path, &discard).unwrap();
    assert_fsck_clean(&path);
    assert!(
        allocated(&path) < before / 2,
        "discard=true did not discard the image file"
    );
}
