//! Carrying out a [`Plan`] on an image file or a block device, crash-safely.
//!
//! The order is systemd-repart's rule — a partition either does not exist or exists fully
//! populated:
//!
//! 1. **File systems first, into free space.** A new partition's file system (and its
//!    `MakeDirectories=`) is written into the space the partition will occupy *before* the table
//!    refers to it. Image files: f2fs is made in a temporary sparse file of the partition's size
//!    (`atomix_f2fs::format`, then `sload.f2fs` for the directories, since the host kernel has no
//!    f2fs) and its data extents are copied in, the two superblocks last; vfat is written by
//!    `fatfs` straight into the range. Block devices: the partition is announced to the kernel
//!    with `BLKPG_ADD_PARTITION` (kernel state only, nothing on disk), formatted through
//!    `/dev/<part>`, mounted to make the directories, unmounted.
//! 2. **The table last**: protective MBR, backup entries and header at the disk's real end,
//!    a flush, then the primary entries and header, a flush. A cut at any write leaves a disk
//!    whose primary or backup is a valid old or new table; the next run reads it (from the backup
//!    when the primary is torn) and completes.
//! 3. **The kernel** (block devices): `BLKPG_ADD_PARTITION` for partitions it does not know,
//!    `BLKPG_RESIZE_PARTITION` for grown ones — this works while another partition of the disk is
//!    mounted; `BLKRRPART` is never used — then sysfs `start`/`size` are read back and checked.
//!
//! Nothing below the first partition (or the first usable LBA of a table without partitions) is
//! ever written, apart from the GPT's own sectors: every write goes through a guard that
//! refuses that range. No discard, ever. A partition that holds a file system is never
//! formatted: an existing partition whose definition has `Format=` is formatted only when
//! [`probe_signature`] finds no known signature in it (the "reprovisioned" case).
//!
//! Running it again on the result finds nothing pending and writes nothing.

mod current;
mod device;
mod error;
mod image;
mod kernel;
mod mkfs;
mod pending;
mod probe;
mod report;
mod sload;
mod table;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use atomix_blockdev::Sysfs;

use crate::io::{DiskIo, Guarded};
use crate::plan::Plan;

use self::current::read_current_from;
pub use self::current::{Current, plan_current, read_current};
use self::device::format_on_device;
pub use self::error::ApplyError;
use self::image::format_on_image;
use self::kernel::KernelDisk;
use self::pending::pending_on;
pub use self::pending::{FormatReason, Pending, PendingFormat, pending};
pub use self::probe::probe_signature;
pub use self::report::{ApplyReport, KernelPartition, MakeDirsOutcome};
use self::table::write_table;

/// How [`apply`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// SOURCE_DATE_EPOCH for host images: file-system UUIDs fixed to
    /// `derive_uuid(partition uuid, "file-system-uuid")` and every timestamp set to this time,
    /// so the same plan gives the same bytes. `None`: the f2fs UUID is random, times are now.
    pub reproducible: Option<u64>,
    /// Block devices: where a new f2fs is mounted to make its `MakeDirectories=`.
    pub mount_dir: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            reproducible: None,
            mount_dir: PathBuf::from("/run/atomix/repart"),
        }
    }
}

/// Carries `plan` out on `target` (an image file or a block device) in the crash-safe order of
/// the module documentation, reporting steps through `progress`.
pub fn apply(
    plan: &Plan,
    target: &Path,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, ApplyError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
        .map_err(|source| ApplyError::Open {
            target: target.to_owned(),
            source,
        })?;
    apply_with(plan, target, &file, opts, progress)
}

/// [`apply`] with every write of the table, the vfat and the f2fs copy going through `io`
/// (`target` opened for writing; tests pass a layer that fails after the Nth write). Formats on
/// block devices go through the partition devices instead.
pub fn apply_with(
    plan: &Plan,
    target: &Path,
    io: &dyn DiskIo,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    let current = read_current_from(&file, target)?;
    let pending = pending_on(plan, &file, &current, target)?;
    let geometry = plan.geometry().map_err(|source| ApplyError::Geometry {
        target: target.to_owned(),
        source,
    })?;
    let mut report = ApplyReport::default();
    let kernel = if current.is_block_device {
        Some(KernelDisk::of(&file, target, Sysfs::system())?)
    } else {
        None
    };
    if pending.is_empty() {
        log::info!("{}: nothing to do", target.display());
        progress("nothing to do");
    }

    // Nothing below the lowest partition (or the first usable LBA) is written, except the GPT.
    let gpt_end = geometry.min_first_usable_lba() * geometry.sector_size();
    let lowest = plan
        .table_after
        .partitions
        .iter()
        .map(|p| p.first_lba)
        .chain([plan.table_after.first_usable_lba])
        .min()
        .unwrap_or(plan.table_after.first_usable_lba);
    let guard = Guarded {
        inner: io,
        protected_start: gpt_end,
        protected_end: (lowest * geometry.sector_size()).max(gpt_end),
    };

    // (1) File systems, before the table refers to them.
    for f in &pending.format {
        let Some(action) = plan.actions.iter().find(|a| a.number == f.number) else {
            continue;
        };
        progress(&format!(
            "formatting partition {} ({}) as {} ({})",
            f.number, f.label, f.format, f.reason
        ));
        let dirs = match &kernel {
            Some(k) => format_on_device(k, plan, action, f, opts, progress)?,
            None => format_on_image(&guard, target, plan, action, f, opts, progress)?,
        };
        if let Some(outcome) = dirs {
            report
                .make_directories
                .push((f.number, action.make_directories.clone(), outcome));
        }
        report.formatted.push(f.clone());
    }
    if !pending.format.is_empty() {
        io.flush().map_err(|source| ApplyError::FlushFormats {
            target: target.to_owned(),
            source,
        })?;
    }

    // (2) The table: backup at the disk's end first, then the primary.
    if pending.table {
        progress("writing the partition table (backup at the disk's end, then primary)");
        write_table(&guard, target, &geometry, &plan.table_after)?;
        report.table_written = true;
        log::info!(
            "{}: partition table written ({} partitions)",
            target.display(),
            plan.table_after.partitions.len()
        );
    }

    // (3) The kernel's view.
    if let Some(k) = &kernel {
        report.kernel = k.sync(&plan.table_after, plan.sector_size, progress)?;
    }
    Ok(report)
}
