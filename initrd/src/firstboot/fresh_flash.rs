//! The fresh-flash decision: which disk holds the slot, whether it lacks `boot-b`, and the
//! markers in `/run` and in the new root that tell the real root.
//!
//! Must not: write anything but the markers, nor decide what a failure means beyond its error.

use std::path::{Path, PathBuf};

use atomix_repart::apply::Current;

use super::{
    BOOT_B, FRESH_FLASH_RUN, FRESH_FLASH_SYSROOT, MarkerError, RepartDisk, is_fresh_flash,
};
use crate::device::DeviceError;
use crate::system::{Markers, SlotDevices};

/// Whether this boot is a fresh flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshFlash {
    /// The disk had no `boot-b` before repart ran.
    Fresh,
    /// It had one, or there was no disk to look at, or it could not be read.
    NotFresh,
}

impl FreshFlash {
    /// `initrd.json`'s `fresh_flash`.
    pub fn is_fresh(self) -> bool {
        self == FreshFlash::Fresh
    }
}

/// What the fresh-flash stage found: the repart stage's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashedDisk {
    /// The decision.
    pub fresh: FreshFlash,
    /// The disk to repartition; `None` when the slot is a whole disk.
    pub disk: Option<PathBuf>,
    /// The disk as read before repart; `None` when there was none or it could not be read.
    pub state: Option<Current>,
    /// Why (for the stage line).
    pub why: String,
}

impl FlashedDisk {
    /// The stage line's detail.
    pub fn detail(&self) -> String {
        match self.fresh {
            FreshFlash::Fresh => format!("fresh flash: {}; wrote {FRESH_FLASH_RUN}", self.why),
            FreshFlash::NotFresh => format!("not a fresh flash: {}", self.why),
        }
    }
}

/// Why the fresh-flash stage failed. Fatal.
#[derive(Debug, thiserror::Error)]
pub enum FreshFlashError {
    /// The disk holding the slot could not be found in sysfs.
    #[error(transparent)]
    SlotDisk(#[from] DeviceError),
    /// The marker in `/run` could not be written or removed.
    #[error(transparent)]
    Marker(#[from] MarkerError),
}

/// Finds the disk (`atomix.repart.device=` or the one holding `slot`), reads its table once,
/// decides whether this boot is a fresh flash and writes or removes [`FRESH_FLASH_RUN`].
///
/// # Errors
///
/// The disk cannot be found in sysfs, or the marker cannot be written or removed. A disk that
/// cannot be read is not an error: the boot is then not a fresh flash (the warning says why).
pub fn decide<S: SlotDevices + RepartDisk + Markers>(
    sys: &mut S,
    repart_device: Option<&Path>,
    slot: &Path,
) -> Result<FlashedDisk, FreshFlashError> {
    let disk = match repart_device {
        Some(d) => Some(d.to_path_buf()),
        None => sys.slot_disk(slot)?,
    };
    let mut state = None;
    let (fresh, why) = match &disk {
        None => (
            FreshFlash::NotFresh,
            format!(
                "the slot {} is not a partition: no disk to look at",
                slot.display()
            ),
        ),
        Some(disk) => match sys.read_disk(disk) {
            Ok(current) => {
                if current.repaired_from_backup {
                    log::warn!(
                        "the primary GPT of {} is damaged: read the backup",
                        disk.display()
                    );
                }
                let fresh = if is_fresh_flash(current.table.as_ref()) {
                    FreshFlash::Fresh
                } else {
                    FreshFlash::NotFresh
                };
                let why = match current.table.as_ref().and_then(|t| t.by_name(BOOT_B)) {
                    Some(p) => format!("{} has {BOOT_B} (partition {})", disk.display(), p.number),
                    None if current.table.is_none() => format!("{} has no GPT", disk.display()),
                    None => format!("{} has no {BOOT_B} partition", disk.display()),
                };
                state = Some(current);
                (fresh, why)
            }
            Err(e) => {
                log::warn!(
                    "cannot read the partition table of {}: {}; taking this boot as not a fresh flash",
                    disk.display(),
                    atomix_errchain::OneLine(&e)
                );
                (
                    FreshFlash::NotFresh,
                    format!("cannot read {}", disk.display()),
                )
            }
        },
    };
    set_marker(sys, Path::new(FRESH_FLASH_RUN), fresh)?;
    Ok(FlashedDisk {
        fresh,
        disk,
        state,
        why,
    })
}

/// In the new root: the fresh-flash marker on a fresh flash, none otherwise (one shipped in the
/// slot image is removed, with a warning). Returns the part of the stage line about it.
///
/// # Errors
///
/// The marker cannot be written or removed.
pub fn sysroot_marker<S: Markers>(sys: &mut S, fresh: FreshFlash) -> Result<String, MarkerError> {
    let removed = set_marker(sys, Path::new(FRESH_FLASH_SYSROOT), fresh)?;
    if fresh.is_fresh() {
        return Ok(format!(", {FRESH_FLASH_SYSROOT}"));
    }
    if removed {
        log::warn!(
            "{FRESH_FLASH_SYSROOT} came from the slot image, which must not contain it (a rootfs build error): removed it for this boot"
        );
    }
    Ok(String::new())
}

/// Writes `marker` on a fresh flash, removes it otherwise; whether one was removed.
fn set_marker<S: Markers>(
    sys: &mut S,
    marker: &Path,
    fresh: FreshFlash,
) -> Result<bool, MarkerError> {
    match fresh {
        FreshFlash::Fresh => {
            sys.write_marker(marker)
                .map(|()| false)
                .map_err(|source| MarkerError::Write {
                    path: marker.to_path_buf(),
                    source,
                })
        }
        FreshFlash::NotFresh => sys
            .remove_marker(marker)
            .map_err(|source| MarkerError::Remove {
                path: marker.to_path_buf(),
                source,
            }),
    }
}
