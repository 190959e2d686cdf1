//! T2: `atomix-sysroot` against the real kernel (loop device, squashfs, overlayfs, `MS_MOVE`,
//! `switch_root`). Needs root: CI runs it as root, and without root it fails, it is not skipped.
//!
//! Every mount happens in a child process with its own mount namespace: the test re-runs its own
//! binary under `unshare --mount --propagation private` with `ATOMIX_T2_CHILD=<test name>`, and
//! the child makes `/` recursively private again before mounting anything, so nothing leaks to
//! the host. The parent owns the loop device and detaches it on every path (a guard's `Drop`).
//!
//! The switch_root test never touches the host root: the child first mounts a tmpfs playing the
//! initramfs, chroots into it, checks that `/` is that tmpfs, and only then calls `switch_root`.

// Test code, helpers included: a panic is a test failure with its message
// (`allow-unwrap-in-tests` only covers `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use atomix_systests::{require_root, run_tool};
use std::env;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_sysroot::{SysrootError, assemble_overlay, mount_lower, switch_root};
use rustix::mount::{MountFlags, MountPropagationFlags};

const CHILD_ENV: &str = "ATOMIX_T2_CHILD";
const LOOP_ENV: &str = "ATOMIX_T2_LOOP";
const DIR_ENV: &str = "ATOMIX_T2_DIR";

/// The slot's `/sbin/init`: prints what it sees after `switch_root`, between markers.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
echo "T2-INIT-START"
echo "MOUNTINFO-BEGIN"
$B cat /proc/self/mountinfo
echo "MOUNTINFO-END"
echo "PID1-MARKER $($B cat /dev/dev-marker)"
echo "PWD $($B pwd)"
echo "LOWER $($B cat /etc/lower.txt)"
echo "OLDROOT-BEGIN"
$B ls -a "$OLDROOT/"
echo "OLDROOT-END"
echo "KEEP $($B cat "$OLDROOT/mnt/keep/keep.txt")"
echo "T2-INIT-END"
"#;

/// A read-only loop device, detached when dropped.
struct Loop(PathBuf);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// The slot image: busybox (static, x86_64), `/sbin/init`, a file in `/etc`.
struct Fixture {
    dir: tempfile::TempDir,
    dev: Loop,
}

impl Fixture {
    fn new() -> Fixture {
        require_root("loop devices, squashfs/overlay mounts, mount namespaces");
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        for d in ["bin", "sbin", "etc", "proc", "dev", "run", "sys"] {
            fs::create_dir_all(tree.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
        fs::write(tree.join("sbin/init"), INIT_SCRIPT).unwrap();
        fs::set_permissions(tree.join("sbin/init"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(tree.join("etc/lower.txt"), "from-lower\n").unwrap();
        let sqfs = dir.path().join("rootfs.sqfs");
        run_tool(Command::new("mksquashfs").arg(&tree).arg(&sqfs).args([
            "-comp",
            "zstd",
            "-b",
            "1M",
            "-noappend",
            "-all-root",
            "-quiet",
        ]));
        let dev = run_tool(
            Command::new("losetup")
                .args(["--find", "--show", "--read-only"])
                .arg(&sqfs),
        );
        let dev = Loop(PathBuf::from(dev.trim()));
        assert!(
            dev.0.to_string_lossy().starts_with("/dev/loop"),
            "{}",
            dev.0.display()
        );
        Fixture { dir, dev }
    }

    fn work(&self) -> PathBuf {
        let w = self.dir.path().join("work");
        fs::create_dir_all(&w).unwrap();
        w.canonicalize().unwrap()
    }

    /// Runs test `name` of this binary again, as a child in a new mount namespace.
    fn in_namespace(&self, name: &str) -> String {
        let exe = env::current_exe().unwrap();
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, name)
            .env(LOOP_ENV, &self.dev.0)
            .env(DIR_ENV, self.work())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child {name} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        stdout
    }
}

/// True in the child re-run of test `name`.
fn is_child(name: &str) -> bool {
    env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

fn child_env() -> (PathBuf, PathBuf) {
    let dev = PathBuf::from(env::var(LOOP_ENV).unwrap());
    let dir = PathBuf::from(env::var(DIR_ENV).unwrap());
    // Belt and braces: unshare already made the namespace private.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .unwrap();
    (dev, dir)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct MountInfo {
    mount_point: String,
    mount_opts: String,
    fstype: String,
    source: String,
    super_opts: String,
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountInfo {
                mount_point: pre.get(4)?.replace("\\040", " "),
                mount_opts: (*pre.get(5)?).to_owned(),
                fstype: (*post.first()?).to_owned(),
                source: (*post.get(1)?).to_owned(),
                super_opts: (*post.get(2)?).to_owned(),
            })
        })
        .collect()
}

/// The topmost mount at `path`.
fn mount_at<'a>(mounts: &'a [MountInfo], path: &Path) -> &'a MountInfo {
    let p = path.to_str().unwrap();
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == p)
        .unwrap_or_else(|| panic!("nothing mounted at {p}: {mounts:#?}"))
}

fn opts(s: &str) -> Vec<&str> {
    s.split(',').collect()
}

#[test]
fn overlay_over_squashfs() {
    const NAME: &str = "overlay_over_squashfs";
    if is_child(NAME) {
        child_overlay();
        return;
    }
    let fx = Fixture::new();
    let out = fx.in_namespace(NAME);
    assert!(out.contains("T2-OVERLAY-OK"), "{out}");
    // Nothing leaked into the host's mount table.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let work = fx.work();
    assert!(
        !host.contains(work.to_str().unwrap()),
        "mounts leaked to the host:\n{host}"
    );
}

fn child_overlay() {
    let (dev, dir) = child_env();
    let base = dir.join("run/rootfs-base");
    let ovl = dir.join("run/overlay-root");
    let target = dir.join("sysroot");

    mount_lower(&dev, "squashfs", &base).unwrap();
    assemble_overlay(&base, &ovl, &target).unwrap();

    let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let lower = mount_at(&mounts, &base);
    assert_eq!(lower.fstype, "squashfs");
    assert_eq!(Path::new(&lower.source), dev);
    assert!(opts(&lower.mount_opts).contains(&"ro"), "{lower:?}");
    let tmp = mount_at(&mounts, &ovl);
    assert_eq!(tmp.fstype, "tmpfs");
    assert!(opts(&tmp.super_opts).contains(&"mode=755"), "{tmp:?}");
    let o = mount_at(&mounts, &target);
    assert_eq!(o.fstype, "overlay");
    let so = opts(&o.super_opts);
    for want in [
        format!("lowerdir={}", base.display()),
        format!("upperdir={}", ovl.join("upper").display()),
        format!("workdir={}", ovl.join("work").display()),
    ] {
        assert!(so.contains(&want.as_str()), "{want} not in {so:?}");
    }
    assert!(opts(&o.mount_opts).contains(&"rw"), "{o:?}");

    // Writes land in upper; the lower is unchanged.
    assert_eq!(
        fs::read_to_string(target.join("etc/lower.txt")).unwrap(),
        "from-lower\n"
    );
    fs::write(target.join("etc/new.txt"), "new\n").unwrap();
    fs::write(target.join("etc/lower.txt"), "changed\n").unwrap();
    assert_eq!(
        fs::read_to_string(ovl.join("upper/etc/new.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(
        fs::read_to_string(ovl.join("upper/etc/lower.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        fs::read_to_string(base.join("etc/lower.txt")).unwrap(),
        "from-lower\n"
    );
    assert!(!base.join("etc/new.txt").exists());
    // The lower really is read-only.
    let err = fs::write(base.join("etc/x"), "x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );

    // Mounting the same device again at a fresh target with a wrong type names everything.
    let err = mount_lower(&dev, "ext4", &dir.join("again")).unwrap_err();
    assert!(matches!(err, SysrootError::MountLower { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot mount {} (ext4) read-only at {}",
            dev.display(),
            dir.join("again").display()
        )
    );
    println!("T2-OVERLAY-OK");
}

#[test]
fn switch_root_into_overlay_and_exec() {
    const NAME: &str = "switch_root_into_overlay_and_exec";
    if is_child(NAME) {
        child_switch_root();
        return;
    }
    let fx = Fixture::new();
    let out = fx.in_namespace(NAME);
    let section = |begin: &str, end: &str| -> String {
        let (_, rest) = out
            .split_once(&format!("{begin}\n"))
            .unwrap_or_else(|| panic!("no {begin} in:\n{out}"));
        rest.split_once(&format!("{end}\n"))
            .unwrap_or_else(|| panic!("no {end} in:\n{out}"))
            .0
            .to_owned()
    };
    let field = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in:\n{out}"))
            .to_owned()
    };
    assert!(out.contains("T2-INIT-END"), "{out}");

    // The exec'd init sees the overlay as /, with the moved mounts under it.
    let mounts = parse_mountinfo(&section("MOUNTINFO-BEGIN", "MOUNTINFO-END"));
    let root = mount_at(&mounts, Path::new("/"));
    assert_eq!(root.fstype, "overlay", "{mounts:#?}");
    assert!(
        root.super_opts.contains("lowerdir=/run/rootfs-base"),
        "{root:?}"
    );
    assert!(
        root.super_opts.contains("upperdir=/run/overlay-root/upper"),
        "{root:?}"
    );
    assert_eq!(mount_at(&mounts, Path::new("/proc")).fstype, "proc");
    assert_eq!(mount_at(&mounts, Path::new("/dev")).fstype, "tmpfs");
    assert_eq!(mount_at(&mounts, Path::new("/run")).fstype, "tmpfs");
    assert_eq!(
        mount_at(&mounts, Path::new("/run/rootfs-base")).fstype,
        "squashfs"
    );
    assert_eq!(
        mount_at(&mounts, Path::new("/run/overlay-root")).fstype,
        "tmpfs"
    );
    // Nothing of the host is visible any more.
    assert!(
        mounts.iter().all(|m| !m.mount_point.starts_with("/tmp")),
        "{mounts:#?}"
    );
    assert_eq!(field("PID1-MARKER"), "moved-dev");
    assert_eq!(field("PWD"), "/");
    assert_eq!(field("LOWER"), "from-lower");

    // The old initramfs was emptied, but not across the separate mount inside it.
    let mut left: Vec<String> = section("OLDROOT-BEGIN", "OLDROOT-END")
        .lines()
        .map(str::to_owned)
        .collect();
    left.sort();
    assert_eq!(left, [".", "..", "mnt", "sysroot"], "{out}");
    assert_eq!(field("KEEP"), "keep-me");
}

fn child_switch_root() {
    let (dev, dir) = child_env();
    let initramfs = dir.join("initramfs");
    fs::create_dir_all(&initramfs).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &initramfs,
        "tmpfs",
        MountFlags::empty(),
        c"mode=0755",
    )
    .unwrap();
    let r = |p: &str| initramfs.join(p);

    // What an initramfs holds; all of it must be deleted.
    for d in [
        "etc/atomix",
        "bin",
        "lib/modules/6.1",
        "deep/a/b/c",
        "dev",
        "proc",
        "run",
        "mnt/keep",
    ] {
        fs::create_dir_all(r(d)).unwrap();
    }
    fs::write(r("init"), "init").unwrap();
    fs::write(r("etc/atomix/modules.load"), "x /lib/modules/6.1/x.ko\n").unwrap();
    fs::write(r("lib/modules/6.1/x.ko"), "ko").unwrap();
    fs::write(r("deep/a/b/c/file"), "f").unwrap();
    std::os::unix::fs::symlink("/etc", r("bin/link")).unwrap();
    // A separate filesystem inside the initramfs: must not be crossed.
    rustix::mount::mount("tmpfs", r("mnt/keep"), "tmpfs", MountFlags::empty(), None).unwrap();
    fs::write(r("mnt/keep/keep.txt"), "keep-me").unwrap();
    // The API mounts /init would have.
    rustix::mount::mount("proc", r("proc"), "proc", MountFlags::empty(), None).unwrap();
    rustix::mount::mount("tmpfs", r("dev"), "tmpfs", MountFlags::empty(), None).unwrap();
    fs::write(r("dev/dev-marker"), "moved-dev").unwrap();
    rustix::mount::mount(
        "tmpfs",
        r("run"),
        "tmpfs",
        MountFlags::empty(),
        c"mode=0755",
    )
    .unwrap();

    // The host's loop device node, visible inside the fake initramfs' /dev.
    let dev_name = dev.file_name().unwrap().to_str().unwrap().to_owned();
    fs::write(r("dev").join(&dev_name), "").unwrap();
    rustix::mount::mount_bind(&dev, r("dev").join(&dev_name)).unwrap();

    // A handle on the old root that survives exec, so the new init can look at what is left.
    let old_root = rustix::fs::open(
        &initramfs,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();

    let initramfs_dev = fs::metadata(&initramfs).unwrap().dev();
    std::os::unix::fs::chroot(&initramfs).unwrap();
    env::set_current_dir("/").unwrap();
    // Only ever switch from the fake initramfs, never from the host's root.
    assert_eq!(fs::metadata("/").unwrap().dev(), initramfs_dev);
    assert!(Path::new("/init").exists());

    // The real layout, with the paths /init uses.
    let lower_dev = Path::new("/dev").join(&dev_name);
    mount_lower(&lower_dev, "squashfs", Path::new("/run/rootfs-base")).unwrap();
    assemble_overlay(
        Path::new("/run/rootfs-base"),
        Path::new("/run/overlay-root"),
        Path::new("/sysroot"),
    )
    .unwrap();

    switch_root(Path::new("/sysroot"), &["/dev", "/proc", "/run"]).unwrap();

    let err = Command::new("/sbin/init")
        .env("OLDROOT", format!("/proc/self/fd/{}", old_root.as_raw_fd()))
        .exec();
    panic!("exec /sbin/init failed: {err}");
}

#[test]
fn switch_root_refuses_a_root_that_is_not_the_initramfs() {
    const NAME: &str = "switch_root_refuses_a_root_that_is_not_the_initramfs";
    if is_child(NAME) {
        let (dev, dir) = child_env();
        // A read-only squashfs as /: even a broken check could not delete anything.
        let ro = dir.join("ro");
        mount_lower(&dev, "squashfs", &ro).unwrap();
        rustix::mount::mount("tmpfs", ro.join("run"), "tmpfs", MountFlags::empty(), None).unwrap();
        std::os::unix::fs::chroot(&ro).unwrap();
        env::set_current_dir("/").unwrap();
        let err = switch_root(Path::new("/run"), &[]).unwrap_err();
        assert!(matches!(err, SysrootError::NotInitramfs { .. }), "{err}");
        assert!(Path::new("/etc/lower.txt").exists());
        println!("T2-REFUSED {err}");
        return;
    }
    let fx = Fixture::new();
    let out = fx.in_namespace(NAME);
    assert!(
        out.contains("T2-REFUSED refusing to switch root: / is not the initramfs (filesystem magic 0x73717368"),
        "{out}"
    );
}
