//! One layout attempt (steps 1, 3 and 5 of the module documentation): matching existing
//! partitions to definitions, allocation with priority drops, and the [`Slot`] each partition
//! becomes. Pure.

use crate::definitions::Definition;
use crate::gpt::{ENTRY_COUNT, Guid, Partition, PartitionId};

use super::space::{Area, Ctx};
use super::{PlanError, round_down, round_up};

/// Everything [`Input::layout`] needs; byte offsets throughout, like systemd.
#[derive(Debug)]
pub(super) struct Input<'a> {
    pub(super) definitions: &'a [Definition],
    /// Existing partitions in entry order.
    pub(super) partitions: &'a [Partition],
    pub(super) sector: u64,
    pub(super) grain: u64,
    /// Lowest byte a partition may start at when the disk has no partitions.
    pub(super) start: u64,
    /// End (exclusive) of the usable range in bytes.
    pub(super) end: u64,
}

/// Why a layout attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
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
    pub(super) fn layout(&self, extra: u64) -> Result<Ctx<'a>, Failure> {
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
    pub(super) fn explain(&self, failure: Failure, disk_bytes: u64) -> PlanError {
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
    pub(super) fn shortfall(&self) -> Option<u64> {
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
    pub(super) fn foreign(&self) -> Vec<PartitionId> {
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

pub(super) fn partition_id(p: &Partition) -> PartitionId {
    PartitionId {
        number: p.number,
        name: p.name.clone(),
    }
}

/// One partition, existing and/or defined (systemd's `Partition`).
#[derive(Debug, Clone)]
pub(super) struct Slot<'a> {
    /// `None`: a foreign partition.
    pub(super) def: Option<&'a Definition>,
    pub(super) existing: Option<&'a Partition>,
    pub(super) type_guid: Guid,
    pub(super) dropped: bool,
    pub(super) offset: Option<u64>,
    pub(super) current_size: Option<u64>,
    pub(super) current_padding: Option<u64>,
    pub(super) new_size: Option<u64>,
    pub(super) new_padding: Option<u64>,
    /// The free area right after this (existing) partition.
    pub(super) padding_area: Option<usize>,
    /// The free area this new partition goes into.
    pub(super) allocated_to: Option<usize>,
    pub(super) number: Option<u32>,
    pub(super) new_uuid: Option<Guid>,
    pub(super) new_label: Option<String>,
}

impl<'a> Slot<'a> {
    pub(super) fn new(def: &'a Definition) -> Self {
        Slot {
            def: Some(def),
            type_guid: def.type_guid(),
            new_uuid: def.uuid(),
            new_label: def.label().map(str::to_owned),
            ..Slot::new_empty()
        }
    }

    pub(super) fn foreign(p: &'a Partition) -> Self {
        Slot {
            def: None,
            type_guid: p.type_guid,
            ..Slot::new_empty()
        }
    }

    pub(super) fn new_empty() -> Self {
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

    pub(super) fn name(&self) -> String {
        match (self.def, self.existing) {
            (Some(d), _) => d.name().to_owned(),
            (None, Some(p)) => partition_id(p).to_string(),
            (None, None) => String::new(),
        }
    }

    pub(super) fn weight(&self) -> u64 {
        self.def.map_or(1000, |d| u64::from(d.weight()))
    }

    pub(super) fn padding_weight(&self) -> u64 {
        self.def.map_or(0, |d| u64::from(d.padding_weight()))
    }

    pub(super) fn priority(&self) -> i32 {
        self.def.map_or(0, Definition::priority)
    }

    pub(super) fn padding_min(&self) -> Option<u64> {
        self.def.and_then(Definition::padding_min)
    }

    pub(super) fn padding_max(&self) -> Option<u64> {
        self.def.and_then(Definition::padding_max)
    }

    pub(super) fn current_label(&self) -> Option<&str> {
        self.existing
            .map(|p| p.name.as_str())
            .filter(|l| !l.is_empty())
    }
}
