//! The image and the target: what they are ([`Image::open`], [`inspect_target`]) and whether the
//! target may be written ([`check`], pure: every refusal is decided from the facts gathered,
//! which tests build by hand or from a fake `/proc` + `/sys` tree through [`BlockInfo::describe`]).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use atomix_blockdev::size::{Style, human};
use serde::Serialize;

use crate::FlashError;
use crate::host::{DevNum, Host, Partition, parse_mountinfo, parse_swaps};

/// What a file is, for comparing the image with the target (the same file must never be both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A file in a file system: its device and inode.
    Inode {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
    /// A block device: its device number.
    Device(DevNum),
}

fn identity(meta: &fs::Metadata) -> Identity {
    if meta.file_type().is_block_device() {
        Identity::Device(DevNum::from_raw(meta.rdev()))
    } else {
        Identity::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The image to write: a regular file (or a block device, to copy one disk to another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// As given.
    pub path: PathBuf,
    /// Size in bytes: everything is written, holes of a sparse file as zeros.
    pub bytes: u64,
    /// What file it is.
    #[serde(skip)]
    pub identity: Identity,
}

impl Image {
    /// Looks at the image (nothing is read yet).
    ///
    /// # Errors
    /// [`FlashError::Image`] when it cannot be opened or sized (`NotFound` when it does not
    /// exist), [`FlashError::ImageKind`] when it is neither a regular file nor a block device.
    pub fn open(path: &Path) -> Result<Self, FlashError> {
        let err = |source| FlashError::Image {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(err)?;
        let kind = meta.file_type();
        let bytes = if kind.is_file() {
            meta.len()
        } else if kind.is_block_device() {
            device_bytes(path).map_err(err)?
        } else {
            return Err(FlashError::ImageKind {
                path: path.to_owned(),
                what: kind_name(&meta),
            });
        };
        Ok(Self {
            path: path.to_owned(),
            bytes,
            identity: identity(&meta),
        })
    }
}

/// The size of a block device: the end offset of a seek to its end (what `BLKGETSIZE64` says,
/// without an ioctl).
fn device_bytes(path: &Path) -> io::Result<u64> {
    File::open(path)?.seek(SeekFrom::End(0))
}

fn kind_name(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}

/// A flash target as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// As given.
    pub path: PathBuf,
    /// With symlinks resolved (`/dev/disk/by-id/...` -> `/dev/sdb`); as given when missing.
    pub resolved: PathBuf,
    /// What it is.
    pub kind: TargetKind,
    /// Size in bytes (a block device: sysfs `size`; 0 for a file that does not exist yet).
    pub bytes: u64,
    /// What file it is (`None` when missing).
    #[serde(skip)]
    pub identity: Option<Identity>,
}

/// What a target is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum TargetKind {
    /// A block device.
    Block(BlockInfo),
    /// A regular file.
    File,
    /// Nothing exists at the path.
    Missing,
    /// Something else: a directory, a character device, ...
    Other {
        /// What (`a directory`).
        what: &'static str,
    },
}

/// Everything known about a block-device target, and what uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    /// Kernel name (`sdb`, `loop3`, `mmcblk1`).
    pub name: String,
    /// Device number.
    pub dev: DevNum,
    /// The whole disk it belongs to (itself unless it is a partition).
    pub disk: String,
    /// Vendor and model, the card name, or a loop device's backing file.
    pub model: Option<String>,
    /// Serial number, when sysfs has one.
    pub serial: Option<String>,
    /// Its `/dev/disk/by-id` names.
    pub by_id: Vec<String>,
    /// The kernel says the medium is removable.
    pub removable: bool,
    /// The kernel says the device is read-only.
    pub read_only: bool,
    /// The partitions on it (none for a partition target).
    pub partitions: Vec<Partition>,
    /// Mounts, swaps and dm/md devices on it or its partitions.
    pub in_use: Vec<InUse>,
    /// When `/` is on this disk (or on a device built on it): the device `/` is mounted from.
    pub holds_root: Option<String>,
}

/// One thing that uses a target (or one of its partitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum InUse {
    /// A file system on `device` is mounted at `mount_point`.
    Mounted {
        /// The mounted device (the target, a partition, or a dm/md device on them).
        device: String,
        /// Where.
        mount_point: String,
    },
    /// `device` is an active swap area.
    Swap {
        /// The device.
        device: String,
    },
    /// `holder` (a dm or md device) is built on `device`.
    Held {
        /// The target or one of its partitions.
        device: String,
        /// The device built on it.
        holder: String,
    },
}

impl fmt::Display for InUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mounted {
                device,
                mount_point,
            } => write!(f, "{device} is mounted on {mount_point}"),
            Self::Swap { device } => write!(f, "{device} is an active swap area"),
            Self::Held { device, holder } => write!(f, "{holder} is built on {device}"),
        }
    }
}

impl BlockInfo {
    /// Gathers the facts about block device `dev` from `host`: its names, model, partitions,
    /// what is mounted from it or its partitions (by device number and, for file systems like
    /// btrfs that report an anonymous one, by mount source), swaps, dm/md holders, and whether
    /// `/` lives on its disk.
    ///
    /// # Errors
    /// [`FlashError::NoSysfs`] when sysfs has no such device, [`FlashError::Host`] when the
    /// mount table cannot be read or parsed.
    pub fn describe(host: &Host, dev: DevNum) -> Result<Self, FlashError> {
        let name = host.block_name(dev).ok_or(FlashError::NoSysfs { dev })?;
        let host_err = |path: &Path, source| FlashError::Host {
            path: path.to_owned(),
            source,
        };
        let sys = host.sys.join("class/block").join(&name);
        let disk = host.whole_disk(&name).map_err(|e| host_err(&sys, e))?;
        let partitions = if disk == name {
            host.partitions(&name)
        } else {
            Vec::new()
        };

        // The target, its partitions and everything built on them.
        let mut own: Vec<String> = vec![name.clone()];
        own.extend(partitions.iter().map(|p| p.name.clone()));
        let family = host.above(&own);
        let devs: BTreeSet<DevNum> = family.iter().filter_map(|n| host.dev_of(n)).collect();
        let mut source_names: BTreeSet<String> = family.clone();
        source_names.extend(family.iter().filter_map(|n| host.dm_name(n)));
        let belongs = |source: &str| {
            source
                .strip_prefix("/dev/")
                .and_then(|s| s.rsplit('/').next())
                .is_some_and(|base| source_names.contains(base))
        };

        let text = fs::read_to_string(&host.mountinfo).map_err(|e| host_err(&host.mountinfo, e))?;
        let mounts = parse_mountinfo(&text)
            .map_err(|msg| host_err(&host.mountinfo, io::Error::other(msg)))?;
        let mut in_use = Vec::new();
        for m in &mounts {
            if devs.contains(&m.dev) || belongs(&m.source) {
                let device = host.block_name(m.dev).unwrap_or_else(|| m.source.clone());
                in_use.push(InUse::Mounted {
                    device,
                    mount_point: m.mount_point.clone(),
                });
            }
        }
        let swaps = fs::read_to_string(&host.swaps).unwrap_or_default();
        for file in parse_swaps(&swaps) {
            if belongs(&file) {
                in_use.push(InUse::Swap { device: file });
            }
        }
        for n in &own {
            for holder in host.holders(n) {
                in_use.push(InUse::Held {
                    device: n.clone(),
                    holder,
                });
            }
        }

        let holds_root = root_device(host, &mounts)
            .map(|root| -> io::Result<Option<String>> {
                let beneath = host.beneath(&root)?;
                let hit = beneath.contains(&disk) || family.iter().any(|n| beneath.contains(n));
                Ok(hit.then_some(root))
            })
            .transpose()
            .map_err(|e| host_err(&host.sys, e))?
            .flatten();

        Ok(Self {
            model: host.model(&disk),
            serial: host.serial(&disk),
            by_id: host.by_id(&name),
            removable: host.attr(&disk, "removable").as_deref() == Some("1"),
            read_only: host.attr(&name, "ro").as_deref() == Some("1"),
            name,
            dev,
            disk,
            partitions,
            in_use,
            holds_root,
        })
    }
}

/// The block device `/` is mounted from (the last mount on `/` wins, as in the kernel's view),
/// by device number or, when that is anonymous (btrfs), by the mount source; `None` when `/`
/// is not on a block device (tmpfs, overlay, NFS: there is then no disk to protect by this
/// rule, and the in-use rule still covers every mounted one).
fn root_device(host: &Host, mounts: &[crate::host::Mount]) -> Option<String> {
    let root = mounts.iter().rev().find(|m| m.mount_point == "/")?;
    if let Some(name) = host.block_name(root.dev) {
        return Some(name);
    }
    let base = root.source.strip_prefix("/dev/")?.rsplit('/').next()?;
    if host.has_block(base) {
        return Some(base.to_owned());
    }
    // `/dev/mapper/<name>`: the dm device whose dm/name it is.
    fs::read_dir(host.sys.join("class/block"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| host.dm_name(n).as_deref() == Some(base))
}

/// Looks at `path` as a flash target: what it is, its size and, for a block device, everything
/// [`BlockInfo::describe`] finds. Decides nothing: see [`check`].
///
/// # Errors
/// [`FlashError::Target`] when it cannot be examined or sized, and what
/// [`BlockInfo::describe`] returns.
pub fn inspect_target(path: &Path, host: &Host) -> Result<Target, FlashError> {
    let err = |source| FlashError::Target {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target {
                path: path.to_owned(),
                resolved: path.to_owned(),
                kind: TargetKind::Missing,
                bytes: 0,
                identity: None,
            });
        }
        Err(e) => return Err(err(e)),
    };
    let resolved = fs::canonicalize(path).map_err(err)?;
    let t = meta.file_type();
    let (kind, bytes) = if t.is_block_device() {
        // The size from sysfs: inspecting needs no open (and no permission); `write` sizes the
        // device again through its open descriptor.
        let info = BlockInfo::describe(host, DevNum::from_raw(meta.rdev()))?;
        let bytes = host.sectors_bytes(&info.name);
        (TargetKind::Block(info), bytes)
    } else if t.is_file() {
        (TargetKind::File, meta.len())
    } else {
        let what = kind_name(&meta);
        (TargetKind::Other { what }, 0)
    };
    Ok(Target {
        path: path.to_owned(),
        resolved,
        kind,
        bytes,
        identity: Some(identity(&meta)),
    })
}

/// What a refused target was found to be, when it is not the kind of target asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A regular file (a block device was asked for).
    RegularFile,
    /// Nothing at the path (a block device was asked for).
    Missing,
    /// A block device (a file was asked for).
    BlockDevice,
    /// Something else: a directory, a character device, ... (from [`TargetKind::Other`]).
    Other(&'static str),
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RegularFile => "a regular file",
            Self::Missing => "missing",
            Self::BlockDevice => "a block device",
            Self::Other(what) => what,
        })
    }
}

/// Why a target is not written. The message names the target and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a block device, and writing to a file was not asked for.
    #[error("target {} is {what}, not a block device", target.display())]
    NotBlockDevice {
        /// The target.
        target: PathBuf,
        /// What it is instead.
        what: Found,
    },
    /// Writing to a file was asked for, but the target is a block device (or something else
    /// that is not a regular file).
    #[error("target {} is {what}, not a regular file, and writing to a file was asked for",
            target.display())]
    NotAFile {
        /// The target.
        target: PathBuf,
        /// What it is instead.
        what: Found,
    },
    /// The target is the image itself.
    #[error("target {} is the image {} itself", target.display(), image.display())]
    SameAsImage {
        /// The target.
        target: PathBuf,
        /// The image.
        image: PathBuf,
    },
    /// `/` lives on the target's disk.
    #[error("target {} is on the disk holding / (mounted from {root})", target.display())]
    RootDisk {
        /// The target.
        target: PathBuf,
        /// The device `/` is mounted from.
        root: String,
    },
    /// The target or one of its partitions is mounted, a swap, or under a dm/md device.
    #[error("target {} is in use: {}", target.display(), list(uses))]
    InUse {
        /// The target.
        target: PathBuf,
        /// What uses it.
        uses: Vec<InUse>,
    },
    /// The kernel opened the target exclusively and found it busy (in use by a mount or a
    /// holder the other checks did not see, or another exclusive opener).
    #[error("target {} is busy: the kernel refused an exclusive open", target.display())]
    Busy {
        /// The target.
        target: PathBuf,
    },
    /// The kernel marks the target read-only.
    #[error("target {} is read-only", target.display())]
    ReadOnly {
        /// The target.
        target: PathBuf,
    },
    /// The target cannot hold the image.
    #[error("target {} is {}, smaller than the image ({})", target.display(),
            sizes(*target_bytes, *image_bytes).0, sizes(*target_bytes, *image_bytes).1)]
    TooSmall {
        /// The target.
        target: PathBuf,
        /// Its size in bytes.
        target_bytes: u64,
        /// The image's size in bytes.
        image_bytes: u64,
    },
}

fn list(uses: &[InUse]) -> String {
    let parts: Vec<String> = uses.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Two sizes in human units, with exact byte counts when the rounded ones look the same.
fn sizes(a: u64, b: u64) -> (String, String) {
    // "100 MiB" and "100.0 MiB" look alike: compare at one decimal.
    let tenth = |n: u64| format!("{:.1}", n as f64 / f64::from(1u32 << 20));
    let (ha, hb) = (human(a, Style::Flash), human(b, Style::Flash));
    if tenth(a) == tenth(b) {
        (format!("{a} bytes"), format!("{b} bytes"))
    } else {
        (ha, hb)
    }
}

/// Whether `target` may receive `image`: the safety rules, in order (the first broken one is
/// returned).
///
/// - `to_file` false: the target must be a block device; not the image itself; not on the disk
///   holding `/` (nor a partition of it, nor a device built on it); nothing on it mounted, used
///   as swap, or held by dm/md; not read-only; at least as large as the image.
/// - `to_file` true: the target must be a regular file or not exist (it is created, or
///   truncated and rewritten); a block device is refused rather than written, so the option
///   never weakens a device check; and it must not be the image itself.
///
/// # Errors
/// The [`Refusal`].
pub fn check(image: &Image, target: &Target, to_file: bool) -> Result<(), Refusal> {
    let path = || target.path.clone();
    if target.identity == Some(image.identity) {
        return Err(Refusal::SameAsImage {
            target: path(),
            image: image.path.clone(),
        });
    }
    let info = match (&target.kind, to_file) {
        (TargetKind::File | TargetKind::Missing, true) => return Ok(()),
        (TargetKind::Block(_), true) => {
            return Err(Refusal::NotAFile {
                target: path(),
                what: Found::BlockDevice,
            });
        }
        (TargetKind::Other { what }, true) => {
            return Err(Refusal::NotAFile {
                target: path(),
                what: Found::Other(what),
            });
        }
        (TargetKind::File, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::RegularFile,
            });
        }
        (TargetKind::Missing, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::Missing,
            });
        }
        (TargetKind::Other { what }, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::Other(what),
            });
        }
        (TargetKind::Block(info), false) => info,
    };
    if let Some(root) = &info.holds_root {
        return Err(Refusal::RootDisk {
            target: path(),
            root: root.clone(),
        });
    }
    if !info.in_use.is_empty() {
        return Err(Refusal::InUse {
            target: path(),
            uses: info.in_use.clone(),
        });
    }
    if info.read_only {
        return Err(Refusal::ReadOnly { target: path() });
    }
    if target.bytes < image.bytes {
        return Err(Refusal::TooSmall {
            target: path(),
            target_bytes: target.bytes,
            image_bytes: image.bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
}
