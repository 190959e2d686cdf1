//! The target's description on fake `/proc` + `/sys` trees, and the safety rules on it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::*;
use crate::FlashError;
use crate::host::Host;

/// A fake `/proc` + `/sys` + `/dev/disk/by-id` tree, laid out as the kernel does:
/// `sys/devices/virtual/block/<disk>[/<part>]` with `dev`, `size`, `partition`, and the
/// `class/block` and `dev/block` symlinks into it.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let fake = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in [
            "proc/self",
            "sys/class/block",
            "sys/dev/block",
            "dev/disk/by-id",
        ] {
            fs::create_dir_all(fake.root().join(d)).unwrap();
        }
        fake.mountinfo("22 27 0:21 / /proc rw - proc proc rw\n");
        fake
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn host(&self) -> Host {
        Host::under(self.root())
    }

    fn sys(&self) -> PathBuf {
        self.root().join("sys")
    }

    /// A block device at `sys/devices/virtual/block/<rel>`; `rel` is `disk` or
    /// `disk/part`.
    fn device(&self, rel: &str, dev: &str, mib: u64) {
        let name = rel.rsplit('/').next().unwrap();
        let dir = self.sys().join("devices/virtual/block").join(rel);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
        fs::write(dir.join("size"), format!("{}\n", mib * 2048)).unwrap();
        if rel.contains('/') {
            fs::write(dir.join("partition"), "1\n").unwrap();
        }
        let target = format!("../../devices/virtual/block/{rel}");
        symlink(&target, self.sys().join("class/block").join(name)).unwrap();
        symlink(&target, self.sys().join("dev/block").join(dev)).unwrap();
    }

    fn attr(&self, name: &str, rel: &str, value: &str) {
        let path = self.sys().join("class/block").join(name).join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{value}\n")).unwrap();
    }

    /// `holder` (dm/md) is built on `slave`.
    fn stack(&self, slave: &str, holder: &str) {
        let class = self.sys().join("class/block");
        fs::create_dir_all(class.join(slave).join("holders")).unwrap();
        fs::create_dir_all(class.join(holder).join("slaves")).unwrap();
        symlink(
            format!("../../{holder}"),
            class.join(slave).join("holders").join(holder),
        )
        .unwrap();
        symlink(
            format!("../../{slave}"),
            class.join(holder).join("slaves").join(slave),
        )
        .unwrap();
    }

    fn mountinfo(&self, text: &str) {
        fs::write(self.root().join("proc/self/mountinfo"), text).unwrap();
    }

    fn swaps(&self, text: &str) {
        fs::write(self.root().join("proc/swaps"), text).unwrap();
    }

    fn by_id(&self, id: &str, name: &str) {
        symlink(
            format!("../../{name}"),
            self.root().join("dev/disk/by-id").join(id),
        )
        .unwrap();
    }

    fn describe(&self, dev: &str) -> BlockInfo {
        BlockInfo::describe(&self.host(), dev.parse().unwrap()).unwrap()
    }

    /// A USB stick `sdb` (8:16, 16 GiB) with two partitions and by-id names, and the
    /// system disk `nvme0n1` (259:0) with two.
    fn machine() -> Self {
        let f = Self::new();
        f.device("sdb", "8:16", 16384);
        f.device("sdb/sdb1", "8:17", 128);
        f.device("sdb/sdb2", "8:18", 1024);
        f.attr("sdb", "device/vendor", "Generic");
        f.attr("sdb", "device/model", "STORAGE DEVICE");
        f.attr("sdb", "removable", "1");
        f.by_id("usb-Generic_STORAGE_DEVICE_000272-0:0", "sdb");
        f.by_id("usb-Generic_STORAGE_DEVICE_000272-0:0-part1", "sdb1");
        f.device("nvme0n1", "259:0", 500_000);
        f.device("nvme0n1/nvme0n1p1", "259:1", 512);
        f.device("nvme0n1/nvme0n1p2", "259:2", 400_000);
        f
    }
}

const ROOT_ON_P2: &str = "\
22 27 0:21 / /proc rw - proc proc rw
27 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw
28 27 259:1 / /boot/efi rw - vfat /dev/nvme0n1p1 rw
";

fn image(bytes: u64) -> Image {
    Image {
        path: "disk.img".into(),
        bytes,
        identity: Identity::Inode { dev: 1, ino: 2 },
    }
}

fn block_target(info: BlockInfo, bytes: u64) -> Target {
    Target {
        path: format!("/dev/{}", info.name).into(),
        resolved: format!("/dev/{}", info.name).into(),
        identity: Some(Identity::Device(info.dev)),
        kind: TargetKind::Block(info),
        bytes,
    }
}

#[test]
fn an_unused_stick_is_described_and_accepted() {
    let f = Fake::machine();
    f.mountinfo(ROOT_ON_P2);
    let info = f.describe("8:16");
    assert_eq!(info.name, "sdb");
    assert_eq!(info.disk, "sdb");
    assert_eq!(info.model.as_deref(), Some("Generic STORAGE DEVICE"));
    assert_eq!(info.by_id, ["usb-Generic_STORAGE_DEVICE_000272-0:0"]);
    assert!(info.removable && !info.read_only);
    let parts: Vec<(&str, u64)> = info
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.bytes >> 20))
        .collect();
    assert_eq!(parts, [("sdb1", 128), ("sdb2", 1024)]);
    assert!(info.in_use.is_empty(), "{:?}", info.in_use);
    assert_eq!(info.holds_root, None);
    assert_eq!(f.host().sectors_bytes("sdb"), 16 << 30);
    let target = block_target(info, 16 << 30);
    assert_eq!(check(&image(1169 << 20), &target, false), Ok(()));
}

#[test]
fn a_mounted_partition_refuses_the_disk_and_the_partition() {
    let f = Fake::machine();
    f.mountinfo(&format!(
        "{ROOT_ON_P2}40 27 8:18 / /media/usb\\040stick ro - squashfs /dev/sdb2 ro\n"
    ));
    let info = f.describe("8:16");
    assert_eq!(
        info.in_use,
        [InUse::Mounted {
            device: "sdb2".into(),
            mount_point: "/media/usb stick".into()
        }]
    );
    let refusal = check(&image(1 << 20), &block_target(info, 16 << 30), false).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "target /dev/sdb is in use: sdb2 is mounted on /media/usb stick"
    );
    // The partition itself, and the whole disk mounted without a table.
    let part = f.describe("8:18");
    assert_eq!((part.name.as_str(), part.disk.as_str()), ("sdb2", "sdb"));
    assert!(part.partitions.is_empty());
    assert_eq!(part.in_use.len(), 1);
    f.mountinfo(&format!(
        "{ROOT_ON_P2}40 27 8:16 / /mnt rw - vfat /dev/sdb rw\n"
    ));
    assert_eq!(f.describe("8:16").in_use.len(), 1);
    assert!(f.describe("8:17").in_use.is_empty(), "sdb1 is not mounted");
}

#[test]
fn mounts_with_anonymous_devices_are_found_by_source() {
    let f = Fake::machine();
    // btrfs reports an anonymous 0:N device; the source names the partition.
    f.mountinfo(&format!(
        "{ROOT_ON_P2}41 27 0:45 /@data /data rw - btrfs /dev/sdb1 rw\n"
    ));
    let info = f.describe("8:16");
    assert_eq!(
        info.in_use,
        [InUse::Mounted {
            device: "/dev/sdb1".into(),
            mount_point: "/data".into()
        }]
    );
}

#[test]
fn swaps_and_device_mapper_holders_count_as_in_use() {
    let f = Fake::machine();
    f.swaps("Filename Type Size Used Priority\n/dev/sdb1 partition 131068 0 -2\n");
    f.device("dm-0", "253:0", 1000);
    f.attr("dm-0", "dm/name", "vault");
    f.stack("sdb2", "dm-0");
    f.mountinfo(&format!(
        "{ROOT_ON_P2}42 27 253:0 / /vault rw - ext4 /dev/mapper/vault rw\n"
    ));
    let info = f.describe("8:16");
    assert_eq!(
        info.in_use,
        [
            InUse::Mounted {
                device: "dm-0".into(),
                mount_point: "/vault".into()
            },
            InUse::Swap {
                device: "/dev/sdb1".into()
            },
            InUse::Held {
                device: "sdb2".into(),
                holder: "dm-0".into()
            },
        ]
    );
    let text = check(&image(1), &block_target(info, 16 << 30), false)
        .unwrap_err()
        .to_string();
    assert!(text.contains("sdb1 is an active swap area"), "{text}");
    assert!(text.contains("dm-0 is built on sdb2"), "{text}");
    // Held but not mounted (an LVM physical volume): still in use.
    f.mountinfo(ROOT_ON_P2);
    f.swaps("Filename Type Size Used Priority\n");
    assert_eq!(f.describe("8:16").in_use.len(), 1);
}

#[test]
fn the_disk_holding_root_is_refused() {
    let f = Fake::machine();
    f.mountinfo(ROOT_ON_P2);
    // The disk, and an unmounted partition of it.
    for dev in ["259:0", "259:1"] {
        let info = f.describe(dev);
        assert_eq!(info.holds_root.as_deref(), Some("nvme0n1p2"), "{dev}");
        let r = check(&image(1), &block_target(info, 1 << 40), false).unwrap_err();
        assert!(matches!(r, Refusal::RootDisk { .. }), "{r}");
    }
    assert_eq!(
        check(
            &image(1),
            &block_target(f.describe("259:0"), 1 << 40),
            false
        )
        .unwrap_err()
        .to_string(),
        "target /dev/nvme0n1 is on the disk holding / (mounted from nvme0n1p2)"
    );
    assert_eq!(f.describe("8:16").holds_root, None);
}

#[test]
fn root_through_device_mapper_and_btrfs_is_traced_to_its_disk() {
    // / on dm-1 (LUKS) on nvme0n1p2; btrfs shows an anonymous device and /dev/mapper/root.
    let f = Fake::machine();
    f.device("dm-1", "253:1", 400_000);
    f.attr("dm-1", "dm/name", "root");
    f.stack("nvme0n1p2", "dm-1");
    f.mountinfo("27 1 0:31 /@ / rw - btrfs /dev/mapper/root rw\n");
    let info = f.describe("259:0");
    assert_eq!(info.holds_root.as_deref(), Some("dm-1"));
    assert!(matches!(
        check(&image(1), &block_target(info, 1 << 40), false),
        Err(Refusal::RootDisk { .. })
    ));
    // By device number through the slaves (md/dm with a real dev), and the stick is free.
    f.mountinfo("27 1 253:1 / / rw - ext4 /dev/dm-1 rw\n");
    assert_eq!(f.describe("259:0").holds_root.as_deref(), Some("dm-1"));
    assert_eq!(f.describe("8:16").holds_root, None);
    // The last mount on / wins (an earlier one is covered).
    f.mountinfo(
        "20 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n27 20 8:17 / / rw - ext4 /dev/sdb1 rw\n",
    );
    assert_eq!(f.describe("8:16").holds_root.as_deref(), Some("sdb1"));
}

#[test]
fn root_not_on_a_block_device_protects_no_disk() {
    let f = Fake::machine();
    f.mountinfo("27 1 0:40 / / rw - overlay overlay rw,lowerdir=/l\n");
    assert_eq!(f.describe("259:0").holds_root, None);
    f.mountinfo("27 1 0:41 / / rw - tmpfs rootfs rw\n");
    assert_eq!(f.describe("259:0").holds_root, None);
}

#[test]
fn loop_devices_show_their_backing_file_and_read_only_is_refused() {
    let f = Fake::new();
    f.device("loop3", "7:3", 100);
    f.attr("loop3", "loop/backing_file", "/tmp/disk.img");
    f.attr("loop3", "ro", "1");
    let info = f.describe("7:3");
    assert_eq!(
        info.model.as_deref(),
        Some("loop device backed by /tmp/disk.img")
    );
    assert!(info.by_id.is_empty());
    assert_eq!(
        check(&image(1), &block_target(info, 100 << 20), false),
        Err(Refusal::ReadOnly {
            target: "/dev/loop3".into()
        })
    );
}

#[test]
fn unknown_devices_and_bad_mount_tables_are_errors() {
    let f = Fake::machine();
    let err = BlockInfo::describe(&f.host(), "8:99".parse().unwrap()).unwrap_err();
    assert!(matches!(err, FlashError::NoSysfs { .. }), "{err}");
    f.mountinfo("this is not mountinfo\n");
    let err = BlockInfo::describe(&f.host(), "8:16".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("mountinfo"), "{err}");
}

#[test]
fn too_small_names_both_sizes() {
    let f = Fake::new();
    f.device("loop3", "7:3", 100);
    let target = block_target(f.describe("7:3"), 100 << 20);
    let err = check(&image(1169 << 20), &target, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "target /dev/loop3 is 100 MiB, smaller than the image (1169 MiB)"
    );
    // Sizes that round alike are given in bytes.
    let err = check(&image((100 << 20) + 1), &target, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "target /dev/loop3 is 104857600 bytes, smaller than the image (104857601 bytes)"
    );
    assert_eq!(check(&image(100 << 20), &target, false), Ok(()));
}

#[test]
fn files_need_to_file_and_to_file_needs_a_file() {
    let file = |kind| Target {
        path: "out.img".into(),
        resolved: "/w/out.img".into(),
        kind,
        bytes: 0,
        identity: Some(Identity::Inode { dev: 1, ino: 9 }),
    };
    assert_eq!(
        check(&image(1), &file(TargetKind::File), false)
            .unwrap_err()
            .to_string(),
        "target out.img is a regular file, not a block device"
    );
    assert_eq!(check(&image(1), &file(TargetKind::File), true), Ok(()));
    assert_eq!(check(&image(1), &file(TargetKind::Missing), true), Ok(()));
    let dir = file(TargetKind::Other {
        what: "a directory",
    });
    assert!(matches!(
        check(&image(1), &dir, true),
        Err(Refusal::NotAFile { .. })
    ));
    assert!(matches!(
        check(&image(1), &dir, false),
        Err(Refusal::NotBlockDevice { .. })
    ));
    // A block device with to_file is refused, not written.
    let f = Fake::new();
    f.device("loop3", "7:3", 100);
    let dev = block_target(f.describe("7:3"), 100 << 20);
    assert_eq!(
        check(&image(1), &dev, true).unwrap_err().to_string(),
        "target /dev/loop3 is a block device, not a regular file, and writing to a file was \
         asked for"
    );
    // The image itself, as a file or as a device.
    let mut same = file(TargetKind::File);
    same.identity = Some(image(1).identity);
    assert!(matches!(
        check(&image(1), &same, true),
        Err(Refusal::SameAsImage { .. })
    ));
    let mut img = image(1);
    img.identity = Identity::Device("7:3".parse().unwrap());
    assert!(matches!(
        check(&img, &dev, false),
        Err(Refusal::SameAsImage { .. })
    ));
}

#[test]
fn inspecting_files_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::under(dir.path());
    let file = dir.path().join("out.img");
    fs::write(&file, b"12345").unwrap();
    let t = inspect_target(&file, &host).unwrap();
    assert_eq!((t.kind.clone(), t.bytes), (TargetKind::File, 5));
    let missing = inspect_target(&dir.path().join("nope"), &host).unwrap();
    assert_eq!(missing.kind, TargetKind::Missing);
    let d = inspect_target(dir.path(), &host).unwrap();
    assert_eq!(
        d.kind,
        TargetKind::Other {
            what: "a directory"
        }
    );
    let img = Image::open(&file).unwrap();
    assert_eq!(img.bytes, 5);
    assert!(matches!(
        Image::open(dir.path()),
        Err(FlashError::ImageKind { .. })
    ));
    assert!(matches!(
        Image::open(&dir.path().join("nope")),
        Err(FlashError::Image { .. })
    ));
}
