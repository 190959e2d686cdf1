//! Block devices as sysfs shows them (kernel names, partitions and their sectors), and sizes as
//! people read them.
//!
//! Owns: the one kernel partition-naming rule of the workspace ([`partition_name`]: `vda` + 2 →
//! `vda2`, `mmcblk0` + 2 → `mmcblk0p2`), and [`Sysfs`], the reader of `class/block/<name>` and
//! `dev/block/<major>:<minor>` below an injected sysfs root, so that every caller (the `/init`
//! device wait, repart's kernel check, flash's target checks) is tested on fixture trees.
//! Also owns the workspace's one size formatter ([`size::human`]): bytes as people read them, in
//! the fixed style of each place that prints sizes (the repart plan, `atomix flash`,
//! `atomix inspect`).
//!
//! Must not: write anything (sysfs or elsewhere), open device nodes, or decide what a device is
//! for; it reports what the kernel shows.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod size;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The kernel's name of partition `number` of whole disk `disk`: a `p` goes between them when
/// the disk's name ends in a digit (`mmcblk0p2`, `nvme0n1p2`, `loop0p2`), else nothing (`vda2`,
/// `sda2`). `disk` may be a path (`/dev/mmcblk1` gives `/dev/mmcblk1p2`).
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// Where a partition lies, as sysfs gives it: in 512-byte units whatever the sector size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First 512-byte unit (`start`).
    pub start: u64,
    /// Length in 512-byte units (`size`).
    pub sectors: u64,
}

/// A sysfs attribute that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The attribute file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The attribute file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The attribute does not hold a number.
    #[error("{}: not a number: {text:?}", path.display())]
    NotANumber {
        /// The attribute file.
        path: PathBuf,
        /// What it holds.
        text: String,
    },
}

/// The sysfs tree block devices are read from: `/sys` on the running system, or a fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The running system's `/sys`.
    pub fn system() -> Self {
        Self::at(Path::new("/sys"))
    }

    /// sysfs mounted (or faked) at `sys`.
    pub fn at(sys: &Path) -> Self {
        Self {
            root: sys.to_path_buf(),
        }
    }

    /// The sysfs directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `class/block`: one entry per block device, a symlink into `devices/`.
    pub fn class_block(&self) -> PathBuf {
        self.root.join("class/block")
    }

    /// The directory of block device `name` (`class/block/<name>`).
    pub fn device_dir(&self, name: &str) -> PathBuf {
        self.class_block().join(name)
    }

    /// The kernel name (`sda`, `loop3p1`, `dm-0`) of the block device `major:minor`, from the
    /// `dev/block/<major>:<minor>` link.
    ///
    /// # Errors
    /// The link is missing, or it has no file name.
    pub fn block_name(&self, major: u32, minor: u32) -> io::Result<String> {
        let link = fs::read_link(self.root.join(format!("dev/block/{major}:{minor}")))?;
        link.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| io::Error::other("sysfs link without a name"))
    }

    /// One attribute of block device `name` (`size`, `device/model`, `loop/backing_file`),
    /// trimmed; `None` when absent or empty.
    pub fn attr(&self, name: &str, rel: &str) -> Option<String> {
        let text = fs::read_to_string(self.device_dir(name).join(rel)).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// The names in `class/block` (every block device the kernel knows), sorted.
    ///
    /// # Errors
    /// `class/block` cannot be listed.
    pub fn names(&self) -> Result<Vec<String>, SysfsError> {
        let class = self.class_block();
        let failed = |source| SysfsError::Read {
            path: class.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&class).map_err(failed)? {
            if let Some(name) = entry.map_err(failed)?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether block device `name` is a partition (it has a `partition` attribute).
    pub fn is_partition(&self, name: &str) -> bool {
        self.device_dir(name).join("partition").exists()
    }

    /// The size of block device `name` in 512-byte units (`size`), `None` when unknown.
    pub fn sectors(&self, name: &str) -> Option<u64> {
        self.attr(name, "size")?.parse().ok()
    }

    /// The whole disk partition `name` belongs to (its directory's parent in `devices/`), or
    /// `None` when `name` is not a partition.
    ///
    /// # Errors
    /// `name` has no directory in `class/block`, its link cannot be resolved, or the resolved
    /// directory has no parent.
    pub fn parent_disk(&self, name: &str) -> Result<Option<String>, SysfsError> {
        let dir = self.device_dir(name);
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SysfsError::Read { path, source }
        };
        fs::metadata(&dir).map_err(failed(&dir))?;
        if !self.is_partition(name) {
            return Ok(None);
        }
        let real = fs::canonicalize(&dir).map_err(failed(&dir))?;
        let disk = real
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .ok_or_else(|| SysfsError::Read {
                path: real.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "a partition without a parent disk",
                ),
            })?;
        Ok(Some(disk.to_owned()))
    }

    /// The partitions of disk `disk`: the subdirectories of its directory that have a
    /// `partition` attribute, sorted by name; empty when `disk` is unknown.
    pub fn partitions(&self, disk: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.device_dir(disk)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("partition").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The names listed in directory `rel` of block device `name` (`holders`: devices built on
    /// it; `slaves`: what a dm/md device is built on), sorted; empty when absent.
    pub fn listed(&self, name: &str, rel: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.device_dir(name).join(rel)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Where partition `name` lies (its `start` and `size`), or `None` when sysfs has no
    /// directory for it (the kernel does not know the partition).
    ///
    /// # Errors
    /// The directory exists but `start` or `size` cannot be read or is not a number.
    pub fn extent(&self, name: &str) -> Result<Option<Extent>, SysfsError> {
        let dir = self.device_dir(name);
        if !dir.exists() {
            return Ok(None);
        }
        let read = |file: &str| -> Result<u64, SysfsError> {
            let path = dir.join(file);
            let text = fs::read_to_string(&path).map_err(|source| SysfsError::Read {
                path: path.clone(),
                source,
            })?;
            text.trim()
                .parse()
                .map_err(|_| SysfsError::NotANumber { path, text })
        };
        Ok(Some(Extent {
            start: read("start")?,
            sectors: read("size")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_the_kernel() {
        assert_eq!(partition_name("vda", 2), "vda2");
        assert_eq!(partition_name("sda", 11), "sda11");
        assert_eq!(partition_name("mmcblk0", 2), "mmcblk0p2");
        assert_eq!(partition_name("nvme0n1", 2), "nvme0n1p2");
        assert_eq!(partition_name("loop0", 2), "loop0p2");
        assert_eq!(partition_name("/dev/mmcblk1", 4), "/dev/mmcblk1p4");
    }

    /// A fixture tree: `class/block/<part>/{start,size}` and `dev/block/<n>` links.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("devices/virtual/block/mmcblk0");
        let part = disk.join("mmcblk0p2");
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join("start"), "32768\n").unwrap();
        fs::write(part.join("size"), "2097152\n").unwrap();
        fs::create_dir_all(dir.path().join("class/block")).unwrap();
        std::os::unix::fs::symlink(&part, dir.path().join("class/block/mmcblk0p2")).unwrap();
        std::os::unix::fs::symlink(&disk, dir.path().join("class/block/mmcblk0")).unwrap();
        fs::create_dir_all(dir.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&disk, dir.path().join("dev/block/179:0")).unwrap();
        fs::write(disk.join("size"), " 31116288 \n").unwrap();
        dir
    }

    #[test]
    fn extents_of_known_and_unknown_partitions() {
        let t = tree();
        let sys = Sysfs::at(t.path());
        assert_eq!(
            sys.extent("mmcblk0p2").unwrap(),
            Some(Extent {
                start: 32768,
                sectors: 2097152
            })
        );
        assert_eq!(sys.extent("mmcblk0p3").unwrap(), None);
        fs::write(t.path().join("class/block/mmcblk0p2/size"), "x\n").unwrap();
        let err = sys.extent("mmcblk0p2").unwrap_err();
        assert!(matches!(err, SysfsError::NotANumber { .. }), "{err}");
        assert!(err.to_string().contains("mmcblk0p2/size"), "{err}");
        fs::remove_file(t.path().join("class/block/mmcblk0p2/start")).unwrap();
        assert!(matches!(
            sys.extent("mmcblk0p2"),
            Err(SysfsError::Read { .. })
        ));
    }

    #[test]
    fn names_and_attributes() {
        let t = tree();
        let sys = Sysfs::at(t.path());
        assert_eq!(sys.block_name(179, 0).unwrap(), "mmcblk0");
        assert!(sys.block_name(8, 0).is_err());
        assert_eq!(sys.attr("mmcblk0", "size").as_deref(), Some("31116288"));
        assert_eq!(sys.attr("mmcblk0", "ro"), None);
        assert_eq!(Sysfs::system().root(), Path::new("/sys"));
        assert_eq!(sys.sectors("mmcblk0"), Some(31116288));
        assert_eq!(sys.sectors("mmcblk0p2"), Some(2097152));
        assert_eq!(sys.sectors("sda"), None);
        assert_eq!(sys.names().unwrap(), ["mmcblk0", "mmcblk0p2"]);
        assert!(Sysfs::at(&t.path().join("none")).names().is_err());
    }

    #[test]
    fn partitions_and_their_disk() {
        let t = tree();
        let sys = Sysfs::at(t.path());
        assert_eq!(
            sys.partitions("mmcblk0"),
            Vec::<String>::new(),
            "no partition file yet"
        );
        fs::write(t.path().join("class/block/mmcblk0p2/partition"), "2\n").unwrap();
        assert!(sys.is_partition("mmcblk0p2"));
        assert!(!sys.is_partition("mmcblk0"));
        assert_eq!(sys.partitions("mmcblk0"), ["mmcblk0p2"]);
        assert_eq!(sys.partitions("sdz"), Vec::<String>::new());
        assert_eq!(
            sys.parent_disk("mmcblk0p2").unwrap().as_deref(),
            Some("mmcblk0")
        );
        assert_eq!(sys.parent_disk("mmcblk0").unwrap(), None);
        let err = sys.parent_disk("sdz1").unwrap_err();
        assert!(err.to_string().ends_with("class/block/sdz1"), "{err}");
        let holders = t.path().join("class/block/mmcblk0p2/holders");
        fs::create_dir_all(holders.join("dm-1")).unwrap();
        fs::create_dir_all(holders.join("dm-0")).unwrap();
        assert_eq!(sys.listed("mmcblk0p2", "holders"), ["dm-0", "dm-1"]);
        assert_eq!(sys.listed("mmcblk0p2", "slaves"), Vec::<String>::new());
    }
}
