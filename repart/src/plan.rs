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

use std::fmt;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::definitions::{self, DEFAULT_MIN_SIZE, Definition, Format};
use crate::gpt::{ENTRY_COUNT, Geometry, GptError, Guid, Partition, PartitionId, Table};
use crate::size::human;

/// systemd's hard lower limit for a new partition.
const HARD_MIN_SIZE: u64 = 4096;
/// The GrowFileSystem attribute (bit 59) systemd sets by default on new partitions of types
/// that know it ([`definitions::type_knows_growfs`]).
pub const ATTR_GROWFS: u64 = 1 << 59;

/// The ReadOnly attribute (bit 60) systemd sets by default on new verity partitions
/// ([`definitions::type_is_verity`]).
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

/// Why no plan could be made. Nothing has been written when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The disk size or sector size cannot hold a GPT.
    #[error("invalid disk geometry")]
    Geometry(#[source] GptError),
    /// The current table is not valid for the disk.
    #[error("the current partition table does not fit a disk of {disk_bytes} bytes")]
    InvalidTable {
        /// Disk size in bytes.
        disk_bytes: u64,
        /// The underlying error.
        #[source]
        source: GptError,
    },
    /// The current table reaches beyond the disk (an image written to a smaller disk).
    #[error(
        "the current partition table reaches LBA {last_usable}, beyond the disk's last usable \
         LBA {max}: the disk is smaller than the image written to it"
    )]
    TableExceedsDisk {
        /// The current table's last usable LBA.
        last_usable: u64,
        /// The disk's last usable LBA.
        max: u64,
    },
    /// The requested first usable LBA of a new table is outside what the disk allows.
    #[error(
        "first usable LBA {first_usable} for a new table is outside {min}..={max} on this disk"
    )]
    FirstUsable {
        /// First usable LBA.
        first_usable: u64,
        /// The lower bound.
        min: u64,
        /// The upper bound.
        max: u64,
    },
    /// A new partition does not fit in the free space.
    #[error(
        "{definition} does not fit: the largest free area holds {largest_free_bytes} bytes; \
         {}{}",
        shortfall_text(*.shortfall_bytes, Some(*.disk_bytes)),
        foreign_text(.foreign)
    )]
    DoesNotFit {
        /// The definition file.
        definition: String,
        /// Disk size in bytes.
        disk_bytes: u64,
        /// The largest free area in bytes.
        largest_free_bytes: u64,
        /// How many more bytes at the end of the disk would make everything fit.
        shortfall_bytes: Option<u64>,
        /// Foreign partitions on the disk (they take space the definitions cannot use).
        foreign: Vec<PartitionId>,
    },
    /// An existing partition must grow but the space after it is not free.
    #[error(
        "{partition}, matched by {definition}, must grow to {needed_bytes} bytes but only \
         {available_bytes} bytes are free up to {}; {}",
        next.as_ref().map_or_else(|| "the end of the disk".to_owned(), ToString::to_string),
        shortfall_text(*.shortfall_bytes, None)
    )]
    ExistingCannotGrow {
        /// The definition file.
        definition: String,
        /// The partition.
        partition: PartitionId,
        /// The size it must reach in bytes.
        needed_bytes: u64,
        /// Bytes free after it.
        available_bytes: u64,
        /// The partition in the way, if it is not the end of the disk.
        next: Option<PartitionId>,
        /// How many more bytes at the end of the disk would make everything fit.
        shortfall_bytes: Option<u64>,
    },
    /// A new partition would need a number beyond the table's entries.
    #[error("{definition} would be partition {number}, beyond the {max} entries of the table")]
    TooManyPartitions {
        /// The definition file.
        definition: String,
        /// The partition number it would get.
        number: u64,
        /// The upper bound.
        max: u32,
    },
    /// A definition's `UUID=` is already used by another partition.
    #[error("{definition}: UUID={uuid} is already the UUID of {partition}")]
    UuidInUse {
        /// The definition file.
        definition: String,
        /// The UUID.
        uuid: Guid,
        /// The partition.
        partition: PartitionId,
    },
    /// The planned table fails validation (a bug in the planner).
    #[error("the planned table is invalid (a bug in the planner)")]
    InvalidResult(#[source] GptError),
}

fn shortfall_text(shortfall: Option<u64>, disk_bytes: Option<u64>) -> String {
    match (shortfall, disk_bytes) {
        (Some(s), Some(d)) => format!(
            "the disk is {s} bytes too small (at least {} bytes needed)",
            d.saturating_add(s)
        ),
        (Some(s), None) => format!("the disk is {s} bytes too small"),
        (None, _) => "a larger disk would not help".to_owned(),
    }
}

fn foreign_text(foreign: &[PartitionId]) -> String {
    if foreign.is_empty() {
        return String::new();
    }
    let list: Vec<String> = foreign.iter().map(ToString::to_string).collect();
    format!("; foreign partitions in the way: {}", list.join(", "))
}

/// HMAC-SHA256 of `token` keyed with `key`, first half, marked as a v4 UUID: systemd's
/// `derive_uuid()`. The disk GUID of a new table is `derive_uuid(seed, "disk-uuid")`; systemd
/// derives a new file system's UUID as `derive_uuid(partition_uuid, "file-system-uuid")`.
pub fn derive_uuid(key: Guid, token: &str) -> Guid {
    v4(hmac_sha256(&key.to_bytes(), token.as_bytes()))
}

/// systemd's `partition_acquire_uuid()`: HMAC-SHA256(seed, type) for the first partition of a
/// type, HMAC-SHA256(seed, type || le64(k)) for the k-th later one.
fn partition_uuid(seed: Guid, type_guid: Guid, k: u64, retry: u64) -> Guid {
    let mut msg = type_guid.to_bytes().to_vec();
    if k > 0 || retry > 0 {
        msg.extend_from_slice(&k.to_le_bytes());
    }
    if retry > 0 {
        // Not systemd: it randomises on a collision, a plan must stay deterministic.
        msg.extend_from_slice(b"atomix-retry");
        msg.extend_from_slice(&retry.to_le_bytes());
    }
    v4(hmac_sha256(&seed.to_bytes(), &msg))
}

fn v4(digest: [u8; 32]) -> Guid {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Guid::from_bytes(b)
}

/// RFC 2104 HMAC with SHA-256.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn serialize_guid<S: Serializer>(g: &Guid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(g)
}

pub(crate) fn serialize_opt_guid<S: Serializer>(g: &Option<Guid>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.collect_str(g),
        None => s.serialize_none(),
    }
}

fn round_up(v: u64, grain: u64) -> u64 {
    v.div_ceil(grain).saturating_mul(grain)
}

fn round_down(v: u64, grain: u64) -> u64 {
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

/// Everything [`Input::layout`] needs; byte offsets throughout, like systemd.
#[derive(Debug)]
struct Input<'a> {
    definitions: &'a [Definition],
    /// Existing partitions in entry order.
    partitions: &'a [Partition],
    sector: u64,
    grain: u64,
    /// Lowest byte a partition may start at when the disk has no partitions.
    start: u64,
    /// End (exclusive) of the usable range in bytes.
    end: u64,
}

/// Why a layout attempt failed.
#[derive(Debug)]
enum Failure {
    NoFit {
        definition: String,
        largest_free: u64,
    },
    Existing {
        definition: String,
        partition: PartitionId,
        needed: u64,
        available: u64,
        next: Option<PartitionId>,
    },
    TooMany {
        definition: String,
        number: u64,
    },
}

impl<'a> Input<'a> {
    /// Matching, allocation (with priority drops), growth and placement, with `extra` bytes added
    /// at the end of the usable range (0 for the real disk; more to measure a shortfall).
    fn layout(&self, extra: u64) -> Result<Ctx<'a>, Failure> {
        let mut ctx = Ctx {
            grain: self.grain,
            sector: self.sector,
            start: round_up(self.start, self.grain),
            slots: self.definitions.iter().map(Slot::new).collect(),
            areas: Vec::new(),
            order: Vec::new(),
        };
        let end = self.end.saturating_add(extra);
        for p in self.partitions {
            let matched = ctx.slots.iter().position(|s| {
                s.def.is_some() && s.existing.is_none() && s.type_guid == p.type_guid
            });
            let index = match matched {
                Some(i) => i,
                None => {
                    ctx.slots.push(Slot::foreign(p));
                    ctx.slots.len() - 1
                }
            };
            let slot = &mut ctx.slots[index];
            slot.existing = Some(p);
            slot.offset = Some(p.first_lba * self.sector);
            slot.current_size = Some(p.sectors() * self.sector);
            // The gap after the partition, to the next partition or the end of the usable range.
            let from = (p.last_lba + 1) * self.sector;
            let next = self
                .partitions
                .iter()
                .map(|q| q.first_lba * self.sector)
                .filter(|&start| start >= from)
                .min()
                .unwrap_or(end);
            let padding = round_down(next, self.grain).saturating_sub(round_up(from, self.grain));
            slot.current_padding = Some(padding);
            if padding > 0 {
                slot.padding_area = Some(ctx.areas.len());
                ctx.areas.push(Area {
                    after: Some(index),
                    size: padding,
                    allocated: 0,
                });
            }
        }
        if self.partitions.is_empty() {
            let last = round_down(end, self.grain);
            if last > ctx.start {
                ctx.areas.push(Area {
                    after: None,
                    size: last - ctx.start,
                    allocated: 0,
                });
            }
        }
        ctx.order = (0..ctx.areas.len()).collect();
        loop {
            match ctx.allocate() {
                Ok(()) => break,
                Err(failure @ Failure::NoFit { .. }) => {
                    if !ctx.drop_one_priority() {
                        return Err(failure);
                    }
                }
                Err(failure) => return Err(failure),
            }
        }
        ctx.grow();
        ctx.place()?;
        Ok(ctx)
    }

    /// Turns a failed layout into an error, measuring how much disk is missing.
    fn explain(&self, failure: Failure, disk_bytes: u64) -> PlanError {
        let shortfall = self.shortfall();
        match failure {
            Failure::NoFit {
                definition,
                largest_free,
            } => PlanError::DoesNotFit {
                definition,
                disk_bytes,
                largest_free_bytes: largest_free,
                shortfall_bytes: shortfall,
                foreign: self.foreign(),
            },
            Failure::Existing {
                definition,
                partition,
                needed,
                available,
                next,
            } => PlanError::ExistingCannotGrow {
                definition,
                partition,
                needed_bytes: needed,
                available_bytes: available,
                next,
                shortfall_bytes: shortfall,
            },
            Failure::TooMany { definition, number } => PlanError::TooManyPartitions {
                definition,
                number,
                max: ENTRY_COUNT,
            },
        }
    }

    /// The least number of bytes (a multiple of the grain) that, added at the end of the disk,
    /// makes the layout succeed; `None` if no size would.
    fn shortfall(&self) -> Option<u64> {
        let fits = |extra| self.layout(extra).is_ok();
        let mut hi = self.grain;
        while !fits(hi) {
            hi = hi.checked_mul(2).filter(|&h| h < 1 << 62)?;
        }
        let mut lo = 0; // known not to fit
        while hi - lo > self.grain {
            let mid = round_down(lo + (hi - lo) / 2, self.grain);
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// The existing partitions no definition matches.
    fn foreign(&self) -> Vec<PartitionId> {
        let mut seen = std::collections::HashMap::<Guid, usize>::new();
        self.partitions
            .iter()
            .filter(|p| {
                let n = seen.entry(p.type_guid).or_insert(0);
                *n += 1;
                self.definitions
                    .iter()
                    .filter(|d| d.type_guid() == p.type_guid)
                    .count()
                    < *n
            })
            .map(partition_id)
            .collect()
    }
}

fn partition_id(p: &Partition) -> PartitionId {
    PartitionId {
        number: p.number,
        name: p.name.clone(),
    }
}

/// One partition, existing and/or defined (systemd's `Partition`).
#[derive(Debug, Clone)]
struct Slot<'a> {
    /// `None`: a foreign partition.
    def: Option<&'a Definition>,
    existing: Option<&'a Partition>,
    type_guid: Guid,
    dropped: bool,
    offset: Option<u64>,
    current_size: Option<u64>,
    current_padding: Option<u64>,
    new_size: Option<u64>,
    new_padding: Option<u64>,
    /// The free area right after this (existing) partition.
    padding_area: Option<usize>,
    /// The free area this new partition goes into.
    allocated_to: Option<usize>,
    number: Option<u32>,
    new_uuid: Option<Guid>,
    new_label: Option<String>,
}

impl<'a> Slot<'a> {
    fn new(def: &'a Definition) -> Self {
        Slot {
            def: Some(def),
            existing: None,
            type_guid: def.type_guid(),
            dropped: false,
            offset: None,
            current_size: None,
            current_padding: None,
            new_size: None,
            new_padding: None,
            padding_area: None,
            allocated_to: None,
            number: None,
            new_uuid: def.uuid(),
            new_label: def.label().map(str::to_owned),
        }
    }

    fn foreign(p: &'a Partition) -> Self {
        Slot {
            def: None,
            type_guid: p.type_guid,
            ..Slot::new_empty()
        }
    }

    fn new_empty() -> Self {
        Slot {
            def: None,
            existing: None,
            type_guid: Guid::NIL,
            dropped: false,
            offset: None,
            current_size: None,
            current_padding: None,
            new_size: None,
            new_padding: None,
            padding_area: None,
            allocated_to: None,
            number: None,
            new_uuid: None,
            new_label: None,
        }
    }

    fn name(&self) -> String {
        match (self.def, self.existing) {
            (Some(d), _) => d.name().to_owned(),
            (None, Some(p)) => partition_id(p).to_string(),
            (None, None) => String::new(),
        }
    }

    fn weight(&self) -> u64 {
        self.def.map_or(1000, |d| u64::from(d.weight()))
    }

    fn padding_weight(&self) -> u64 {
        self.def.map_or(0, |d| u64::from(d.padding_weight()))
    }

    fn priority(&self) -> i32 {
        self.def.map_or(0, Definition::priority)
    }

    fn padding_min(&self) -> Option<u64> {
        self.def.and_then(Definition::padding_min)
    }

    fn padding_max(&self) -> Option<u64> {
        self.def.and_then(Definition::padding_max)
    }

    fn current_label(&self) -> Option<&str> {
        self.existing
            .map(|p| p.name.as_str())
            .filter(|l| !l.is_empty())
    }
}

/// A free area (systemd's `FreeArea`).
#[derive(Debug, Clone)]
struct Area {
    /// The partition right before it; `None` for the area of a disk without partitions.
    after: Option<usize>,
    size: u64,
    allocated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Overcharge,
    Undercharge,
    Distribute,
}

/// systemd's `Context`: slots in list order (definitions in file order, then foreign
/// partitions), areas in discovery order, `order` = areas sorted smallest first.
#[derive(Debug)]
struct Ctx<'a> {
    grain: u64,
    sector: u64,
    start: u64,
    slots: Vec<Slot<'a>>,
    areas: Vec<Area>,
    order: Vec<usize>,
}

impl Ctx<'_> {
    fn min_size(&self, s: &Slot<'_>) -> u64 {
        let Some(d) = s.def else {
            return s.current_size.unwrap_or(0);
        };
        let mut sz = s.current_size.unwrap_or(HARD_MIN_SIZE);
        if s.existing.is_none() && d.format().is_some() {
            // systemd knows no minimum for vfat/f2fs and assumes one grain.
            sz = sz.max(self.grain);
        }
        round_up(d.size_min().unwrap_or(DEFAULT_MIN_SIZE), self.grain).max(sz)
    }

    /// `None`: unlimited.
    fn max_size(&self, s: &Slot<'_>) -> Option<u64> {
        let Some(d) = s.def else {
            return s.current_size;
        };
        d.size_max().map(|m| {
            let sm = round_down(m, self.grain);
            let sm = s.current_size.map_or(sm, |c| c.max(sm));
            sm.max(self.min_size(s))
        })
    }

    fn min_size_with_padding(&self, s: &Slot<'_>) -> u64 {
        let sz = self.min_size(s) + s.padding_min().unwrap_or(0);
        match (s.existing, s.offset) {
            (Some(_), Some(off)) => round_up(off + sz, self.grain) - off,
            _ => round_up(sz, self.grain),
        }
    }

    /// End of the partition before an area, rounded up to the grain.
    fn after_end(&self, s: &Slot<'_>) -> u64 {
        round_up(
            s.offset.unwrap_or(0) + s.current_size.unwrap_or(0),
            self.grain,
        )
    }

    fn available_for_new(&self, a: &Area) -> u64 {
        let avail = a.size - a.allocated;
        match a.after {
            Some(i) => {
                let s = &self.slots[i];
                let off = s.offset.unwrap_or(0);
                let space_end = self.after_end(s) + avail;
                let new_end = round_up(off + self.min_size_with_padding(s), self.grain);
                space_end.saturating_sub(new_end)
            }
            None => avail,
        }
    }

    fn allocate(&mut self) -> Result<(), Failure> {
        for a in &mut self.areas {
            a.allocated = 0;
        }
        for s in &mut self.slots {
            if s.existing.is_none() {
                s.allocated_to = None;
            }
        }
        let mut order = self.order.clone();
        order.sort_by_key(|&i| self.available_for_new(&self.areas[i]));
        self.order = order;

        // Every existing partition must reach its minimum inside the space after it.
        for a in &self.areas {
            let Some(i) = a.after else { continue };
            let s = &self.slots[i];
            let off = s.offset.unwrap_or(0);
            let current_end = self.after_end(s) + a.size;
            let min_end = round_up(off + self.min_size_with_padding(s), self.grain);
            if current_end < min_end {
                return Err(self.existing_failure(i, min_end - off, current_end - off));
            }
        }
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.dropped || s.existing.is_some() {
                continue;
            }
            let required = self.min_size_with_padding(s);
            let found = self
                .order
                .iter()
                .copied()
                .find(|&a| self.available_for_new(&self.areas[a]) >= required);
            let Some(a) = found else {
                let largest_free = self
                    .order
                    .last()
                    .map_or(0, |&a| self.available_for_new(&self.areas[a]));
                return Err(Failure::NoFit {
                    definition: s.name(),
                    largest_free,
                });
            };
            self.slots[i].allocated_to = Some(a);
            self.areas[a].allocated += required;
        }
        Ok(())
    }

    /// An existing partition of slot `i` that cannot reach its minimum size.
    fn existing_failure(&self, i: usize, needed: u64, available: u64) -> Failure {
        let s = &self.slots[i];
        let end = s.offset.unwrap_or(0) + s.current_size.unwrap_or(0);
        let next = self
            .slots
            .iter()
            .filter_map(|q| q.existing)
            .filter(|q| q.first_lba * self.sector >= end)
            .min_by_key(|q| q.first_lba)
            .map(partition_id);
        Failure::Existing {
            definition: s.name(),
            partition: s.existing.map(partition_id).unwrap_or(PartitionId {
                number: 0,
                name: String::new(),
            }),
            needed,
            available,
            next,
        }
    }

    /// systemd v252's `context_drop_one_priority()`: drops every definition of the highest
    /// priority above 0, unless an existing partition has that priority.
    fn drop_one_priority(&mut self) -> bool {
        let mut priority = 0;
        let mut exists = false;
        for s in self.slots.iter().filter(|s| !s.dropped) {
            let p = s.priority();
            if p < priority {
                continue;
            }
            if p == priority {
                exists |= s.existing.is_some();
                continue;
            }
            priority = p;
            exists = s.existing.is_some();
        }
        if priority <= 0 || exists {
            return false;
        }
        for s in self.slots.iter_mut() {
            if !s.dropped && s.priority() >= priority {
                s.dropped = true;
                s.allocated_to = None;
            }
        }
        true
    }

    fn grow(&mut self) {
        for k in 0..self.order.len() {
            let a = self.order[k];
            self.grow_area(a);
        }
        for s in &mut self.slots {
            if s.dropped || s.existing.is_none() || s.padding_area.is_some() {
                continue;
            }
            s.new_size = s.current_size;
            s.new_padding = s.current_padding;
        }
    }

    fn in_area(s: &Slot<'_>, a: usize) -> bool {
        s.allocated_to == Some(a) || s.padding_area == Some(a)
    }

    fn charge(&self, span: u64, amount: u64) -> u64 {
        span.saturating_sub(round_up(amount, self.grain))
    }

    fn grow_area(&mut self, a: usize) {
        let mut weight_sum: u64 = self
            .slots
            .iter()
            .filter(|s| Self::in_area(s, a))
            .map(|s| s.weight() + s.padding_weight())
            .sum();
        let after = self.areas[a].after;
        let mut span = self.areas[a].size;
        if let Some(i) = after {
            let s = &self.slots[i];
            span += self.after_end(s) - s.offset.unwrap_or(0);
        }
        for phase in [Phase::Overcharge, Phase::Undercharge, Phase::Distribute] {
            while !self.grow_phase(a, phase, &mut span, &mut weight_sum) {}
        }

        // Leftovers: the partition before the area, then the new ones, then padding.
        if let Some(i) = after
            && span > 0
            && self.slots[i].def.is_some()
        {
            span = self.donate(i, span);
        }
        if span > 0 {
            for i in 0..self.slots.len() {
                let s = &self.slots[i];
                if s.allocated_to != Some(a) || s.def.is_none() {
                    continue;
                }
                span = self.donate(i, span);
                if span == 0 {
                    break;
                }
            }
        }
        if let Some(i) = after
            && span > 0
        {
            let s = &mut self.slots[i];
            s.new_padding = Some(s.new_padding.unwrap_or(0) + span);
        }
    }

    /// Grows slot `i` by up to `span` (within its maximum); returns what is left.
    fn donate(&mut self, i: usize, span: u64) -> u64 {
        let s = &self.slots[i];
        let new = s.new_size.unwrap_or(0);
        let mut m = new.max(round_down(new + span, self.grain));
        if let Some(x) = self.max_size(s) {
            m = m.min(x);
        }
        let left = self.charge(span, m - new);
        self.slots[i].new_size = Some(m);
        left
    }

    /// One pass of systemd v252's `context_grow_partitions_phase()`; `false` when a partition
    /// was fixed and the phase must start over.
    fn grow_phase(&mut self, a: usize, phase: Phase, span: &mut u64, weight_sum: &mut u64) -> bool {
        let scale = |value: u64, weight: u64, sum: u64| -> u64 {
            if weight == 0 {
                return 0;
            }
            // weight <= sum, so the quotient fits u64.
            u64::try_from(u128::from(value) * u128::from(weight) / u128::from(sum))
                .unwrap_or(u64::MAX)
        };
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !Self::in_area(s, a) {
                continue;
            }
            if s.new_size.is_none() {
                let share = scale(*span, s.weight(), *weight_sum);
                let rsz = self.min_size(s);
                let xsz = self.max_size(s);
                let chosen = match phase {
                    Phase::Overcharge if rsz > share => Some((rsz, true)),
                    Phase::Undercharge => xsz.filter(|&x| x < share).map(|x| (x, true)),
                    Phase::Distribute if s.def.is_none() => s.current_size.map(|c| (c, false)),
                    Phase::Distribute => Some((round_down(share, self.grain).max(rsz), false)),
                    _ => None,
                };
                if let Some((size, again)) = chosen {
                    let w = s.weight();
                    *span = self.charge(*span, size);
                    *weight_sum -= w;
                    self.slots[i].new_size = Some(size);
                    if again {
                        return false;
                    }
                }
            }
            let s = &self.slots[i];
            if s.new_padding.is_none() {
                let share = scale(*span, s.padding_weight(), *weight_sum);
                let chosen = match phase {
                    Phase::Overcharge => s.padding_min().filter(|&m| m > share).map(|m| (m, true)),
                    Phase::Undercharge => s.padding_max().filter(|&m| m < share).map(|m| (m, true)),
                    Phase::Distribute => Some((
                        round_down(share, self.grain).max(s.padding_min().unwrap_or(0)),
                        false,
                    )),
                };
                if let Some((padding, again)) = chosen {
                    let w = s.padding_weight();
                    *span = self.charge(*span, padding);
                    *weight_sum -= w;
                    self.slots[i].new_padding = Some(padding);
                    if again {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn place(&mut self) -> Result<(), Failure> {
        let mut next = u64::from(
            self.slots
                .iter()
                .filter_map(|s| s.existing.map(|p| p.number))
                .max()
                .unwrap_or(0),
        ) + 1;
        for k in 0..self.order.len() {
            let a = self.order[k];
            let mut start = match self.areas[a].after {
                Some(i) => {
                    let s = &self.slots[i];
                    s.offset.unwrap_or(0) + s.new_size.unwrap_or(0) + s.new_padding.unwrap_or(0)
                }
                None => self.start,
            };
            start = round_up(start, self.grain);
            for s in self.slots.iter_mut() {
                if s.allocated_to != Some(a) {
                    continue;
                }
                let number = u32::try_from(next)
                    .ok()
                    .filter(|&n| n <= ENTRY_COUNT)
                    .ok_or_else(|| Failure::TooMany {
                        definition: s.name(),
                        number: next,
                    })?;
                s.offset = Some(start);
                s.number = Some(number);
                next += 1;
                start += s.new_size.unwrap_or(0) + s.new_padding.unwrap_or(0);
            }
        }
        Ok(())
    }

    /// systemd's `context_acquire_partition_uuids_and_labels()`.
    fn acquire_uuids_and_labels(&mut self, seed: Guid) -> Result<(), PlanError> {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let Some(def) = s.def else { continue };
            let current_uuid = s.existing.map(|p| p.uuid).filter(|u| !u.is_nil());
            let uuid = match (current_uuid, s.new_uuid) {
                (Some(u), _) => u,
                (None, Some(u)) => {
                    if let Some(p) = self.owner_of(u, i) {
                        return Err(PlanError::UuidInUse {
                            definition: def.name().to_owned(),
                            uuid: u,
                            partition: p,
                        });
                    }
                    u
                }
                (None, None) => {
                    let k = self.slots[..i]
                        .iter()
                        .filter(|q| q.type_guid == s.type_guid)
                        .count() as u64;
                    let mut retry = 0;
                    loop {
                        let u = partition_uuid(seed, s.type_guid, k, retry);
                        if !self.uuid_taken(u, i) {
                            break u;
                        }
                        retry += 1;
                    }
                }
            };
            let label = match (s.current_label(), &s.new_label) {
                (Some(l), _) => l.to_owned(),
                (None, Some(l)) => l.clone(),
                (None, None) => self.derive_label(i),
            };
            let s = &mut self.slots[i];
            s.new_uuid = Some(uuid);
            s.new_label = Some(label);
        }
        Ok(())
    }

    fn uuid_taken(&self, u: Guid, except: usize) -> bool {
        self.slots.iter().enumerate().any(|(j, q)| {
            j != except && (q.existing.is_some_and(|p| p.uuid == u) || q.new_uuid == Some(u))
        })
    }

    fn owner_of(&self, u: Guid, except: usize) -> Option<PartitionId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != except)
            .find_map(|(_, q)| q.existing.filter(|p| p.uuid == u).map(partition_id))
    }

    /// systemd's `partition_acquire_label()`: the type's name, made unique among the partitions
    /// before it with `-2`, `-3`, ...
    fn derive_label(&self, i: usize) -> String {
        let prefix =
            definitions::type_name(self.slots[i].type_guid).unwrap_or_else(|| "linux".to_owned());
        let mut label = prefix.clone();
        let mut k = 1;
        while self.slots[..i].iter().any(|q| {
            q.current_label() == Some(label.as_str()) || q.new_label.as_deref() == Some(&label)
        }) {
            k += 1;
            label = format!("{prefix}-{k}");
        }
        label
    }

    /// The action of a non-dropped slot (`None` only for a slot that is neither defined nor
    /// existing, which matching never makes).
    fn action(&self, s: &Slot<'_>) -> Option<Action> {
        let to_sectors = |bytes: Option<u64>| bytes.unwrap_or(0) / self.sector;
        let type_name = definitions::type_name(s.type_guid);
        let Some(def) = s.def else {
            let p = s.existing?;
            return Some(Action {
                kind: ActionKind::Foreign,
                number: p.number,
                definition: None,
                label: p.name.clone(),
                type_guid: p.type_guid,
                type_name,
                uuid: p.uuid,
                start_lba: p.first_lba,
                sectors: p.sectors(),
                old_sectors: Some(p.sectors()),
                attributes: p.attributes,
                set_label: false,
                set_uuid: false,
                format: None,
                make_directories: Vec::new(),
            });
        };
        let label = s.new_label.clone().unwrap_or_default();
        let uuid = s.new_uuid.unwrap_or(Guid::NIL);
        let sectors = to_sectors(s.new_size);
        let common =
            |kind, number, start_lba, old_sectors, attributes, set_label, set_uuid| Action {
                kind,
                number,
                definition: Some(def.name().to_owned()),
                label: label.clone(),
                type_guid: s.type_guid,
                type_name: type_name.clone(),
                uuid,
                start_lba,
                sectors,
                old_sectors,
                attributes,
                set_label,
                set_uuid,
                format: def.format(),
                make_directories: def.make_directories().to_vec(),
            };
        Some(match s.existing {
            Some(p) => {
                let kind = if sectors > p.sectors() {
                    ActionKind::Grow
                } else {
                    ActionKind::Keep
                };
                common(
                    kind,
                    p.number,
                    p.first_lba,
                    Some(p.sectors()),
                    p.attributes,
                    label != p.name,
                    uuid != p.uuid,
                )
            }
            None => {
                let mut attributes = 0;
                if definitions::type_knows_growfs(s.type_guid) {
                    attributes |= ATTR_GROWFS;
                }
                if definitions::type_is_verity(s.type_guid) {
                    attributes |= ATTR_READ_ONLY;
                }
                common(
                    ActionKind::Create,
                    s.number.unwrap_or(0),
                    to_sectors(s.offset),
                    None,
                    attributes,
                    false,
                    false,
                )
            }
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "disk: {} bytes ({}), {} sectors of {} bytes, GPT {}{}",
            self.disk_bytes,
            human(self.disk_bytes),
            self.disk_bytes / self.sector_size,
            self.sector_size,
            self.disk_guid,
            if self.new_table {
                " (new table)"
            } else if self.set_disk_guid {
                " (set)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "usable LBAs: {}..={}",
            self.first_usable_lba, self.last_usable_lba
        )?;
        if let Some(m) = self.backup_move {
            writeln!(
                f,
                "backup GPT moves to the end of the disk: last usable LBA {} -> {}",
                m.last_usable_before, m.last_usable_after
            )?;
        }
        writeln!(
            f,
            "{:>3}  {:<7}  {:<14}  {:<14}  {:>10}  {:>10}  {:>10}  {:<36}  definition",
            "#", "action", "label", "type", "start LBA", "sectors", "size", "uuid"
        )?;
        for a in &self.actions {
            let mut size = human(a.sectors * self.sector_size);
            if let (ActionKind::Grow, Some(old)) = (a.kind, a.old_sectors) {
                size = format!("{} -> {size}", human(old * self.sector_size));
            }
            let mut notes = Vec::new();
            if a.set_label {
                notes.push("label set".to_owned());
            }
            if a.set_uuid {
                notes.push("uuid set".to_owned());
            }
            if a.kind == ActionKind::Create {
                if let Some(fmt) = a.format {
                    notes.push(fmt.to_string());
                }
                if !a.make_directories.is_empty() {
                    notes.push(format!("dirs {}", a.make_directories.join(" ")));
                }
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", notes.join(", "))
            };
            writeln!(
                f,
                "{:>3}  {:<7}  {:<14}  {:<14}  {:>10}  {:>10}  {:>10}  {:<36}  {}{notes}",
                a.number,
                a.kind.to_string(),
                a.label,
                a.type_name
                    .clone()
                    .unwrap_or_else(|| a.type_guid.to_string()),
                a.start_lba,
                a.sectors,
                size,
                a.uuid.to_string(),
                a.definition.as_deref().unwrap_or("-"),
            )?;
        }
        for d in &self.dropped {
            writeln!(
                f,
                "dropped: {} (priority {}) does not fit",
                d.definition, d.priority
            )?;
        }
        if self.nothing_to_do {
            writeln!(f, "nothing to do")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // keys longer than a block are hashed first (RFC 4231 case 6)
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(mac[..4], [0x60, 0xe4, 0x31, 0x59]);
    }

    #[test]
    fn derived_uuids_are_v4_and_keyed() {
        let seed = Guid::from_u128(0x11111111_2222_3333_4444_555555555555);
        let a = derive_uuid(seed, "disk-uuid");
        assert_eq!(a, derive_uuid(seed, "disk-uuid"));
        assert_ne!(a, derive_uuid(Guid::from_u128(1), "disk-uuid"));
        assert_eq!(a.to_bytes()[6] >> 4, 4);
        assert_eq!(a.to_bytes()[8] & 0xc0, 0x80);
        let t = crate::gpt::types::XBOOTLDR;
        assert_ne!(partition_uuid(seed, t, 0, 0), partition_uuid(seed, t, 1, 0));
        assert_ne!(partition_uuid(seed, t, 1, 0), partition_uuid(seed, t, 1, 1));
    }
}
