//! Facts about the machine a flash target lives on, read from `/proc` and `/sys` (or from a fake
//! tree under a test's directory): what is mounted, what is a swap, which block devices are
//! partitions of which disk, which device-mapper/md devices sit on which, and the stable
//! `/dev/disk/by-id` names. Nothing here decides anything; [`crate::target`] does. sysfs itself is
//! read through `atomix_blockdev::Sysfs`, the workspace's one sysfs reader.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use atomix_blockdev::{Sysfs, SysfsError};
use serde::Serialize;

/// Where the facts come from: the real `/proc/self/mountinfo`, `/proc/swaps`, `/sys` and
/// `/dev/disk/by-id`, or the same paths under a fake root ([`Host::under`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The mount table (`/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// Active swap areas (`/proc/swaps`); a missing file means none.
    pub swaps: PathBuf,
    /// sysfs (`/sys`): `class/block/<name>`, `dev/block/<major>:<minor>`.
    pub sys: PathBuf,
    /// Stable names (`/dev/disk/by-id`); missing without udev, which means no names.
    pub by_id: PathBuf,
}

impl Host {
    /// This machine.
    pub fn real() -> Self {
        Self::under(Path::new("/"))
    }

    /// The same paths under `root` (a fake tree in tests).
    pub fn under(root: &Path) -> Self {
        Self {
            mountinfo: root.join("proc/self/mountinfo"),
            swaps: root.join("proc/swaps"),
            sys: root.join("sys"),
            by_id: root.join("dev/disk/by-id"),
        }
    }

    /// The sysfs reader for [`Host::sys`] (`atomix-blockdev` owns how sysfs is read).
    fn sysfs(&self) -> Sysfs {
        Sysfs::at(&self.sys)
    }

    /// The kernel name (`sda`, `loop3p1`, `dm-0`) of the block device `dev`, or `None` when
    /// sysfs has no block device with that number.
    pub fn block_name(&self, dev: DevNum) -> Option<String> {
        self.sysfs().block_name(dev.major, dev.minor).ok()
    }

    /// Whether sysfs knows a block device called `name`.
    pub fn has_block(&self, name: &str) -> bool {
        self.sysfs().device_dir(name).join("dev").is_file()
    }

    /// One attribute of block device `name` (`size`, `device/model`, `loop/backing_file`),
    /// trimmed; `None` when absent or empty.
    pub fn attr(&self, name: &str, rel: &str) -> Option<String> {
        self.sysfs().attr(name, rel)
    }

    /// The device number of block device `name` (its `dev` attribute).
    pub fn dev_of(&self, name: &str) -> Option<DevNum> {
        self.attr(name, "dev")?.parse().ok()
    }

    /// The whole disk `name` belongs to: itself, or for a partition (it has a `partition`
    /// attribute) the directory above it in `/sys/devices`.
    ///
    /// # Errors
    /// The sysfs link of a partition cannot be resolved.
    pub fn whole_disk(&self, name: &str) -> io::Result<String> {
        let sys = self.sysfs();
        if !sys.is_partition(name) {
            return Ok(name.to_owned());
        }
        match sys.parent_disk(name) {
            Ok(disk) => Ok(disk.unwrap_or_else(|| name.to_owned())),
            Err(SysfsError::Read { source, .. }) => Err(source),
            Err(e @ SysfsError::NotANumber { .. }) => Err(io::Error::other(e.to_string())),
        }
    }

    /// The partitions of disk `disk`: the subdirectories of its sysfs directory that have a
    /// `partition` attribute, sorted by name.
    pub fn partitions(&self, disk: &str) -> Vec<Partition> {
        self.sysfs()
            .partitions(disk)
            .into_iter()
            .filter_map(|name| {
                Some(Partition {
                    dev: self.dev_of(&name)?,
                    bytes: self.sectors_bytes(&name),
                    name,
                })
            })
            .collect()
    }

    /// The size sysfs gives (`size`, in 512-byte units), 0 when unknown.
    pub fn sectors_bytes(&self, name: &str) -> u64 {
        self.sysfs()
            .sectors(name)
            .map_or(0, |s| s.saturating_mul(512))
    }

    /// Devices built directly on `name` (`holders/`).
    pub fn holders(&self, name: &str) -> Vec<String> {
        self.sysfs().listed(name, "holders")
    }

    /// Devices `name` is built on directly (`slaves/`).
    pub fn slaves(&self, name: &str) -> Vec<String> {
        self.sysfs().listed(name, "slaves")
    }

    /// `name` and everything beneath it: for a dm/md device its slaves (recursively), and for
    /// each device its whole disk.
    ///
    /// # Errors
    /// A partition's sysfs link cannot be resolved.
    pub fn beneath(&self, name: &str) -> io::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(n) = todo.pop() {
            if !out.insert(n.clone()) {
                continue;
            }
            todo.push(self.whole_disk(&n)?);
            todo.extend(self.slaves(&n));
        }
        Ok(out)
    }

    /// `names` and every device built on them (holders, recursively).
    pub fn above(&self, names: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = names.to_vec();
        while let Some(n) = todo.pop() {
            if out.insert(n.clone()) {
                todo.extend(self.holders(&n));
            }
        }
        out
    }

    /// The `/dev/disk/by-id` names that point at `name`, sorted.
    pub fn by_id(&self, name: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.by_id) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                fs::read_link(e.path())
                    .ok()
                    .is_some_and(|t| t.file_name().is_some_and(|f| f == name))
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    }

    /// A human description of the hardware behind disk `name`: vendor and model (SCSI, ATA,
    /// NVMe, virtio), the card name (MMC/SD), or the backing file of a loop device.
    pub fn model(&self, name: &str) -> Option<String> {
        if let Some(file) = self.attr(name, "loop/backing_file") {
            return Some(format!("loop device backed by {file}"));
        }
        let parts: Vec<String> = ["device/vendor", "device/model", "device/name"]
            .iter()
            .filter_map(|rel| self.attr(name, rel))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The serial number sysfs gives (`serial`, `device/serial`).
    pub fn serial(&self, name: &str) -> Option<String> {
        self.attr(name, "serial")
            .or_else(|| self.attr(name, "device/serial"))
    }

    /// The device-mapper name of `name` (`dm/name`), which is what `/dev/mapper/<name>` mount
    /// sources show.
    pub fn dm_name(&self, name: &str) -> Option<String> {
        self.attr(name, "dm/name")
    }
}

/// One partition of a disk, as sysfs lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel name (`sda1`, `loop3p1`).
    pub name: String,
    /// Device number.
    pub dev: DevNum,
    /// Size in bytes.
    pub bytes: u64,
}

/// A device number, `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// From a raw `st_rdev`/`st_dev`.
    pub fn from_raw(raw: u64) -> Self {
        Self {
            major: rustix::fs::major(raw),
            minor: rustix::fs::minor(raw),
        }
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl Serialize for DevNum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for DevNum {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (major, minor) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected major:minor"))?;
        let num = |t: &str| {
            t.parse::<u32>()
                .map_err(|_| format!("`{s}`: expected major:minor"))
        };
        Ok(Self {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device number of the mounted file system (field 3; `0:N` for virtual ones and btrfs).
    pub dev: DevNum,
    /// Where it is mounted (octal escapes such as `\040` decoded).
    pub mount_point: String,
    /// The file system type.
    pub fstype: String,
    /// The mount source (`/dev/sda1`, `/dev/mapper/root`, `tmpfs`).
    pub source: String,
}

/// Parses `/proc/self/mountinfo` text.
///
/// # Errors
/// The first line that is not a mountinfo line, as the message.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || format!("not a mountinfo line: `{line}`");
            let (left, right) = line.split_once(" - ").ok_or_else(bad)?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            if left.len() < 6 {
                return Err(bad());
            }
            Ok(Mount {
                dev: left[2].parse().map_err(|_| bad())?,
                mount_point: unescape(left[4]),
                fstype: right.next().ok_or_else(bad)?.to_owned(),
                source: unescape(right.next().ok_or_else(bad)?),
            })
        })
        .collect()
}

/// The file names of the active swap areas in `/proc/swaps` text (header skipped).
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape)
        .collect()
}

/// Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 0:25 / /mnt/with\\040space ro,nosuid shared:5 master:1 - tmpfs none ro
";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[0],
            Mount {
                dev: DevNum {
                    major: 254,
                    minor: 0
                },
                mount_point: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into(),
            }
        );
        assert_eq!(mounts[1].mount_point, "/mnt/with space");
        assert_eq!(mounts[1].fstype, "tmpfs");
        let err = parse_mountinfo("garbage\n").unwrap_err();
        assert!(err.contains("garbage"), "{err}");
        assert!(parse_mountinfo("1 2 x:y / / rw - ext4 /dev/a rw\n").is_err());
    }

    #[test]
    fn swaps_and_escapes() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/sdb2                               partition\t8388604\t\t0\t\t-2\n\
                    /swap\\040file file 1024 0 -3\n";
        assert_eq!(parse_swaps(text), ["/dev/sdb2", "/swap file"]);
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
    }

    #[test]
    fn dev_numbers() {
        assert_eq!("8:17".parse::<DevNum>().unwrap().to_string(), "8:17");
        assert!("8".parse::<DevNum>().is_err());
        assert!("8:x".parse::<DevNum>().is_err());
        let raw = rustix::fs::makedev(259, 3);
        assert_eq!(
            DevNum::from_raw(raw),
            DevNum {
                major: 259,
                minor: 3
            }
        );
    }
}
