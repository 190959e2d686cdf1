//! One look for the slot device ([`scan`]): `/sys/class/block` for a path or a `PARTLABEL=`,
//! the GPT of every whole disk (through a [`GptSource`]) for a `PARTUUID=`; and the whole disk
//! holding a partition ([`disk_of`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use atomix_blockdev::{SysfsError, partition_name};

use super::{DeviceError, DeviceSpec, HostPaths};

/// One partition of a GPT as the device stage needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based entry number.
    pub number: u32,
    /// Unique partition GUID, canonical uppercase.
    pub uuid: String,
}

/// Reads the partition table of a whole disk.
pub trait GptSource {
    /// The partitions of the disk at `dev` of `size_bytes` bytes, or why there are none (no GPT,
    /// unreadable); the reason is only logged.
    fn partitions(&mut self, dev: &Path, size_bytes: u64) -> Result<Vec<GptPartition>, String>;
}

/// The real [`GptSource`]: `atomix_repart::gpt::read` on the device node.
#[derive(Debug, Default)]
pub struct RepartGpt;

impl GptSource for RepartGpt {
    fn partitions(&mut self, dev: &Path, size_bytes: u64) -> Result<Vec<GptPartition>, String> {
        let mut f = File::open(dev).map_err(|e| format!("cannot open: {e}"))?;
        let table = atomix_repart::gpt::read(&mut f, size_bytes).map_err(|e| e.to_string())?;
        Ok(table
            .partitions
            .iter()
            .map(|p| GptPartition {
                number: p.number,
                uuid: p.uuid.to_string().to_ascii_uppercase(),
            })
            .collect())
    }
}

/// The result of one scan of `/sys/class/block`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The device node, if the device is there.
    pub found: Option<PathBuf>,
    /// All names in `/sys/class/block`, sorted.
    pub seen: Vec<String>,
}

/// Looks for `spec` once.
///
/// # Errors
///
/// [`DeviceError::Sysfs`] if `/sys/class/block` cannot be listed.
pub fn scan(
    paths: &HostPaths,
    spec: &DeviceSpec,
    gpt: &mut dyn GptSource,
) -> Result<Scan, DeviceError> {
    let sys = paths.sysfs();
    let seen = sys.names().map_err(sysfs_error)?;

    let found = match spec {
        DeviceSpec::Path(p) => {
            let rel = p.strip_prefix("/dev").unwrap_or(p);
            let base = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let node = paths.root.join("dev").join(rel);
            (seen.iter().any(|s| s == base) && node.exists()).then_some(node)
        }
        DeviceSpec::PartLabel(label) => {
            let mut matches = Vec::new();
            for name in &seen {
                let uevent = sys.device_dir(name).join("uevent");
                // A device can vanish between readdir and read; that is not an error.
                let Ok(text) = fs::read_to_string(&uevent) else {
                    continue;
                };
                let mut partname = None;
                let mut devname = None;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("PARTNAME=") {
                        partname = Some(v);
                    } else if let Some(v) = line.strip_prefix("DEVNAME=") {
                        devname = Some(v);
                    }
                }
                if partname == Some(label.as_str()) {
                    let node = paths.dev(devname.unwrap_or(name));
                    if node.exists() {
                        matches.push(node);
                    }
                }
            }
            if matches.len() > 1 {
                log::warn!(
                    "PARTLABEL={label} matches {} devices ({}); using the first",
                    matches.len(),
                    matches
                        .iter()
                        .map(|m| m.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            matches.into_iter().next()
        }
        DeviceSpec::PartUuid(uuid) => find_partuuid(paths, &seen, &uuid.to_string(), gpt),
    };
    Ok(Scan { found, seen })
}

fn find_partuuid(
    paths: &HostPaths,
    seen: &[String],
    uuid: &str,
    gpt: &mut dyn GptSource,
) -> Option<PathBuf> {
    let sys = paths.sysfs();
    for disk in seen {
        if sys.is_partition(disk) {
            continue;
        }
        let sectors = sys.sectors(disk).unwrap_or(0);
        // Empty loop devices, ejected media.
        if sectors == 0 {
            continue;
        }
        let node = paths.dev(disk);
        let parts = match gpt.partitions(&node, sectors * 512) {
            Ok(parts) => parts,
            Err(why) => {
                log::debug!("no GPT read from {}: {why}", node.display());
                continue;
            }
        };
        let Some(part) = parts.iter().find(|p| p.uuid.eq_ignore_ascii_case(uuid)) else {
            continue;
        };
        let name = partition_name(disk, part.number);
        let node = paths.dev(&name);
        if seen.contains(&name) && node.exists() {
            return Some(node);
        }
        log::debug!(
            "PARTUUID={uuid} is partition {} of {disk}; {name} not there yet",
            part.number
        );
    }
    None
}

/// The whole disk holding the block device `dev` (`/dev/vda2` -> `/dev/vda`), from sysfs: a
/// partition's `/sys/class/block/<name>` links into its disk's directory. `None` when `dev` is a
/// whole disk itself (it has no `partition` file).
///
/// # Errors
///
/// [`DeviceError::Sysfs`] when `dev` has no sysfs entry or the link cannot be resolved.
pub fn disk_of(paths: &HostPaths, dev: &Path) -> Result<Option<PathBuf>, DeviceError> {
    let name = dev.file_name().unwrap_or(dev.as_os_str());
    let disk = paths
        .sysfs()
        .parent_disk(&name.to_string_lossy())
        .map_err(sysfs_error)?;
    Ok(disk.map(|d| paths.dev(&d)))
}

/// A sysfs failure as [`DeviceError::Sysfs`], naming the file.
fn sysfs_error(e: SysfsError) -> DeviceError {
    match e {
        SysfsError::Read { path, source } => DeviceError::Sysfs { path, source },
        SysfsError::NotANumber { path, text } => DeviceError::Sysfs {
            path,
            source: io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")),
        },
    }
}
