//! The pure planner: definitions + the current table + the disk size -> what the table becomes.
//!
//! [`plan`] follows systemd-repart v252 (`src/partition/repart.c`) step by step, so the same
//! `repart.d` files give the same table (same starts, sizes, types, labels, numbers, attributes and,
//! for the same `--seed`, the same UUIDs):
//!
//! 1. Existing partitions are matched to definitions by type, in file order: the Nth existing
//!    partition of a type (in entry order) belongs to the Nth definition of that type. Existing
//!    partitions left over are *foreign*: never resized, relabelled or moved.
//! 2. Free areas are the gaps after existing partitions (aligned to the 4096-byte grain). On a
//!    disk without partitions the whole usable range is one area.
//! 3. New partitions are allocated first-fit into the free areas, smallest area first, each needing
//!    its minimum size plus minimum padding. When they do not all fit, every definition of the
//!    highest `Priority=` above 0 is dropped and the fit is retried.
//! 4. Each area's space (plus the partition before it) is shared by weight in systemd's three
//!    phases (over-charge, under-charge, distribute), sizes rounded down to the grain; leftovers go
//!    to the partition before the area, then to the new ones, then become padding.
//! 5. New partitions are placed in order inside their area and numbered after the highest
//!    existing entry number; labels, UUIDs and the disk GUID are filled in as systemd does
//!    (UUIDs are HMAC-SHA256 of the seed, see [`derive_uuid`]).
//!
//! Deliberate differences from v252, each a fix or a safety rule:
//! - The gap in front of the first existing partition is never used (systemd uses it): on the
//!   AtomixOS boards it holds U-Boot. On a disk with no partitions the allocation starts at
//!   [`PlanOptions::first_usable_lba`] (or the table's first usable LBA, whichever is higher).
//! - A backup GPT that is not at the end of the disk (a short image written to a larger disk) is
//!   moved there and the last usable LBA raised, which is what libfdisk does when repart opens the
//!   disk read-write. systemd-repart `--dry-run=yes` skips that step and reports that nothing fits.
//! - Retrying after a priority drop starts from an empty allocation and forgets the dropped
//!   partitions, as systemd v253 does (v252's source keeps both). Debian's 252.38 gives the same
//!   table as this crate in the tested case, but segfaults drawing its bar chart afterwards.
//! - An existing partition whose minimum size no longer fits in the space after it is an error
//!   naming it and the partition in the way (v252 can overshoot the gap; later versions refuse),
//!   and a derived UUID that collides is derived again with a counter instead of being
//!   randomised, so the plan stays deterministic.
//! - The space after a partition is measured from its exact end (v252 measures from the start of
//!   its last sector, which differs only for partitions not ending on a 4096-byte boundary).
//!
//! Files: the plan's types and [`plan`] here; one layout attempt in `layout.rs` (steps 1, 3, 5),
//! the free areas and their sharing in `space.rs` (steps 2, 4), UUIDs in `uuid.rs`, the printed
//! table in `display.rs`, [`PlanError`] in `error.rs`.

mod display;
mod error;
mod layout;
mod space;
mod uuid;

use std::fmt;

use serde::Serialize;

use crate::definitions::{Definition, Format};
use crate::gpt::{Geometry, GptError, Guid, Partition, Table};

pub use self::error::PlanError;
use self::layout::Input;
pub use self::uuid::derive_uuid;
pub(crate) use self::uuid::{serialize_guid, serialize_opt_guid};
/// systemd's hard lower limit for a new partition.
const HARD_MIN_SIZE: u64 = 4096;
/// The GrowFileSystem attribute (bit 59) systemd sets by default on new partitions of types
/// that know it ([`crate::definitions::type_knows_growfs`]).
pub const ATTR_GROWFS: u64 = 1 << 59;

/// The ReadOnly attribute (bit 60) systemd sets by default on new verity partitions
/// ([`crate::definitions::type_is_verity`]).
pub const ATTR_READ_ONLY: u64 = 1 << 60;

/// Inputs of [`plan`] besides the definitions and the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Logical sector size of the disk (512 or 4096).
    pub sector_size: u64,
    /// First usable LBA of a table made on a blank disk, and the lowest LBA allocated on a table
    /// without partitions. systemd (libfdisk) uses 2048; the AtomixOS boards need 32768 (16 MiB)
    /// to keep the raw U-Boot region out of reach.
    pub first_usable_lba: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            sector_size: 512,
            first_usable_lba: 2048,
        }
    }
}

/// What happens to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Exists, matched by a definition, keeps its size (its label or UUID may still be set).
    Keep,
    /// Exists, matched by a definition, grows in place.
    Grow,
    /// New: apply formats it (if `format` is set) and then enters it in the table.
    Create,
    /// Exists, matched by no definition: left exactly as it is.
    Foreign,
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActionKind::Keep => "keep",
            ActionKind::Grow => "grow",
            ActionKind::Create => "create",
            ActionKind::Foreign => "foreign",
        })
    }
}

/// One partition of the planned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What happens to it.
    pub kind: ActionKind,
    /// Entry number (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// The definition file that matched or created it; `None` for foreign partitions.
    pub definition: Option<String>,
    /// Label after the plan.
    pub label: String,
    /// Partition type.
    #[serde(rename = "type", serialize_with = "serialize_guid")]
    pub type_guid: Guid,
    /// systemd's name for the type, if it has one.
    pub type_name: Option<String>,
    /// Partition UUID after the plan.
    #[serde(serialize_with = "serialize_guid")]
    pub uuid: Guid,
    /// First sector.
    pub start_lba: u64,
    /// Size in sectors after the plan.
    pub sectors: u64,
    /// Size in sectors before the plan; `None` for a new partition.
    pub old_sectors: Option<u64>,
    /// Attribute bits after the plan.
    pub attributes: u64,
    /// An existing partition whose empty label is set.
    pub set_label: bool,
    /// An existing partition whose all-zero UUID is set.
    pub set_uuid: bool,
    /// The definition's `Format=`. Apply formats `Create` partitions with it; an existing
    /// partition is never formatted by the plan.
    pub format: Option<Format>,
    /// The definition's `MakeDirectories=`, made in a freshly formatted file system.
    pub make_directories: Vec<String>,
}

impl Action {
    /// Whether carrying out this action changes the table.
    pub fn changes_table(&self) -> bool {
        matches!(self.kind, ActionKind::Grow | ActionKind::Create)
            || self.set_label
            || self.set_uuid
    }
}

/// A definition left out because the partitions did not all fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Definition file name.
    pub definition: String,
    /// Its `Priority=`.
    pub priority: i32,
}

/// The backup GPT is not at the end of the disk (a short image written to a larger disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackupMove {
    /// Last usable LBA the current table declares.
    pub last_usable_before: u64,
    /// Last usable LBA once the backup GPT sits at the disk's end.
    pub last_usable_after: u64,
}

/// The outcome of [`plan`]: printable ([`fmt::Display`], a table) and serialisable (`--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Disk size in bytes.
    pub disk_bytes: u64,
    /// Logical sector size.
    pub sector_size: u64,
    /// The disk had no partition table: a new one is written.
    pub new_table: bool,
    /// Disk GUID after the plan.
    #[serde(serialize_with = "serialize_guid")]
    pub disk_guid: Guid,
    /// The disk GUID is set (new table, or an all-zero one).
    pub set_disk_guid: bool,
    /// First usable LBA after the plan (never changed on an existing table).
    pub first_usable_lba: u64,
    /// Last usable LBA after the plan (the disk's end minus the backup GPT).
    pub last_usable_lba: u64,
    /// Set when the backup GPT must move to the end of the disk.
    pub backup_move: Option<BackupMove>,
    /// Every partition of the resulting table, in entry-number order.
    pub actions: Vec<Action>,
    /// Definitions dropped for lack of space (by priority).
    pub dropped: Vec<Dropped>,
    /// Nothing to write: the table already matches the definitions.
    pub nothing_to_do: bool,
    /// The table to write (validated against the disk geometry).
    #[serde(skip)]
    pub table_after: Table,
}

impl Plan {
    /// The geometry the plan was made for.
    pub fn geometry(&self) -> Result<Geometry, GptError> {
        Geometry::new(self.disk_bytes, self.sector_size)
    }
}

pub(super) fn round_up(v: u64, grain: u64) -> u64 {
    v.div_ceil(grain).saturating_mul(grain)
}

pub(super) fn round_down(v: u64, grain: u64) -> u64 {
    v / grain * grain
}

/// Plans `definitions` (in file order) against `current` (`None`: a disk without a partition
/// table) on a disk of `disk_bytes`. Pure and deterministic: the same inputs give the same plan.
pub fn plan(
    definitions: &[Definition],
    current: Option<&Table>,
    disk_bytes: u64,
    seed: Guid,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let geometry = Geometry::new(disk_bytes, options.sector_size).map_err(PlanError::Geometry)?;
    let max_last = geometry.max_last_usable_lba();
    let (base, new_table, backup_move) = match current {
        None => {
            let min = geometry.min_first_usable_lba();
            if options.first_usable_lba < min || options.first_usable_lba > max_last {
                return Err(PlanError::FirstUsable {
                    first_usable: options.first_usable_lba,
                    min,
                    max: max_last,
                });
            }
            let table = Table {
                disk_guid: Guid::NIL,
                first_usable_lba: options.first_usable_lba,
                last_usable_lba: max_last,
                partitions: Vec::new(),
            };
            (table, true, None)
        }
        Some(t) => {
            if t.last_usable_lba > max_last {
                return Err(PlanError::TableExceedsDisk {
                    last_usable: t.last_usable_lba,
                    max: max_last,
                });
            }
            t.validate(&geometry)
                .map_err(|source| PlanError::InvalidTable { disk_bytes, source })?;
            let backup_move = (t.last_usable_lba < max_last).then_some(BackupMove {
                last_usable_before: t.last_usable_lba,
                last_usable_after: max_last,
            });
            let mut table = t.clone();
            table.last_usable_lba = max_last;
            table.partitions.sort_by_key(|p| p.number);
            (table, false, backup_move)
        }
    };
    let input = Input {
        definitions,
        partitions: &base.partitions,
        sector: options.sector_size,
        grain: options.sector_size.max(4096),
        start: base.first_usable_lba.max(options.first_usable_lba) * options.sector_size,
        end: (max_last + 1) * options.sector_size,
    };
    let mut ctx = match input.layout(0) {
        Ok(ctx) => ctx,
        Err(failure) => return Err(input.explain(failure, disk_bytes)),
    };
    ctx.acquire_uuids_and_labels(seed)?;

    let set_disk_guid = base.disk_guid.is_nil();
    let disk_guid = if set_disk_guid {
        derive_uuid(seed, "disk-uuid")
    } else {
        base.disk_guid
    };
    let mut table_after = base.clone();
    table_after.disk_guid = disk_guid;
    let mut actions = Vec::new();
    let mut dropped = Vec::new();
    for s in &ctx.slots {
        if s.dropped {
            if let Some(d) = s.def {
                dropped.push(Dropped {
                    definition: d.name().to_owned(),
                    priority: d.priority(),
                });
            }
            continue;
        }
        let Some(action) = ctx.action(s) else {
            continue;
        };
        match s.existing {
            Some(p) => {
                if let Some(entry) = table_after
                    .partitions
                    .iter_mut()
                    .find(|q| q.number == p.number)
                {
                    entry.last_lba = entry.first_lba + action.sectors - 1;
                    entry.name.clone_from(&action.label);
                    entry.uuid = action.uuid;
                }
            }
            None => table_after.partitions.push(Partition {
                number: action.number,
                type_guid: action.type_guid,
                uuid: action.uuid,
                first_lba: action.start_lba,
                last_lba: action.start_lba + action.sectors - 1,
                attributes: action.attributes,
                name: action.label.clone(),
            }),
        }
        actions.push(action);
    }
    table_after.partitions.sort_by_key(|p| p.number);
    actions.sort_by_key(|a| a.number);
    table_after
        .validate(&geometry)
        .map_err(PlanError::InvalidResult)?;
    let nothing_to_do = !new_table
        && backup_move.is_none()
        && !set_disk_guid
        && !actions.iter().any(Action::changes_table);
    for d in &dropped {
        log::info!(
            "{} (priority {}) does not fit and is dropped",
            d.definition,
            d.priority
        );
    }
    Ok(Plan {
        disk_bytes,
        sector_size: options.sector_size,
        new_table,
        disk_guid,
        set_disk_guid,
        first_usable_lba: table_after.first_usable_lba,
        last_usable_lba: table_after.last_usable_lba,
        backup_move,
        actions,
        dropped,
        nothing_to_do,
        table_after,
    })
}
