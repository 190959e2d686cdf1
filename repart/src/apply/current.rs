//! Reading the disk as it is now ([`Current`]): size, sector size, the primary or backup GPT,
//! and whether the backup is stale; planning against it ([`plan_current`]). Must not: write.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::SystemTime;

use super::ApplyError;
use super::probe::{not_gpt_content, read_head};
use crate::blkdev;
use crate::definitions::Definition;
use crate::gpt::{self, Geometry, GptError, Guid, Structure, Table};
use crate::plan::{Plan, PlanError, PlanOptions, plan};

/// The disk as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Size in bytes (file length, or `BLKGETSIZE64`).
    pub disk_bytes: u64,
    /// Logical sector size (512 for image files, `BLKSSZGET` for block devices).
    pub sector_size: u64,
    /// The partition table; `None` when the disk has no GPT at all.
    pub table: Option<Table>,
    /// The primary GPT is damaged and the table was read from the backup; apply rewrites both.
    pub repaired_from_backup: bool,
    /// The target is a block device (BLKPG, partition devices) rather than an image file.
    pub is_block_device: bool,
}

/// Reads the disk's size and partition table: the primary GPT, or the backup in the last sector
/// when the primary is damaged (then [`Current::repaired_from_backup`] is set and apply rewrites
/// both). Both damaged is an error naming the disk; no GPT at all gives `table: None`, unless the
/// disk holds an MBR partition table or a whole-disk file system instead (an error: such a disk
/// is never given a new table).
pub fn read_current(target: &Path) -> Result<Current, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    read_current_from(&file, target)
}

pub(super) fn read_current_from(file: &File, target: &Path) -> Result<Current, ApplyError> {
    let size_error = |source| ApplyError::Size {
        target: target.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(size_error)?;
    let is_block_device = meta.file_type().is_block_device();
    let (disk_bytes, sector_size) = if is_block_device {
        (
            blkdev::size_bytes(file).map_err(size_error)?,
            blkdev::sector_size(file).map_err(size_error)?,
        )
    } else {
        (meta.len(), 512)
    };
    let geometry =
        Geometry::new(disk_bytes, sector_size).map_err(|source| ApplyError::Geometry {
            target: target.to_owned(),
            source,
        })?;
    let mut reader = file;
    let (table, repaired_from_backup) = match gpt::read_with(&mut reader, &geometry) {
        Ok(t) => (Some(t), false),
        Err(primary @ GptError::Read { .. }) => {
            return Err(ApplyError::ReadTable {
                target: target.to_owned(),
                source: primary,
            });
        }
        Err(primary) => match gpt::read_backup(&mut reader, &geometry) {
            Ok(t) => {
                log::warn!(
                    "{}: primary GPT unusable ({primary}); using the backup GPT, both copies \
                     will be rewritten",
                    target.display()
                );
                (Some(t), true)
            }
            Err(GptError::NoGpt { .. }) if matches!(primary, GptError::NoGpt { .. }) => {
                let head = read_head(file, 0, disk_bytes).map_err(|source| ApplyError::Size {
                    target: target.to_owned(),
                    source,
                })?;
                if let Some(found) = not_gpt_content(&head) {
                    return Err(ApplyError::NotGpt {
                        target: target.to_owned(),
                        found,
                    });
                }
                (None, false)
            }
            Err(backup) => {
                return Err(ApplyError::BothTablesDamaged {
                    target: target.to_owned(),
                    backup: backup.to_string(),
                    primary,
                });
            }
        },
    };
    Ok(Current {
        disk_bytes,
        sector_size,
        table,
        repaired_from_backup,
        is_block_device,
    })
}

/// Plans `definitions` against the disk as [`read_current`] found it, with the defaults of
/// `atomix repart` and `/init`: the seed is `seed`, else the current table's disk GUID (so a
/// re-run after a crash plans the same partitions), else a fresh one for a blank disk; the first
/// usable LBA of a new table is `first_usable_bytes` (the board's raw-region bound).
pub fn plan_current(
    definitions: &[Definition],
    current: &Current,
    seed: Option<Guid>,
    first_usable_bytes: u64,
) -> Result<Plan, PlanError> {
    let seed = seed
        .or_else(|| current.table.as_ref().map(|t| t.disk_guid))
        .filter(|g| !g.is_nil())
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mut bytes = nanos.to_le_bytes().to_vec();
            bytes.extend_from_slice(&std::process::id().to_le_bytes());
            Guid::from_seed(&bytes)
        });
    let options = PlanOptions {
        sector_size: current.sector_size,
        first_usable_lba: first_usable_bytes.div_ceil(current.sector_size),
    };
    plan(
        definitions,
        current.table.as_ref(),
        current.disk_bytes,
        seed,
        &options,
    )
}

/// Whether the backup GPT in the last sector is missing or differs from the primary (only
/// asked when the primary is good and the plan changes nothing).
pub(super) fn backup_is_stale(
    file: &File,
    current: &Current,
    target: &Path,
) -> Result<bool, ApplyError> {
    let Some(primary) = &current.table else {
        return Ok(false);
    };
    if current.repaired_from_backup {
        return Ok(true);
    }
    let geometry = Geometry::new(current.disk_bytes, current.sector_size).map_err(|source| {
        ApplyError::Geometry {
            target: target.to_owned(),
            source,
        }
    })?;
    let mut reader = file;
    Ok(match gpt::read_backup(&mut reader, &geometry) {
        Ok(backup) => {
            let mut a = backup.partitions.clone();
            let mut b = primary.partitions.clone();
            a.sort_by_key(|p| p.number);
            b.sort_by_key(|p| p.number);
            a != b
                || backup.disk_guid != primary.disk_guid
                || backup.first_usable_lba != primary.first_usable_lba
                || backup.last_usable_lba != primary.last_usable_lba
        }
        Err(GptError::Read { source, .. }) => {
            return Err(ApplyError::ReadTable {
                target: target.to_owned(),
                source: GptError::Read {
                    what: Structure::BackupHeader,
                    offset: geometry.backup_header_lba() * geometry.sector_size(),
                    source,
                },
            });
        }
        Err(e) => {
            log::warn!(
                "{}: backup GPT unusable ({e}); it will be rewritten",
                target.display()
            );
            true
        }
    })
}
