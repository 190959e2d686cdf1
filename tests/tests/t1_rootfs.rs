//! T1 on the root filesystem squashfs `scripts/rootfs.sh` builds: what it holds (every file of
//! `rootfs/tree/` and the board's rendered files, byte for byte; our aarch64 `atomix`; the
//! units enabled and disabled; owners other than root; no per-device secrets), that it fits the
//! slot, and that a second build from nothing gives the same bytes.
//!
//! Needs root (mkosi runs dpkg for the fresh build) and the artifacts of `scripts/test.sh`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_board::Board;
use atomix_board::rootfs::{self, Contents};
use atomix_systests::{Artifacts, require_root, run_tool};

/// One entry of `unsquashfs -lln`: type and mode string, uid/gid, link target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    mode: String,
    owner: String,
    link: Option<String>,
}

/// Every path in the squashfs (without the leading `squashfs-root/`).
fn listing(squashfs: &Path) -> BTreeMap<String, Entry> {
    let text = run_tool(
        Command::new("unsquashfs")
            .args(["-lln", "-d", ""])
            .arg(squashfs),
    );
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        // drwxr-xr-x 0/0   60 2026-01-01 00:00 /etc
        let mut fields = line.split_whitespace();
        let (Some(mode), Some(owner)) = (fields.next(), fields.next()) else {
            continue;
        };
        let rest: Vec<&str> = fields.skip(3).collect();
        let Some(path) = rest.first() else { continue };
        if !path.starts_with('/') {
            continue;
        }
        let link = (rest.get(1) == Some(&"->")).then(|| rest[2..].join(" "));
        entries.insert(
            path.trim_start_matches('/').to_owned(),
            Entry {
                mode: mode.to_owned(),
                owner: owner.to_owned(),
                link,
            },
        );
    }
    entries
}

/// The squashfs's files under `paths`, extracted into `dir`.
fn extract(squashfs: &Path, dir: &Path, paths: &[&str]) {
    run_tool(
        Command::new("unsquashfs")
            .args(["-q", "-n", "-f", "-d"])
            .arg(dir)
            .arg(squashfs)
            .args(paths),
    );
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_symlink() || path.is_file() {
                out.push(path);
            } else if path.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The uid of `name` in the image's /etc/passwd (or gid in /etc/group).
fn id_of(extracted: &Path, file: &str, name: &str) -> String {
    fs::read_to_string(extracted.join(file))
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f[2].to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {file}"))
}

#[test]
fn the_root_filesystem_holds_our_files_units_and_binaries_with_their_owners() {
    let artifacts = Artifacts::locate().unwrap();
    let built = artifacts.real_rootfs("qemu-virt").unwrap();
    let board = Board::builtin("qemu-virt").unwrap();
    let list = listing(&built.squashfs);
    // Every file of rootfs/tree, as committed.
    let tree = artifacts.root.join("rootfs/tree");
    let ours = files_under(&tree);
    assert!(ours.len() > 20, "{ours:?}");
    let mut wanted: Vec<String> = ours
        .iter()
        .map(|f| f.strip_prefix(&tree).unwrap().display().to_string())
        .chain(rootfs::files(&board).into_iter().map(|f| f.path))
        .collect();
    wanted.extend(
        [
            "usr/bin/atomix",
            "usr/bin/atomix-provision",
            "etc/passwd",
            "etc/group",
            "etc/subuid",
            "etc/machine-id",
        ]
        .map(String::from),
    );
    let scratch = artifacts.scratch_dir("t1-rootfs-").unwrap();
    let x = scratch.path();
    extract(
        &built.squashfs,
        x,
        &wanted.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for file in &ours {
        let rel = file.strip_prefix(&tree).unwrap();
        let inside = x.join(rel);
        if file.is_symlink() {
            assert_eq!(
                fs::read_link(&inside).unwrap(),
                fs::read_link(file).unwrap(),
                "{rel:?}"
            );
        } else {
            let built = fs::read(&inside).unwrap_or_else(|e| panic!("{rel:?}: {e}"));
            assert_eq!(built, fs::read(file).unwrap(), "{rel:?}");
        }
    }
    // The board's files, as its profile renders them.
    for file in rootfs::files(&board) {
        let inside = x.join(&file.path);
        match file.contents {
            Contents::Text { text, mode } => {
                assert_eq!(fs::read_to_string(&inside).unwrap(), text, "{}", file.path);
                let entry = &list[&file.path];
                assert_eq!(&entry.mode[1..], unix_mode(mode), "{}", file.path);
            }
            Contents::Symlink(target) => {
                assert_eq!(
                    fs::read_link(&inside).unwrap(),
                    Path::new(&target),
                    "{}",
                    file.path
                );
            }
        }
    }
    // Our aarch64 binaries, the ones the rootfs build made: atomix for glibc (it links the f2fs
    // archives), atomix-provision static musl.
    for (bin, target) in [
        ("atomix", "aarch64-unknown-linux-gnu"),
        ("atomix-provision", "aarch64-unknown-linux-musl"),
    ] {
        let built = fs::read(x.join("usr/bin").join(bin)).unwrap();
        assert_eq!(&built[..4], b"\x7fELF", "{bin}");
        assert_eq!(
            u16::from_le_bytes([built[18], built[19]]),
            183,
            "{bin}: EM_AARCH64"
        );
        let device_build = artifacts.target_dir.join(target).join("device").join(bin);
        assert_eq!(
            built,
            fs::read(&device_build).unwrap(),
            "{}",
            device_build.display()
        );
    }

    // What runs at boot, and what does not.
    let wants = |target: &str, unit: &str| {
        list.contains_key(&format!("etc/systemd/system/{target}.wants/{unit}"))
    };
    for (target, unit) in [
        ("local-fs.target", "data.mount"),
        ("multi-user.target", "ssh.service"),
        ("multi-user.target", "dnsmasq.service"),
        ("multi-user.target", "chrony.service"),
        ("multi-user.target", "systemd-networkd.service"),
        ("multi-user.target", "atomix-bootstrap-wan.service"),
        ("multi-user.target", "atomix-config-recover.service"),
        ("multi-user.target", "atomix-first-boot.service"),
        ("multi-user.target", "atomix-activate.service"),
        ("multi-user.target", "atomix-provision-api.service"),
        ("sysinit.target", "nftables.service"),
        ("sysinit.target", "systemd-resolved.service"),
        (
            "network-online.target",
            "systemd-networkd-wait-online.service",
        ),
    ] {
        assert!(wants(target, unit), "{unit} is not wanted by {target}");
    }
    for (target, unit) in [
        ("sockets.target", "ssh.socket"),
        ("multi-user.target", "chronyd-restricted.service"),
        ("multi-user.target", "chrony-wait.service"),
        ("sockets.target", "podman.socket"),
        ("default.target", "podman-restart.service"),
        ("timers.target", "podman-auto-update.timer"),
        ("getty.target", "getty@tty1.service"),
    ] {
        assert!(!wants(target, unit), "{unit} is enabled in {target}");
    }

    // Owners survive packing: files of system users and groups are theirs.
    let chrony = id_of(x, "etc/passwd", "_chrony");
    let network = id_of(x, "etc/passwd", "systemd-network");
    let shadow = id_of(x, "etc/group", "shadow");
    assert_eq!(
        list["var/lib/chrony"].owner.split('/').next().unwrap(),
        chrony
    );
    assert_eq!(
        list["var/lib/systemd/network"]
            .owner
            .split('/')
            .next()
            .unwrap(),
        network
    );
    assert_eq!(list["etc/shadow"].owner.split('/').nth(1).unwrap(), shadow);
    assert_eq!(id_of(x, "etc/passwd", "appsvc"), "1000");
    assert!(
        fs::read_to_string(x.join("etc/subuid"))
            .unwrap()
            .contains("appsvc:100000:65536")
    );

    // Nothing a device must make for itself: an empty machine-id, no SSH host keys.
    assert_eq!(fs::read(x.join("etc/machine-id")).unwrap(), b"");
    assert!(
        !list.keys().any(|p| p.starts_with("etc/ssh/ssh_host_")),
        "SSH host keys in the image"
    );
    // The kernel's modules with their index, udev's hardware database, no kernel.
    let kver = built.manifest["kernel_modules"].as_str().unwrap();
    assert!(list.contains_key(&format!("usr/lib/modules/{kver}/modules.dep.bin")));
    assert!(list.contains_key("usr/lib/udev/hwdb.bin"));
    assert!(
        !list.keys().any(|p| p.starts_with("boot/vmlinuz")),
        "a kernel in the rootfs"
    );
    // No locales or docs.
    assert!(
        !list
            .keys()
            .any(|p| p.starts_with("usr/share/locale/") && p.ends_with(".mo"))
    );
    assert!(!list.keys().any(|p| p.starts_with("usr/share/man/")));

    // It fits the 1 GiB slot with room to grow: less than half of it.
    let bytes = fs::metadata(&built.squashfs).unwrap().len();
    assert_eq!(built.manifest["bytes"].as_u64(), Some(bytes));
    assert!(bytes < (512 << 20), "{bytes} bytes");
}

/// The other board's root filesystem: the same packages (mkosi's cache is shared), its own
/// files as its profile renders them, none of qemu-virt's.
#[test]
fn the_rock64_root_filesystem_has_its_board_files() {
    require_root("mkosi installs packages with their owners");
    let artifacts = Artifacts::locate().unwrap();
    run_tool(
        Command::new(artifacts.root.join("scripts/rootfs.sh"))
            .args(["--board", "rock64", "--quiet"]),
    );
    let built = artifacts.real_rootfs("rock64").unwrap();
    let qemu_virt = artifacts.real_rootfs("qemu-virt").unwrap();
    assert_eq!(built.manifest["base_key"], qemu_virt.manifest["base_key"]);
    assert_eq!(built.manifest["packages"], qemu_virt.manifest["packages"]);
    let board = Board::builtin("rock64").unwrap();
    let scratch = artifacts.scratch_dir("t1-rootfs-rock64-").unwrap();
    let files = rootfs::files(&board);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    extract(&built.squashfs, scratch.path(), &paths);
    for file in &files {
        if let Contents::Text { text, .. } = &file.contents {
            let inside = fs::read_to_string(scratch.path().join(&file.path)).unwrap();
            assert_eq!(&inside, text, "{}", file.path);
        }
    }
    let list = listing(&built.squashfs);
    assert!(list.contains_key("etc/fw_env.config"));
    assert!(
        !list.keys().any(|p| p.contains("autologin")),
        "autologin on rock64"
    );
    assert!(!list.contains_key("etc/systemd/network/99-default.link"));
}

/// `rwxr-xr-x` for 0o755.
fn unix_mode(mode: u32) -> String {
    (0..9)
        .map(|bit| {
            if mode & (0o400 >> bit) == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][bit % 3]
            }
        })
        .collect()
}

/// A second build from nothing (mkosi's image cache not used, only downloaded packages) gives
/// the same squashfs, byte for byte.
#[test]
fn a_fresh_build_of_the_same_inputs_gives_the_same_squashfs() {
    require_root("mkosi installs packages with their owners");
    let artifacts = Artifacts::locate().unwrap();
    let built = artifacts.real_rootfs("qemu-virt").unwrap();
    let scratch = artifacts.scratch_dir("t1-rootfs-fresh-").unwrap();
    let out = scratch.path().join("rootfs.squashfs");
    let manifest = run_tool(
        Command::new(artifacts.root.join("scripts/rootfs.sh"))
            .args([
                "--board",
                "qemu-virt",
                "--fresh",
                "--quiet",
                "--json",
                "--out",
            ])
            .arg(&out),
    );
    let fresh: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        fresh["key"], built.manifest["key"],
        "the inputs changed between the two builds (a package update in the archive?): \
         fresh {} / cached {}",
        fresh["packages"], built.manifest["packages"]
    );
    assert_eq!(fresh["build"]["package_set_cached"], false);
    assert_eq!(
        fresh["sha256"], built.manifest["sha256"],
        "not reproducible"
    );
    assert_eq!(fs::read(&out).unwrap(), fs::read(&built.squashfs).unwrap());
}
