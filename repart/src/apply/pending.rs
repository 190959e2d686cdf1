//! What [`super::apply`] would do ([`Pending`]), found by reading only: whether the table is
//! written, which file systems are made and why; the check that a plan fits the disk as it is.
//! Must not: write.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

use super::current::{backup_is_stale, read_current_from};
use super::probe::{probe_signature, read_head};
use super::{ApplyError, Current};
use crate::definitions::Format;
use crate::plan::{ActionKind, Plan};

/// Why a file system is (re)made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatReason {
    /// A new partition.
    Created,
    /// An existing partition whose definition has `Format=` but which holds no file system
    /// (wiped or discarded): a reprovisioned disk.
    Empty,
}

impl fmt::Display for FormatReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatReason::Created => "new partition",
            FormatReason::Empty => "existing partition without a file system",
        })
    }
}

/// A file system apply makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingFormat {
    /// Partition number.
    pub number: u32,
    /// Partition label.
    pub label: String,
    /// The file system.
    pub format: Format,
    /// Why.
    pub reason: FormatReason,
}

/// What [`apply`](super::apply()) would do, found by reading only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// The partition table is written (the plan changes it, or a copy is damaged or stale).
    pub table: bool,
    /// File systems made, in partition order.
    pub format: Vec<PendingFormat>,
}

impl Pending {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        !self.table && self.format.is_empty()
    }
}

/// What [`apply`](super::apply()) would do on `target` now. Reads only.
pub fn pending(plan: &Plan, target: &Path) -> Result<Pending, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    let current = read_current_from(&file, target)?;
    pending_on(plan, &file, &current, target)
}

pub(super) fn pending_on(
    plan: &Plan,
    file: &File,
    current: &Current,
    target: &Path,
) -> Result<Pending, ApplyError> {
    check_plan(plan, current, target)?;
    let table = !plan.nothing_to_do
        || current.repaired_from_backup
        || backup_is_stale(file, current, target)?;
    let probe_file = if current.is_block_device {
        // The whole-disk page cache may hold pages read before a partition device wrote them:
        // probe with O_DIRECT.
        Some(
            OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
                .open(target)
                .map_err(|source| ApplyError::Open {
                    target: target.to_owned(),
                    source,
                })?,
        )
    } else {
        None
    };
    let mut format = Vec::new();
    for a in &plan.actions {
        let Some(fs) = a.format else { continue };
        let reason = match a.kind {
            ActionKind::Create => FormatReason::Created,
            ActionKind::Keep | ActionKind::Grow => {
                let start = a.start_lba * plan.sector_size;
                let len = a.sectors * plan.sector_size;
                let head = read_head(probe_file.as_ref().unwrap_or(file), start, len).map_err(
                    |source| ApplyError::Probe {
                        target: target.to_owned(),
                        number: a.number,
                        label: a.label.clone(),
                        source,
                    },
                )?;
                match probe_signature(&head) {
                    Some(found) => {
                        log::debug!(
                            "partition {} ({}) holds {found}: not formatted",
                            a.number,
                            a.label
                        );
                        continue;
                    }
                    None => FormatReason::Empty,
                }
            }
            ActionKind::Foreign => continue,
        };
        format.push(PendingFormat {
            number: a.number,
            label: a.label.clone(),
            format: fs,
            reason,
        });
    }
    Ok(Pending { table, format })
}

/// Checks that `plan` was made for the disk as it is: same size and sector size, and the same
/// existing partitions where the plan keeps, grows or leaves them.
pub(super) fn check_plan(plan: &Plan, current: &Current, target: &Path) -> Result<(), ApplyError> {
    let stale = |reason: String| {
        Err(ApplyError::StalePlan {
            target: target.to_owned(),
            reason,
        })
    };
    if plan.disk_bytes != current.disk_bytes || plan.sector_size != current.sector_size {
        return stale(format!(
            "planned for {} bytes in {}-byte sectors, the disk has {} bytes in {}-byte sectors",
            plan.disk_bytes, plan.sector_size, current.disk_bytes, current.sector_size
        ));
    }
    let Some(table) = &current.table else {
        if !plan.new_table {
            return stale("planned for an existing table, the disk has none".into());
        }
        return Ok(());
    };
    if plan.new_table {
        return stale("planned for a blank disk, the disk has a partition table".into());
    }
    for a in &plan.actions {
        let existing = table.partition(a.number);
        match (a.kind, existing) {
            (ActionKind::Create, None) => {}
            (ActionKind::Create, Some(p)) => {
                return stale(format!(
                    "partition {} is to be created but exists ({:?})",
                    a.number, p.name
                ));
            }
            (_, Some(p)) if p.first_lba == a.start_lba && p.type_guid == a.type_guid => {}
            (_, _) => {
                return stale(format!(
                    "partition {} ({:?}) is not on the disk where the plan expects it",
                    a.number, a.label
                ));
            }
        }
    }
    for p in &table.partitions {
        if !plan.actions.iter().any(|a| a.number == p.number) {
            return stale(format!(
                "partition {} ({:?}) is on the disk but not in the plan",
                p.number, p.name
            ));
        }
    }
    Ok(())
}
