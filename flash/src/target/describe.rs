//! The target as found ([`inspect_target`]): what it is, its size and, for a block device,
//! everything `/proc` and `/sys` say about it and what uses it ([`BlockInfo::describe`], read
//! through [`Host`]). Decides nothing: the rules are `check`'s.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::image::{Identity, identity, kind_name};
use crate::FlashError;
use crate::host::{DevNum, Host, Partition, parse_mountinfo, parse_swaps};

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
/// [`BlockInfo::describe`] finds. Decides nothing: see [`check`](super::check).
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
