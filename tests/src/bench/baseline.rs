//! The anchor: the busybox initramfs a hand-written setup would use. Its `/init` script
//! ([`baseline_init_script`]), the busybox applets linked for it ([`BASELINE_APPLETS`]), and
//! the zstd-compressed cpio archive ([`baseline_archive`]), compressed as ours is.
//!
//! Must not: read files or boot (that is `run.rs`, which hands it the bytes).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use atomix_image::{cpio, initramfs};

use super::{BASELINE_HWM_MARK, BenchError};

/// Busybox applets the baseline `/init` runs (linked in its `/bin`).
pub const BASELINE_APPLETS: &[&str] = &[
    "sh",
    "mount",
    "mkdir",
    "insmod",
    "sleep",
    "poweroff",
    "switch_root",
];

/// The baseline `/init`: a busybox `sh` script doing our stages with busybox tools, as a
/// hand-written initramfs does. `modules` are the paths inside the archive, in load order.
/// The slot is found by scanning `/sys/class/block/*/uevent` for `PARTNAME=<partlabel>` every
/// 10 ms (60 s at most, then it powers off, which the bench reports as a failed boot).
pub fn baseline_init_script(modules: &[String], partlabel: &str) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # atomix-bench baseline /init: the same steps as the atomix /init, with busybox tools.\n\
         export PATH=/bin\n\
         mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev\n\
         exec </dev/console >/dev/console 2>&1\n\
         mount -t proc -o nosuid,nodev,noexec proc /proc\n\
         mount -t sysfs -o nosuid,nodev,noexec sysfs /sys\n\
         mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run\n",
    );
    for module in modules {
        let _ = writeln!(s, "insmod {module}");
    }
    let _ = write!(
        s,
        r#"dev=
tries=0
while :; do
	for uevent in /sys/class/block/*/uevent; do
		[ -r "$uevent" ] || continue
		name= part=
		while IFS='=' read -r key value; do
			case $key in
			DEVNAME) name=$value ;;
			PARTNAME) part=$value ;;
			esac
		done <"$uevent"
		if [ "$part" = "{partlabel}" ] && [ -b "/dev/$name" ]; then
			dev=/dev/$name
			break 2
		fi
	done
	tries=$((tries + 1))
	if [ "$tries" -ge 6000 ]; then
		echo "baseline-init: no PARTLABEL={partlabel} after 60 s"
		poweroff -f
	fi
	sleep 0.01
done
mkdir -p /run/rootfs-base /run/overlay-root
mount -t squashfs -o ro "$dev" /run/rootfs-base
mount -t tmpfs -o mode=0755 tmpfs /run/overlay-root
mkdir -p /run/overlay-root/upper /run/overlay-root/work
mount -t overlay -o lowerdir=/run/rootfs-base,upperdir=/run/overlay-root/upper,workdir=/run/overlay-root/work overlay /sysroot
while read -r key value _; do
	[ "$key" = VmHWM: ] && echo "{BASELINE_HWM_MARK}$value kB"
done </proc/self/status
for m in dev proc sys run; do
	mount --move /$m /sysroot/$m
done
exec switch_root /sysroot /sbin/init
"#
    );
    s
}

/// One entry of the baseline archive.
enum Node {
    Dir,
    File(u32, Vec<u8>),
    Symlink(&'static str),
    Console,
}

/// The baseline initramfs, zstd-compressed: `/init` = `script`, `/bin/busybox` with
/// [`BASELINE_APPLETS`], `/dev/console`, the mount points, and `modules` as
/// `(path inside, contents)`.
///
/// # Errors
/// [`BenchError::Cpio`] or [`BenchError::Compress`].
pub fn baseline_archive(
    script: &str,
    busybox: &[u8],
    modules: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, BenchError> {
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    let mut insert = |path: &str, node: Node| {
        for (slash, _) in path.match_indices('/') {
            tree.entry(path[..slash].to_owned()).or_insert(Node::Dir);
        }
        tree.insert(path.to_owned(), node);
    };
    for dir in ["dev", "proc", "sys", "run", "sysroot", "bin"] {
        insert(dir, Node::Dir);
    }
    insert("dev/console", Node::Console);
    insert("init", Node::File(0o755, script.as_bytes().to_vec()));
    insert("bin/busybox", Node::File(0o755, busybox.to_vec()));
    for applet in BASELINE_APPLETS {
        insert(&format!("bin/{applet}"), Node::Symlink("busybox"));
    }
    for (path, data) in modules {
        insert(
            path.trim_start_matches('/'),
            Node::File(0o644, data.clone()),
        );
    }
    let mut w = cpio::Writer::new(Vec::new(), 0).map_err(BenchError::Cpio)?;
    for (path, node) in &tree {
        match node {
            Node::Dir => w.dir(path, 0o755),
            Node::File(perm, data) => w.file(path, *perm, data),
            Node::Symlink(target) => w.symlink(path, target),
            Node::Console => w.char_device(path, 0o600, 5, 1),
        }
        .map_err(BenchError::Cpio)?;
    }
    let (raw, _) = w.finish().map_err(BenchError::Cpio)?;
    zstd_like_ours(&raw).map_err(BenchError::Compress)
}

/// zstd as `atomix_image::initramfs` compresses: [`initramfs::ZSTD_LEVEL`], checksum and
/// content size in the frame.
fn zstd_like_ours(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(initramfs::ZSTD_LEVEL)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    c.compress(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_script_loads_in_order_and_switches_root() {
        let script = baseline_init_script(
            &[
                "/lib/modules/v/a.ko".to_owned(),
                "/lib/modules/v/b.ko".to_owned(),
            ],
            "rootfs-a",
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        let a = script.find("insmod /lib/modules/v/a.ko\n").unwrap();
        let b = script.find("insmod /lib/modules/v/b.ko\n").unwrap();
        assert!(a < b);
        assert!(script.contains(r#"[ "$part" = "rootfs-a" ]"#));
        assert!(script.contains("sleep 0.01"));
        assert!(script.contains(BASELINE_HWM_MARK));
        assert!(script.ends_with("exec switch_root /sysroot /sbin/init\n"));
        // Every command the script runs is a linked applet (or an ash builtin).
        for command in [
            "mount",
            "mkdir",
            "insmod",
            "sleep",
            "poweroff",
            "switch_root",
        ] {
            assert!(script.contains(&format!("{command} ")), "{command}");
            assert!(BASELINE_APPLETS.contains(&command), "{command}");
        }
        assert!(!baseline_init_script(&[], "rootfs-a").contains("insmod"));
    }

    #[test]
    fn baseline_archive_layout() {
        let script = baseline_init_script(&["/lib/modules/v/kernel/a.ko".to_owned()], "x");
        let modules = vec![("/lib/modules/v/kernel/a.ko".to_owned(), b"ko".to_vec())];
        let packed = baseline_archive(&script, b"\x7fELF bb", &modules).unwrap();
        let raw = zstd::decode_all(packed.as_slice()).unwrap();
        let entries = cpio::read_archive(&raw).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        for (i, name) in names.iter().enumerate() {
            if let Some((parent, _)) = name.rsplit_once('/') {
                assert!(names[..i].contains(&parent), "{name} before {parent}");
            }
        }
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("init").data, script.as_bytes());
        assert_eq!(get("init").perm(), 0o755);
        assert_eq!(get("bin/busybox").data, b"\x7fELF bb");
        assert_eq!(get("bin/sh").symlink_target(), Some("busybox"));
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("lib/modules/v/kernel/a.ko").data, b"ko");
        assert!(get("sysroot").is_dir());
    }
}
