//! The repart stage's decisions: whether to repartition, against which disk, whether the disk
//! already matches, the repart modules, and what a failure means under `atomix.repart=`.
//!
//! Must not: plan or write itself (`atomix_repart` does, through [`RepartDisk`]).

use std::fmt;
use std::path::Path;

use atomix_repart::definitions::DefinitionError;
use atomix_repart::plan::{self as repart_plan, ActionKind, PlanOptions};

use super::fresh_flash::FlashedDisk;
use super::{REPART_D, REPART_MOUNT_DIR, RepartDisk, RepartError, reason_name};
use crate::cmdline::RepartMode;
use crate::modules::{self, MODULES_REPART_LOAD};
use crate::report::{RepartOutcome, RepartRecord, Report};
use crate::system::{Clock, Files, ModuleLoader};

/// Why the repart stage did not look at the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `atomix.repart=off`.
    Off,
    /// The slot is a whole disk.
    NotAPartition,
    /// [`REPART_D`] is empty.
    NoDefinitions,
    /// The initramfs has no [`REPART_D`].
    NoRepartD,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Off => f.write_str("atomix.repart=off"),
            Skip::NotAPartition => f.write_str("the slot is not a partition"),
            Skip::NoDefinitions => write!(f, "no definitions in {REPART_D}"),
            Skip::NoRepartD => write!(f, "no {REPART_D} in the initramfs"),
        }
    }
}

/// How the repart stage ended when it did not fail.
enum Done {
    Skipped(Skip),
    NothingToDo,
    Applied,
}

/// Applies the definitions in [`REPART_D`] to `found`'s disk, recording what happened in
/// `report.repart` (and the repart modules in `report.modules`). Returns the stage line's detail.
///
/// # Errors
///
/// Only with `atomix.repart=required`: why repartitioning failed. Otherwise a failure is
/// recorded and warned about, and the boot goes on.
pub fn run<S: RepartDisk + Files + ModuleLoader + Clock>(
    sys: &mut S,
    mode: RepartMode,
    found: FlashedDisk,
    report: &mut Report,
) -> Result<String, Box<RepartError>> {
    let FlashedDisk { disk, state, .. } = found;
    let mut rec = RepartRecord::new(RepartOutcome::Skipped, disk.as_deref());
    let result = match (&disk, mode) {
        (_, RepartMode::Off) => Ok(Done::Skipped(Skip::Off)),
        (None, _) => Ok(Done::Skipped(Skip::NotAPartition)),
        (Some(disk), _) => repart_disk(sys, disk, state, &mut rec, &mut report.modules),
    };
    let disk_name = disk
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let detail = match result {
        Ok(Done::Skipped(reason)) => {
            rec.reason = Some(reason.to_string());
            format!("skipped: {reason}")
        }
        Ok(Done::NothingToDo) => {
            rec.outcome = RepartOutcome::NothingToDo;
            format!("nothing to do on {disk_name}")
        }
        Ok(Done::Applied) => {
            rec.outcome = RepartOutcome::Applied;
            applied_detail(&disk_name, &rec)
        }
        Err(err) => {
            rec.outcome = RepartOutcome::Failed;
            let chain = atomix_errchain::one_line(&err);
            rec.error = Some(chain.clone());
            report.repart = Some(rec);
            if mode == RepartMode::Required {
                return Err(err);
            }
            log::warn!("repart failed: {chain}");
            return Ok(format!(
                "failed on {disk_name}; the boot continues (atomix.repart=auto)"
            ));
        }
    };
    report.repart = Some(rec);
    Ok(detail)
}

fn applied_detail(disk_name: &str, rec: &RepartRecord) -> String {
    let created: Vec<String> = rec
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Create)
        .map(|a| format!("{} {}", a.number, a.label))
        .collect();
    let formatted: Vec<String> = rec
        .formatted
        .iter()
        .map(|f| {
            format!(
                "{} {} ({}, {})",
                f.number,
                f.label,
                f.format,
                reason_name(f.reason)
            )
        })
        .collect();
    let or_none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "applied on {disk_name}: {} changed in the table (created: {}); formatted: {}",
        rec.actions.len(),
        or_none(created),
        or_none(formatted),
    )
}

/// Plans the definitions against `disk` and carries the plan out if the disk differs. `state`
/// is the disk as the fresh-flash stage read it; `None` reads it now.
fn repart_disk<S: RepartDisk + Files + ModuleLoader + Clock>(
    sys: &mut S,
    disk: &Path,
    state: Option<atomix_repart::apply::Current>,
    rec: &mut RepartRecord,
    modules: &mut Vec<crate::report::ModuleRecord>,
) -> Result<Done, Box<RepartError>> {
    let definitions = match sys.load_definitions(Path::new(REPART_D)) {
        Ok(d) if d.is_empty() => return Ok(Done::Skipped(Skip::NoDefinitions)),
        Ok(d) => d,
        Err(DefinitionError::ReadDir { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(Done::Skipped(Skip::NoRepartD));
        }
        Err(e) => return Err(RepartError::Definitions(e).into()),
    };
    let state = match state {
        Some(s) => s,
        None => sys
            .read_disk(disk)
            .map_err(|source| RepartError::ReadDisk {
                disk: disk.to_path_buf(),
                source,
            })?,
    };
    let Some(table) = &state.table else {
        return Err(RepartError::NoTable {
            disk: disk.to_path_buf(),
        }
        .into());
    };
    let options = PlanOptions {
        sector_size: state.sector_size,
        first_usable_lba: table.first_usable_lba,
    };
    let plan = repart_plan::plan(
        &definitions,
        Some(table),
        state.disk_bytes,
        table.disk_guid,
        &options,
    )
    .map_err(|source| RepartError::Plan {
        disk: disk.to_path_buf(),
        source,
    })?;
    rec.actions = plan
        .actions
        .iter()
        .filter(|a| a.changes_table())
        .cloned()
        .collect();
    let pending = sys
        .repart_pending(&plan, disk)
        .map_err(|source| RepartError::Pending {
            disk: disk.to_path_buf(),
            source,
        })?;
    if pending.is_empty() {
        return Ok(Done::NothingToDo);
    }
    rec.formatted = pending.format.clone();
    for line in plan.to_string().lines() {
        log::info!("repart plan: {line}");
    }
    if pending.table {
        log::info!("repart: the table of {} changes", disk.display());
    }
    for f in &pending.format {
        log::info!(
            "repart: partition {} ({}) gets a new {} ({})",
            f.number,
            f.label,
            f.format,
            reason_name(f.reason)
        );
    }
    match modules::load_list(sys, MODULES_REPART_LOAD, modules).map_err(RepartError::Modules)? {
        Some(l) => log::info!(
            "repart: {} modules from {MODULES_REPART_LOAD}, {} already loaded",
            l.modules,
            l.already
        ),
        None => log::info!("repart: no {MODULES_REPART_LOAD}: no modules"),
    }
    let report = sys
        .repart_apply(&plan, disk, Path::new(REPART_MOUNT_DIR), &mut |line| {
            log::info!("repart: {line}")
        })
        .map_err(|source| RepartError::Apply {
            disk: disk.to_path_buf(),
            source,
        })?;
    rec.apply = Some(report);
    Ok(Done::Applied)
}
