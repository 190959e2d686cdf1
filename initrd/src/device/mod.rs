//! Finding the slot device without udev and without sleep loops.
//!
//! [`wait_for`] scans `/sys/class/block` once and, if the device is not there yet, subscribes to
//! the kernel's uevents, scans again (so a device added between the first scan and the
//! subscription is not missed), then blocks on the uevent source until a block device is added or
//! changed, scanning again each time, until the deadline. When the device is already there (the
//! modules stage loads the disk driver synchronously, so it normally is), no socket is opened.
//!
//! - `/dev/NAME`: `NAME` exists in `/sys/class/block` and `/dev/NAME` exists.
//! - `PARTLABEL=`: a `/sys/class/block/*/uevent` with `PARTNAME=<label>`; the node is `DEVNAME=`.
//! - `PARTUUID=`: the kernel exports it neither in uevents nor in sysfs, so the GPT of every whole
//!   disk (an entry without a `partition` file) is read through a [`GptSource`], and partition
//!   `N` of disk `D` is mapped to its node with `atomix_blockdev::partition_name`.
//!
//! All paths are below a [`HostPaths`] root, so tests run the same code on fixture trees; sysfs
//! is read through `atomix_blockdev::Sysfs`.
//!
//! One file per concern: this one names the device ([`DeviceSpec`]), where the trees are
//! ([`HostPaths`]), the failures, and the wait ([`wait_for`]); `lookup` looks once (sysfs and the
//! GPTs, [`scan`], [`disk_of`]); `uevent` is the kernel's uevents ([`UeventSource`],
//! [`NetlinkUevents`]).

mod lookup;
#[cfg(test)]
mod tests;
mod uevent;

pub use lookup::{GptPartition, GptSource, RepartGpt, Scan, disk_of, scan};
pub use uevent::{NetlinkUevents, Uevent, UeventSource, Wake};

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use atomix_blockdev::Sysfs;
use atomix_repart::gpt::Guid;

/// The slot device as named on the kernel command line (`atomixos.lowerdev=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A device node, e.g. `/dev/mmcblk1p2`.
    Path(PathBuf),
    /// A GPT partition name, e.g. `rootfs-a`.
    PartLabel(String),
    /// A GPT unique partition GUID (shown canonical and uppercase).
    PartUuid(Guid),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::PartLabel(l) => write!(f, "PARTLABEL={l}"),
            DeviceSpec::PartUuid(u) => write!(f, "PARTUUID={u}"),
        }
    }
}

/// Where sysfs and `/dev` are. [`HostPaths::system`] is the real `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The directory that holds `sys/class/block` and `dev`.
    pub root: PathBuf,
}

impl HostPaths {
    /// The running system (`/`).
    pub fn system() -> Self {
        HostPaths {
            root: PathBuf::from("/"),
        }
    }

    /// The sysfs below the root (`sys`), read through `atomix_blockdev`.
    fn sysfs(&self) -> Sysfs {
        Sysfs::at(&self.root.join("sys"))
    }

    fn dev(&self, name: &str) -> PathBuf {
        self.root.join("dev").join(name)
    }
}

/// A failure to find the slot device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A sysfs directory or file could not be read.
    #[error("cannot read {}", path.display())]
    Sysfs {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The uevent netlink socket could not be opened or read.
    #[error("kernel uevent socket: cannot {op}")]
    Uevent {
        /// The failed operation (`open`, `bind`, `receive`).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device did not show up before the deadline.
    #[error("timed out after {} s waiting for {spec} (block devices seen: {})", timeout.as_secs_f64(), seen_list(seen))]
    Timeout {
        /// The device as given on the command line.
        spec: String,
        /// How long it waited.
        timeout: Duration,
        /// The names in `/sys/class/block` at the last scan.
        seen: Vec<String>,
    },
}

fn seen_list(seen: &[String]) -> String {
    if seen.is_empty() {
        "none".to_owned()
    } else {
        seen.join(", ")
    }
}

/// Waits until `spec` is present or `timeout` has passed, without polling: one scan; if the
/// device is not there, [`UeventSource::subscribe`] and a second scan (so nothing added between
/// the two is missed), then one scan per block `add`/`change` event (or lost events). `now` is
/// the monotonic clock.
///
/// # Errors
///
/// [`DeviceError::Timeout`] (with the block devices of the last scan), or the first sysfs or
/// uevent error.
pub fn wait_for(
    paths: &HostPaths,
    spec: &DeviceSpec,
    timeout: Duration,
    gpt: &mut dyn GptSource,
    events: &mut dyn UeventSource,
    now: &mut dyn FnMut() -> Duration,
) -> Result<PathBuf, DeviceError> {
    let deadline = now() + timeout;
    let mut last = scan(paths, spec, gpt)?;
    if last.found.is_none() {
        events.subscribe()?;
        last = scan(paths, spec, gpt)?;
    }
    loop {
        if let Some(found) = last.found.take() {
            return Ok(found);
        }
        let remaining = deadline.saturating_sub(now());
        if remaining.is_zero() {
            return Err(DeviceError::Timeout {
                spec: spec.to_string(),
                timeout,
                seen: last.seen,
            });
        }
        match events.wait(remaining)? {
            Wake::Event(ev) if ev.is_block_add_or_change() => {
                log::debug!(
                    "uevent {} {}",
                    ev.action,
                    ev.devname.as_deref().unwrap_or("?")
                );
            }
            Wake::Overflow => log::debug!("uevents lost; scanning again"),
            Wake::Event(_) | Wake::Timeout => continue,
        }
        last = scan(paths, spec, gpt)?;
    }
}
