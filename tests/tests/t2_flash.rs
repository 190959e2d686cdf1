//! T2: `atomix flash` (the real binary) on loop devices. Needs root (loop devices, mounts):
//! without root these tests fail, they are not skipped (the file-target test needs no root).
//!
//! - a 64 MiB sparse image (random regions, holes) flashed to a loop device holding stale
//!   bytes: exit 0, "verified", the device's first 64 MiB equal the image, the rest untouched;
//! - refusals, each exit 3 with the device unchanged byte for byte: a partition of the target
//!   mounted (GPT made by sfdisk, a squashfs in partition 1, announced with `addpart` because
//!   the host kernel has no GPT parser, mounted read-only), the target smaller than the image,
//!   a regular file without `--to-file` (which then works), the prompt answered "no" (on a
//!   pseudo-terminal made by `script`), and no terminal without `--yes`;
//! - SIGINT during the write of a large image: exit 130 and the message says what the device
//!   holds.
//!
//! The binary is built by `cargo build -p atomix` from here (so it is never stale); loop
//! devices and mounts are undone on every path by a guard's `Drop`.

#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use atomix_systests::{require_root, run_tool};

const MIB: u64 = 1 << 20;

fn atomix() -> &'static Path {
    atomix_systests::atomix_binary()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `atomix flash ARGS` with stdin from /dev/null.
fn flash(args: &[&Path], flags: &[&str]) -> Output {
    Command::new(atomix())
        .arg("flash")
        .args(flags)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A loop device (and a mount of one of its partitions), undone when dropped.
struct Loop {
    dev: PathBuf,
    mounted: Option<PathBuf>,
}

impl Loop {
    fn attach(file: &Path) -> Self {
        let dev = run_tool(
            Command::new("losetup")
                .args(["--find", "--show", "--partscan"])
                .arg(file),
        );
        Self {
            dev: PathBuf::from(dev.trim()),
            mounted: None,
        }
    }

    fn name(&self) -> String {
        self.dev.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The whole device's bytes, read past the page cache (`blockdev --flushbufs` first).
    fn bytes(&self) -> Vec<u8> {
        run_tool(Command::new("blockdev").arg("--flushbufs").arg(&self.dev));
        fs::read(&self.dev).unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(dir) = self.mounted.take() {
            let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Pseudo-random bytes (xorshift), different for each `seed`.
fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A sparse 64 MiB image: random data at 0-4 MiB, 20-21 MiB (unaligned to chunks) and the last
/// 1 MiB + 5 bytes; holes elsewhere (zeros). Returns its bytes.
fn image(path: &Path) -> Vec<u8> {
    let f = File::create(path).unwrap();
    let size = 64 * MIB;
    f.set_len(size).unwrap();
    for (at, len, seed) in [
        (0, 4 * MIB, 1),
        (20 * MIB + 17, MIB, 2),
        (size - MIB - 5, MIB + 5, 3),
    ] {
        f.write_all_at(&noise(len, seed), at).unwrap();
    }
    fs::read(path).unwrap()
}

/// A file of `len` bytes of 0xA5: stale data a flash must overwrite (or leave alone).
fn stale(path: &Path, len: u64) {
    fs::write(path, vec![0xA5; len as usize]).unwrap();
}

#[test]
fn flash_to_a_loop_device_verifies() {
    require_root("loop devices");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let content = image(&img);
    let backing = dir.path().join("target.img");
    stale(&backing, 80 * MIB);
    let lo = Loop::attach(&backing);

    let o = flash(&[&img, &lo.dev], &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("verified: read back"), "{out}");
    assert!(out.contains("matches"), "{out}");
    assert!(out.contains("loop device backed by"), "{out}");
    let bytes = lo.bytes();
    assert!(
        bytes[..content.len()] == content[..],
        "device differs from the image"
    );
    assert!(
        bytes[content.len()..].iter().all(|&b| b == 0xA5),
        "bytes after the image were written"
    );

    // --json: the report, with the image's SHA-256 as sha256sum computes it.
    let o = flash(&[&img, &lo.dev], &["--yes", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sha = run_tool(Command::new("sha256sum").arg(&img));
    assert_eq!(report["sha256"], sha.split_whitespace().next().unwrap());
    assert_eq!(report["verified"], true);
    assert_eq!(report["bytes"], 64 * MIB);
    assert!(report["mb_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_target_with_a_mounted_partition_is_refused_and_unchanged_by_flash_and_write_slot() {
    require_root("loop devices, mounts");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    image(&img);

    // A disk with a GPT (partition 1 at 1 MiB, 16 MiB) holding a squashfs.
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/marker"), "mounted\n").unwrap();
    let sqfs = dir.path().join("p1.sqfs");
    run_tool(Command::new("mksquashfs").arg(&tree).arg(&sqfs).args([
        "-noappend",
        "-quiet",
        "-no-progress",
        "-all-root",
    ]));
    let backing = dir.path().join("target.img");
    stale(&backing, 80 * MIB);
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&backing)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\nstart=2048, size=32768, type=linux, name=\"p1\"\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let f = OpenOptions::new().write(true).open(&backing).unwrap();
    f.write_all_at(&fs::read(&sqfs).unwrap(), MIB).unwrap();
    drop(f);

    let mut lo = Loop::attach(&backing);
    let p1 = PathBuf::from(format!("{}p1", lo.dev.display()));
    // What a GPT-aware kernel does at attach time (the host kernel has no GPT parser).
    if !Path::new(&format!("/sys/class/block/{}p1", lo.name())).exists() {
        run_tool(
            Command::new("addpart")
                .arg(&lo.dev)
                .args(["1", "2048", "32768"]),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p1.exists() {
        assert!(Instant::now() < deadline, "{} did not appear", p1.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    rustix::mount::mount(
        &p1,
        &mnt,
        "squashfs",
        rustix::mount::MountFlags::RDONLY,
        None,
    )
    .unwrap();
    lo.mounted = Some(mnt.clone());
    assert_eq!(
        fs::read_to_string(mnt.join("etc/marker")).unwrap(),
        "mounted\n"
    );
    let before = lo.bytes();

    for target in [&lo.dev, &p1] {
        let o = flash(&[&img, target], &["--yes"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{out}");
        assert!(out.contains("is in use"), "{out}");
        assert!(
            out.contains(&format!("{}p1 is mounted on {}", lo.name(), mnt.display())),
            "{out}"
        );
        assert!(out.contains("nothing was written"), "{out}");
        assert!(lo.bytes() == before, "{} changed", target.display());
    }
    // write-slot refuses the slot whose partition is mounted, before any other check.
    let boot_files = dir.path().join("boot-files");
    fs::create_dir(&boot_files).unwrap();
    let o = Command::new(atomix())
        .args(["image", "write-slot", "--board", "qemu-virt", "--slot", "a"])
        .arg("--boot-files")
        .arg(&boot_files)
        .arg("--rootfs")
        .arg(&sqfs)
        .arg(&lo.dev)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("{}p1 is mounted on {}", lo.name(), mnt.display()))
            && out.contains("belongs to slot A"),
        "{out}"
    );
    assert!(lo.bytes() == before, "write-slot changed the device");
    assert_eq!(
        fs::read_to_string(mnt.join("etc/marker")).unwrap(),
        "mounted\n"
    );
}

#[test]
fn a_target_smaller_than_the_image_is_refused_and_unchanged() {
    require_root("loop devices");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    image(&img);
    let backing = dir.path().join("small.img");
    stale(&backing, 32 * MIB);
    let lo = Loop::attach(&backing);

    let o = flash(&[&img, &lo.dev], &["--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "target {} is 32 MiB, smaller than the image (64 MiB)",
            lo.dev.display()
        )),
        "{out}"
    );
    assert!(lo.bytes().iter().all(|&b| b == 0xA5), "the device changed");
}

#[test]
fn a_regular_file_needs_to_file() {
    // Files only: no root needed.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let content = image(&img);
    let out_file = dir.path().join("out.img");
    stale(&out_file, 100 * MIB);

    let o = flash(&[&img, &out_file], &["--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("is a regular file, not a block device"),
        "{out}"
    );
    assert!(out.contains("pass --to-file"), "{out}");
    let bytes = fs::read(&out_file).unwrap();
    assert!(
        bytes.len() == 100 * MIB as usize && bytes.iter().all(|&b| b == 0xA5),
        "the file changed"
    );

    let o = flash(&[&img, &out_file], &["--yes", "--to-file"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("verified"), "{}", text(&o));
    assert!(
        fs::read(&out_file).unwrap() == content,
        "the file is not the image"
    );
    // A character device is never a target.
    let o = flash(&[&img, Path::new("/dev/null")], &["--yes"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

#[test]
fn a_declined_or_unasked_confirmation_leaves_the_device_unchanged() {
    require_root("loop devices");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    image(&img);
    let backing = dir.path().join("target.img");
    stale(&backing, 80 * MIB);
    let lo = Loop::attach(&backing);

    // On a terminal (a pseudo-terminal made by `script`), answering "no".
    let cmdline = format!(
        "'{}' flash '{}' '{}'",
        atomix().display(),
        img.display(),
        lo.dev.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("Type yes to continue"), "{out}");
    assert!(out.contains("by-id:"), "{out}");
    assert!(out.contains("declined; nothing was written"), "{out}");
    assert!(lo.bytes().iter().all(|&b| b == 0xA5), "the device changed");

    // Without a terminal and without --yes, even "yes" on stdin is not an answer.
    let mut child = Command::new(atomix())
        .arg("flash")
        .arg(&img)
        .arg(&lo.dev)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It may refuse (and exit) before reading stdin at all: a broken pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(b"yes\n");
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("pass --yes"), "{out}");
    assert!(lo.bytes().iter().all(|&b| b == 0xA5), "the device changed");
}

#[test]
fn an_interrupted_flash_says_what_the_device_holds() {
    require_root("loop devices");
    let dir = tempfile::tempdir().unwrap();
    // Large enough that the write is still running when the signal arrives.
    let img = dir.path().join("big.img");
    let f = File::create(&img).unwrap();
    f.set_len(4096 * MIB).unwrap();
    f.write_all_at(&noise(MIB, 9), 0).unwrap();
    drop(f);
    let backing = dir.path().join("target.img");
    File::create(&backing).unwrap().set_len(4096 * MIB).unwrap();
    let lo = Loop::attach(&backing);

    let mut child = Command::new(atomix())
        .arg("flash")
        .arg("--yes")
        .arg(&img)
        .arg(&lo.dev)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first progress line ("writing: 0 MiB of ...") comes just before the first chunk.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no progress line:\n{seen}"
        );
        seen.push_str(&line);
        if line.starts_with("writing: ") {
            break;
        }
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted after writing "), "{seen}");
    assert!(seen.contains("of 4096 MiB"), "{seen}");
    assert!(
        seen.contains("and its old data after that; it will not boot correctly; run flash again")
            || seen.contains("the target is unchanged"),
        "{seen}"
    );
}
