//! Free areas and how their space is shared (steps 2 and 4): systemd's `Context`, with its
//! over-charge, under-charge and distribute phases, growth and placement. Pure.

use crate::definitions::{self, DEFAULT_MIN_SIZE};
use crate::gpt::{ENTRY_COUNT, Guid, PartitionId};

use super::layout::{Failure, Slot, partition_id};
use super::uuid::partition_uuid;
use super::{
    ATTR_GROWFS, ATTR_READ_ONLY, Action, ActionKind, HARD_MIN_SIZE, PlanError, round_down, round_up,
};

/// A free area (systemd's `FreeArea`).
#[derive(Debug, Clone)]
pub(super) struct Area {
    /// The partition right before it; `None` for the area of a disk without partitions.
    pub(super) after: Option<usize>,
    pub(super) size: u64,
    pub(super) allocated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Overcharge,
    Undercharge,
    Distribute,
}

/// systemd's `Context`: slots in list order (definitions in file order, then foreign
/// partitions), areas in discovery order, `order` = areas sorted smallest first.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    pub(super) grain: u64,
    pub(super) sector: u64,
    pub(super) start: u64,
    pub(super) slots: Vec<Slot<'a>>,
    pub(super) areas: Vec<Area>,
    pub(super) order: Vec<usize>,
}

impl Ctx<'_> {
    pub(super) fn min_size(&self, s: &Slot<'_>) -> u64 {
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
    pub(super) fn max_size(&self, s: &Slot<'_>) -> Option<u64> {
        let Some(d) = s.def else {
            return s.current_size;
        };
        d.size_max().map(|m| {
            let sm = round_down(m, self.grain);
            let sm = s.current_size.map_or(sm, |c| c.max(sm));
            sm.max(self.min_size(s))
        })
    }

    pub(super) fn min_size_with_padding(&self, s: &Slot<'_>) -> u64 {
        let sz = self.min_size(s) + s.padding_min().unwrap_or(0);
        match (s.existing, s.offset) {
            (Some(_), Some(off)) => round_up(off + sz, self.grain) - off,
            _ => round_up(sz, self.grain),
        }
    }

    /// End of the partition before an area, rounded up to the grain.
    pub(super) fn after_end(&self, s: &Slot<'_>) -> u64 {
        round_up(
            s.offset.unwrap_or(0) + s.current_size.unwrap_or(0),
            self.grain,
        )
    }

    pub(super) fn available_for_new(&self, a: &Area) -> u64 {
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

    pub(super) fn allocate(&mut self) -> Result<(), Failure> {
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
    pub(super) fn existing_failure(&self, i: usize, needed: u64, available: u64) -> Failure {
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
    pub(super) fn drop_one_priority(&mut self) -> bool {
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

    pub(super) fn grow(&mut self) {
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

    pub(super) fn in_area(s: &Slot<'_>, a: usize) -> bool {
        s.allocated_to == Some(a) || s.padding_area == Some(a)
    }

    pub(super) fn charge(&self, span: u64, amount: u64) -> u64 {
        span.saturating_sub(round_up(amount, self.grain))
    }

    pub(super) fn grow_area(&mut self, a: usize) {
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
    pub(super) fn donate(&mut self, i: usize, span: u64) -> u64 {
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
    pub(super) fn grow_phase(
        &mut self,
        a: usize,
        phase: Phase,
        span: &mut u64,
        weight_sum: &mut u64,
    ) -> bool {
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

    pub(super) fn place(&mut self) -> Result<(), Failure> {
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
    pub(super) fn acquire_uuids_and_labels(&mut self, seed: Guid) -> Result<(), PlanError> {
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

    pub(super) fn uuid_taken(&self, u: Guid, except: usize) -> bool {
        self.slots.iter().enumerate().any(|(j, q)| {
            j != except && (q.existing.is_some_and(|p| p.uuid == u) || q.new_uuid == Some(u))
        })
    }

    pub(super) fn owner_of(&self, u: Guid, except: usize) -> Option<PartitionId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != except)
            .find_map(|(_, q)| q.existing.filter(|p| p.uuid == u).map(partition_id))
    }

    /// systemd's `partition_acquire_label()`: the type's name, made unique among the partitions
    /// before it with `-2`, `-3`, ...
    pub(super) fn derive_label(&self, i: usize) -> String {
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
    pub(super) fn action(&self, s: &Slot<'_>) -> Option<Action> {
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
