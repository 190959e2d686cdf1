//! The stage runner and the failure policy.
//!
//! [`run`] executes [`STAGES`] in order on a [`System`], times each on `CLOCK_BOOTTIME`, logs one
//! info line per stage (`stage device: ok in 12.3 ms (PARTLABEL=rootfs-a -> /dev/vda2)`), records
//! it in the report, honours `atomix.break=`, and on the first error applies the failure policy
//! ([`fail`]). It returns only when the process cannot go on: on the real machine exec, reboot
//! and power-off do not return.
//!
//! Console/kmsg lines on failure (all at error level):
//!
//! ```text
//! fatal: stage <stage> failed: <error>
//!   caused by: <source>            (one line per error in the chain)
//! hint: <one line for the stage>
//! rebooting in <N> s (atomix.emergency=reboot)
//! ```
//!
//! or, for the other policies, `starting /bin/sh (atomix.emergency=shell); the machine reboots
//! when it exits` then `shell exited; rebooting`, `atomix.emergency=shell but the initramfs has no
//! /bin/sh; rebooting in <N> s`, `powering off (atomix.emergency=halt)`. A panic prints
//! `fatal: panic in stage <stage>: <message>` and the hint, then the same policy lines.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_sysroot::SysrootError;

use atomix_repart::apply::Current;
use atomix_repart::definitions::DefinitionError;
use atomix_repart::plan::{self as repart_plan, ActionKind, PlanOptions};

use crate::cmdline::{BootParams, CmdlineError, Emergency, FailurePolicy, RepartMode};
use crate::device::DeviceError;
use crate::error_chain::error_chain;
use crate::firstboot::{
    BOOT_B, FRESH_FLASH_RUN, FRESH_FLASH_SYSROOT, REPART_D, REPART_MOUNT_DIR, RepartError,
    is_fresh_flash, reason_name,
};
use crate::modules::{MODULES_LOAD, MODULES_REPART_LOAD, ModulesError, parse_list};
use crate::report::{
    ModuleRecord, PROC_SELF_SMAPS_ROLLUP, PROC_SELF_STATUS, REPORT_PATH, RepartOutcome,
    RepartRecord, Report, SlotRecord, StageOutcome, StageRecord, ms, parse_smaps_rss_kib,
    parse_vm_hwm_kib, peak_rss_kib,
};
use crate::stage::{STAGES, Stage};
use crate::system::{EarlyError, ModuleLoadError, System};

/// `/proc/cmdline`.
pub const CMDLINE_PATH: &str = "/proc/cmdline";
/// Where the slot is mounted read-only.
pub const ROOTFS_BASE: &str = "/run/rootfs-base";
/// The tmpfs holding the overlay's `upper` and `work`.
pub const OVERLAY_ROOT: &str = "/run/overlay-root";
/// The new root before `switch_root`.
pub const SYSROOT: &str = "/sysroot";
/// The API mounts moved into the new root.
pub const MOVED_MOUNTS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// A failed stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Early mounts or console.
    #[error(transparent)]
    Early(#[from] EarlyError),
    /// `/proc/cmdline` could not be read.
    #[error("cannot read {CMDLINE_PATH}")]
    ReadCmdline {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The command line is malformed.
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// A module list could not be loaded.
    #[error(transparent)]
    Modules(#[from] ModulesError),
    /// Repartitioning failed with `atomix.repart=required`.
    #[error(transparent)]
    Repart(#[from] Box<RepartError>),
    /// A fresh-flash marker could not be written.
    #[error("cannot write {}", path.display())]
    WriteMarker {
        /// The marker.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stale fresh-flash marker could not be removed.
    #[error("cannot remove {}", path.display())]
    RemoveMarker {
        /// The marker.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The slot device was not found.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Mounting or switching the root failed.
    #[error(transparent)]
    Sysroot(#[from] SysrootError),
    /// The report could not be serialised.
    #[error("cannot serialise the boot report")]
    SerializeReport {
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The report could not be written.
    #[error("cannot write {REPORT_PATH}")]
    WriteReport {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stage that needs the boot parameters ran without them (a runner bug).
    #[error("stage {stage} needs the boot parameters, which were not parsed")]
    NoParams {
        /// The stage.
        stage: Stage,
    },
    /// `exec` of the real init failed.
    #[error("cannot exec {}", init.display())]
    Exec {
        /// `init=`.
        init: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// How [`run`] ended. On the real machine only the failure variants can be seen, because a
/// successful exec, reboot or power-off does not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The real init was exec'd.
    Exec(PathBuf),
    /// The machine was rebooted.
    Reboot,
    /// The machine was powered off.
    PowerOff,
    /// The reboot or power-off call itself failed; the caller exits (the kernel then panics).
    ActionFailed,
}

struct Boot<'s, S: System> {
    sys: &'s mut S,
    start: Duration,
    report: Report,
    params: Option<BootParams>,
    /// The policy while `params` is not there: salvaged from a command line that did not parse.
    fallback_policy: FailurePolicy,
    device: Option<PathBuf>,
    /// The disk to repartition; `None` when the slot is a whole disk.
    disk: Option<PathBuf>,
    /// The disk as the fresh-flash stage read it (before repart).
    disk_state: Option<Current>,
}

/// How the repart stage ended when it did not fail.
enum RepartDone {
    Skipped(String),
    NothingToDo,
    Applied,
}

/// Runs the boot on `sys`. See the module docs.
pub fn run<S: System>(sys: &mut S) -> Ending {
    let start = sys.now();
    let mut boot = Boot {
        sys,
        start,
        report: Report::new(start),
        params: None,
        fallback_policy: FailurePolicy::default(),
        device: None,
        disk: None,
        disk_state: None,
    };
    for &stage in STAGES {
        if let Some(p) = &boot.params
            && p.break_before == Some(stage)
        {
            boot.break_before(stage);
        }
        let policy = boot.policy();
        boot.sys.set_panic_context(stage, policy);
        let t0 = boot.sys.now();
        let result = boot.run_stage(stage);
        let took = boot.sys.now().saturating_sub(t0);
        let outcome = if result.is_ok() {
            StageOutcome::Ok
        } else {
            StageOutcome::Failed
        };
        boot.report.stages.push(StageRecord {
            name: stage,
            ms: ms(took),
            outcome,
        });
        match result {
            Ok(detail) => log::info!(
                "stage {stage}: ok in {:.1} ms{}",
                took.as_secs_f64() * 1000.0,
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            ),
            Err(err) => {
                log::info!(
                    "stage {stage}: failed in {:.1} ms",
                    took.as_secs_f64() * 1000.0
                );
                // Best effort, for a rescue shell: /run may not even be mounted.
                if stage != Stage::Early
                    && let Ok(json) = boot.report_json()
                {
                    let _ = boot.sys.write_report(Path::new(REPORT_PATH), &json);
                }
                // Read again: a failed cmdline stage has salvaged what it could of the policy.
                let policy = boot.policy();
                return fail(boot.sys, policy, stage, &err);
            }
        }
    }
    boot.finish()
}

impl<S: System> Boot<'_, S> {
    fn policy(&self) -> FailurePolicy {
        self.params
            .as_ref()
            .map_or(self.fallback_policy, |p| p.policy)
    }

    /// The parsed parameters; stages after `cmdline` only run once it succeeded.
    fn params(&self, stage: Stage) -> Result<&BootParams, StageError> {
        self.params.as_ref().ok_or(StageError::NoParams { stage })
    }

    fn break_before(&mut self, stage: Stage) {
        if !self.sys.shell_available() {
            log::warn!(
                "break before stage {stage} (atomix.break) but the initramfs has no /bin/sh; continuing"
            );
            return;
        }
        log::warn!(
            "break before stage {stage} (atomix.break): starting /bin/sh; exit it to continue the boot"
        );
        match self.sys.run_shell() {
            Ok(code) => log::info!(
                "shell exited (status {}); continuing with stage {stage}",
                code.map_or_else(|| "signal".to_owned(), |c| c.to_string())
            ),
            Err(e) => log::warn!("cannot run /bin/sh: {e}; continuing with stage {stage}"),
        }
    }

    fn report_json(&mut self) -> Result<Vec<u8>, StageError> {
        self.report.total_ms = ms(self.sys.now().saturating_sub(self.start));
        self.report
            .to_json()
            .map_err(|source| StageError::SerializeReport { source })
    }

    fn write_report(&mut self) -> Result<(), StageError> {
        let json = self.report_json()?;
        self.sys
            .write_report(Path::new(REPORT_PATH), &json)
            .map_err(|source| StageError::WriteReport { source })
    }

    /// Runs one stage; `Some(detail)` goes in parentheses after the stage line.
    fn run_stage(&mut self, stage: Stage) -> Result<Option<String>, StageError> {
        match stage {
            Stage::Early => {
                self.sys.mount_early()?;
                Ok(None)
            }
            Stage::Cmdline => self.cmdline(),
            Stage::Modules => self.modules(),
            Stage::Device => self.device(),
            Stage::FreshFlash => self.fresh_flash(),
            Stage::Repart => self.repart(),
            Stage::Lower => {
                let fstype = self.params(stage)?.lowerfstype.clone();
                let dev = self.device.clone().unwrap_or_default();
                self.sys
                    .mount_lower(&dev, &fstype, Path::new(ROOTFS_BASE))?;
                Ok(Some(format!("{} {fstype} at {ROOTFS_BASE}", dev.display())))
            }
            Stage::Overlay => {
                self.sys.assemble_overlay(
                    Path::new(ROOTFS_BASE),
                    Path::new(OVERLAY_ROOT),
                    Path::new(SYSROOT),
                )?;
                Ok(Some(SYSROOT.to_owned()))
            }
            Stage::Marker => {
                let marker = self.sysroot_marker()?;
                self.write_report()?;
                Ok(Some(format!("{REPORT_PATH}{marker}")))
            }
            Stage::SwitchRoot => {
                self.sys.switch_root(Path::new(SYSROOT), MOVED_MOUNTS)?;
                Ok(Some(format!("{SYSROOT} is /")))
            }
        }
    }

    fn cmdline(&mut self) -> Result<Option<String>, StageError> {
        let text = self
            .sys
            .read_file(Path::new(CMDLINE_PATH))
            .map_err(|source| StageError::ReadCmdline { source })?;
        self.fallback_policy = FailurePolicy::salvage(&text);
        let p = BootParams::parse(&text)?;
        crate::kmsg::set_debug(p.debug);
        for w in &p.warnings {
            log::warn!("{w}");
        }
        self.report.rauc_slot.clone_from(&p.rauc_slot);
        self.report.init = Some(p.init.display().to_string());
        self.report.warnings.clone_from(&p.warnings);
        let detail = format!(
            "lowerdev={} fstype={} init={}{}",
            p.lowerdev,
            p.lowerfstype,
            p.init.display(),
            p.rauc_slot
                .as_ref()
                .map(|s| format!(" rauc.slot={s}"))
                .unwrap_or_default()
        );
        self.params = Some(p);
        Ok(Some(detail))
    }

    fn modules(&mut self) -> Result<Option<String>, StageError> {
        Ok(Some(match self.load_modules(MODULES_LOAD)? {
            Some((n, already)) => format!("{n} modules, {already} already loaded"),
            None => format!("no {MODULES_LOAD}: no modules"),
        }))
    }

    /// Loads the module list `file` in order, recording each module; `None` if there is no
    /// such file, else (modules, already loaded).
    fn load_modules(&mut self, file: &'static str) -> Result<Option<(usize, usize)>, ModulesError> {
        let text = match self.sys.read_file(Path::new(file)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ModulesError::ReadList { file, source }),
        };
        let list = parse_list(file, &text)?;
        let mut already = 0;
        for m in &list {
            let t0 = self.sys.now();
            let load = self.sys.load_module(&m.path).map_err(|e| match e {
                ModuleLoadError::Open(source) => ModulesError::Open {
                    name: m.name.clone(),
                    path: m.path.clone(),
                    source,
                },
                ModuleLoadError::Init(source) => ModulesError::Load {
                    name: m.name.clone(),
                    path: m.path.clone(),
                    source,
                },
            })?;
            let took = self.sys.now().saturating_sub(t0);
            if load == crate::system::ModuleLoad::AlreadyLoaded {
                already += 1;
            }
            log::debug!(
                "module {}: {} in {:.1} ms",
                m.name,
                load.as_str(),
                took.as_secs_f64() * 1000.0
            );
            self.report.modules.push(ModuleRecord {
                name: m.name.clone(),
                ms: ms(took),
                result: load,
            });
        }
        Ok(Some((list.len(), already)))
    }

    /// Finds the disk, reads its table once and decides whether this boot is a fresh flash.
    fn fresh_flash(&mut self) -> Result<Option<String>, StageError> {
        let repart_device = self.params(Stage::FreshFlash)?.repart_device.clone();
        let slot = self.device.clone().unwrap_or_default();
        let disk = match repart_device {
            Some(d) => Some(d),
            None => self.sys.slot_disk(&slot)?,
        };
        self.disk.clone_from(&disk);
        let (fresh, why) = match &disk {
            None => (
                false,
                format!(
                    "the slot {} is not a partition: no disk to look at",
                    slot.display()
                ),
            ),
            Some(disk) => match self.sys.read_disk(disk) {
                Ok(state) => {
                    if state.repaired_from_backup {
                        log::warn!(
                            "the primary GPT of {} is damaged: read the backup",
                            disk.display()
                        );
                    }
                    let fresh = is_fresh_flash(state.table.as_ref());
                    let why = match state.table.as_ref().and_then(|t| t.by_name(BOOT_B)) {
                        Some(p) => {
                            format!("{} has {BOOT_B} (partition {})", disk.display(), p.number)
                        }
                        None if state.table.is_none() => format!("{} has no GPT", disk.display()),
                        None => format!("{} has no {BOOT_B} partition", disk.display()),
                    };
                    self.disk_state = Some(state);
                    (fresh, why)
                }
                Err(e) => {
                    log::warn!(
                        "cannot read the partition table of {}: {}; taking this boot as not a fresh flash",
                        disk.display(),
                        crate::error_chain::joined(&e)
                    );
                    (false, format!("cannot read {}", disk.display()))
                }
            },
        };
        let marker = Path::new(FRESH_FLASH_RUN);
        if fresh {
            self.sys
                .write_marker(marker)
                .map_err(|source| StageError::WriteMarker {
                    path: marker.to_path_buf(),
                    source,
                })?;
        } else {
            self.sys
                .remove_marker(marker)
                .map_err(|source| StageError::RemoveMarker {
                    path: marker.to_path_buf(),
                    source,
                })?;
        }
        self.report.fresh_flash = Some(fresh);
        Ok(Some(if fresh {
            format!("fresh flash: {why}; wrote {FRESH_FLASH_RUN}")
        } else {
            format!("not a fresh flash: {why}")
        }))
    }

    /// Applies the definitions in [`REPART_D`] to the disk; a failure is recorded and, unless
    /// `atomix.repart=required`, the boot goes on.
    fn repart(&mut self) -> Result<Option<String>, StageError> {
        let mode = self.params(Stage::Repart)?.repart;
        let disk = self.disk.clone();
        let mut rec = RepartRecord::new(RepartOutcome::Skipped, disk.as_deref());
        let result = match (&disk, mode) {
            (_, RepartMode::Off) => Ok(RepartDone::Skipped("atomix.repart=off".to_owned())),
            (None, _) => Ok(RepartDone::Skipped(
                "the slot is not a partition".to_owned(),
            )),
            (Some(disk), _) => self.repart_disk(disk, &mut rec),
        };
        let disk_name = disk
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let detail = match result {
            Ok(RepartDone::Skipped(reason)) => {
                let detail = format!("skipped: {reason}");
                rec.reason = Some(reason);
                detail
            }
            Ok(RepartDone::NothingToDo) => {
                rec.outcome = RepartOutcome::NothingToDo;
                format!("nothing to do on {disk_name}")
            }
            Ok(RepartDone::Applied) => {
                rec.outcome = RepartOutcome::Applied;
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
                format!(
                    "applied on {disk_name}: {} changed in the table (created: {}); formatted: {}",
                    rec.actions.len(),
                    if created.is_empty() {
                        "none".to_owned()
                    } else {
                        created.join(", ")
                    },
                    if formatted.is_empty() {
                        "none".to_owned()
                    } else {
                        formatted.join(", ")
                    },
                )
            }
            Err(err) => {
                rec.outcome = RepartOutcome::Failed;
                let chain = crate::error_chain::joined(&err);
                rec.error = Some(chain.clone());
                self.report.repart = Some(rec);
                if mode == RepartMode::Required {
                    return Err(StageError::Repart(err));
                }
                log::warn!("repart failed: {chain}");
                return Ok(Some(format!(
                    "failed on {disk_name}; the boot continues (atomix.repart=auto)"
                )));
            }
        };
        self.report.repart = Some(rec);
        Ok(Some(detail))
    }

    /// Plans the definitions against `disk` and carries the plan out if the disk differs.
    fn repart_disk(
        &mut self,
        disk: &Path,
        rec: &mut RepartRecord,
    ) -> Result<RepartDone, Box<RepartError>> {
        let definitions = match self.sys.load_definitions(Path::new(REPART_D)) {
            Ok(d) if d.is_empty() => {
                return Ok(RepartDone::Skipped(format!("no definitions in {REPART_D}")));
            }
            Ok(d) => d,
            Err(DefinitionError::ReadDir { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(RepartDone::Skipped(format!(
                    "no {REPART_D} in the initramfs"
                )));
            }
            Err(e) => return Err(RepartError::Definitions(e).into()),
        };
        let state = match self.disk_state.take() {
            Some(s) => s,
            None => self
                .sys
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
        let pending =
            self.sys
                .repart_pending(&plan, disk)
                .map_err(|source| RepartError::Pending {
                    disk: disk.to_path_buf(),
                    source,
                })?;
        if pending.is_empty() {
            return Ok(RepartDone::NothingToDo);
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
        match self
            .load_modules(MODULES_REPART_LOAD)
            .map_err(RepartError::Modules)?
        {
            Some((n, already)) => log::info!(
                "repart: {n} modules from {MODULES_REPART_LOAD}, {already} already loaded"
            ),
            None => log::info!("repart: no {MODULES_REPART_LOAD}: no modules"),
        }
        let report = self
            .sys
            .repart_apply(&plan, disk, Path::new(REPART_MOUNT_DIR), &mut |line| {
                log::info!("repart: {line}")
            })
            .map_err(|source| RepartError::Apply {
                disk: disk.to_path_buf(),
                source,
            })?;
        rec.apply = Some(report);
        Ok(RepartDone::Applied)
    }

    /// In the new root: the fresh-flash marker on a fresh flash, none otherwise. Returns the
    /// part of the stage line about it.
    fn sysroot_marker(&mut self) -> Result<String, StageError> {
        let marker = Path::new(FRESH_FLASH_SYSROOT);
        if self.report.fresh_flash == Some(true) {
            self.sys
                .write_marker(marker)
                .map_err(|source| StageError::WriteMarker {
                    path: marker.to_path_buf(),
                    source,
                })?;
            return Ok(format!(", {FRESH_FLASH_SYSROOT}"));
        }
        let removed =
            self.sys
                .remove_marker(marker)
                .map_err(|source| StageError::RemoveMarker {
                    path: marker.to_path_buf(),
                    source,
                })?;
        if removed {
            log::warn!(
                "{FRESH_FLASH_SYSROOT} came from the slot image, which must not contain it (a rootfs build error): removed it for this boot"
            );
        }
        Ok(String::new())
    }

    fn device(&mut self) -> Result<Option<String>, StageError> {
        let p = self.params(Stage::Device)?.clone();
        if let Some(delay) = p.rootdelay {
            log::info!(
                "rootdelay: waiting {} s before looking for the slot",
                delay.as_secs()
            );
            self.sys.sleep(delay);
        }
        let dev = self.sys.wait_device(&p.lowerdev, p.device_timeout)?;
        let detail = format!("{} -> {}", p.lowerdev, dev.display());
        self.report.slot = Some(SlotRecord {
            lowerdev: p.lowerdev.to_string(),
            device: dev.display().to_string(),
            fstype: p.lowerfstype.clone(),
        });
        self.device = Some(dev);
        Ok(Some(detail))
    }

    /// After the last stage: the final report (now that `/run` is back at `/run`) and the exec.
    fn finish(mut self) -> Ending {
        let init = self
            .params
            .as_ref()
            .map_or_else(|| PathBuf::from("/sbin/init"), |p| p.init.clone());
        // After switch_root `/proc` is back at `/proc`; a missing value is just `null`.
        let mut read = |path: &str, parse: fn(&str) -> Option<u64>| {
            self.sys
                .read_file(Path::new(path))
                .ok()
                .as_deref()
                .and_then(parse)
        };
        let hwm = read(PROC_SELF_STATUS, parse_vm_hwm_kib);
        let rss = read(PROC_SELF_SMAPS_ROLLUP, parse_smaps_rss_kib);
        self.report.peak_rss_kib = peak_rss_kib(hwm, rss);
        if let Err(e) = self.write_report() {
            // The boot matters more than the report; say so and go on.
            log::warn!("{e}: {}", error_chain(&e).join(": "));
        }
        log::info!(
            "boot done in {:.1} ms: exec {}",
            self.sys.now().saturating_sub(self.start).as_secs_f64() * 1000.0,
            init.display()
        );
        match self.sys.exec_init(&init) {
            Ok(()) => Ending::Exec(init),
            Err(source) => {
                let policy = self.policy();
                fail(
                    self.sys,
                    policy,
                    Stage::SwitchRoot,
                    &StageError::Exec { init, source },
                )
            }
        }
    }
}

/// The failure policy for a failed `stage`: prints the error, its chain and the stage hint, then
/// acts on `policy`.
pub fn fail<S: System>(
    sys: &mut S,
    policy: FailurePolicy,
    stage: Stage,
    err: &(dyn Error + 'static),
) -> Ending {
    log::error!("fatal: stage {stage} failed: {err}");
    for cause in error_chain(err) {
        log::error!("  caused by: {cause}");
    }
    log::error!("hint: {}", stage.hint());
    emergency(sys, policy)
}

/// The panic path: what the panic hook runs (then the process aborts if this returns).
pub fn on_panic<S: System>(
    sys: &mut S,
    policy: FailurePolicy,
    stage: Stage,
    message: &str,
) -> Ending {
    log::error!("fatal: panic in stage {stage}: {message}");
    log::error!("hint: {}", stage.hint());
    emergency(sys, policy)
}

/// Acts on `atomix.emergency=`.
pub fn emergency<S: System>(sys: &mut S, policy: FailurePolicy) -> Ending {
    let delay = policy.reboot_delay.as_secs();
    match policy.emergency {
        Emergency::Reboot => {
            log::error!("rebooting in {delay} s (atomix.emergency=reboot)");
            sys.sleep(policy.reboot_delay);
            reboot(sys)
        }
        Emergency::Shell if sys.shell_available() => {
            log::error!(
                "starting /bin/sh (atomix.emergency=shell); the machine reboots when it exits"
            );
            if let Err(e) = sys.run_shell() {
                log::error!("cannot run /bin/sh: {e}");
            }
            log::error!("shell exited; rebooting");
            reboot(sys)
        }
        Emergency::Shell => {
            log::error!(
                "atomix.emergency=shell but the initramfs has no /bin/sh; rebooting in {delay} s"
            );
            sys.sleep(policy.reboot_delay);
            reboot(sys)
        }
        Emergency::Halt => {
            log::error!("powering off (atomix.emergency=halt)");
            match sys.power_off() {
                Ok(()) => Ending::PowerOff,
                Err(e) => {
                    log::error!("power off failed: {e}");
                    Ending::ActionFailed
                }
            }
        }
    }
}

fn reboot<S: System>(sys: &mut S) -> Ending {
    match sys.reboot() {
        Ok(()) => Ending::Reboot,
        Err(e) => {
            log::error!("reboot failed: {e}");
            Ending::ActionFailed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::system::{ModuleLoad, ModuleLoadError};
    use atomix_repart::apply::ApplyError;
    use atomix_repart::apply::{
        ApplyReport, FormatReason, KernelPartition, Pending, PendingFormat,
    };
    use atomix_repart::definitions::Format;
    use atomix_repart::definitions::{Arch, Definition};
    use atomix_repart::gpt::{Guid, Partition, Table, types};
    use atomix_repart::plan::Plan;
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::io;

    // --- a logger that captures records per test thread -------------------------------------

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            LINES.with(|l| l.borrow_mut().push(format!("{} {}", r.level(), r.args())));
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture;
    fn capture() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Debug);
        LINES.with(|l| l.borrow_mut().clear());
    }
    fn lines() -> Vec<String> {
        LINES.with(|l| l.borrow().clone())
    }

    // --- the recording fake -------------------------------------------------------------------

    #[derive(Default)]
    struct Fake {
        clock: Duration,
        calls: Vec<String>,
        files: HashMap<PathBuf, String>,
        modules: HashMap<PathBuf, Result<ModuleLoad, i32>>,
        fail: Option<&'static str>,
        panic_at: Option<&'static str>,
        shell: bool,
        reports: Vec<serde_json::Value>,
        contexts: Vec<Stage>,
        /// `slot_disk`'s answer.
        slot_disk: Option<PathBuf>,
        /// `read_disk`'s answer; `None` fails.
        disk: Option<Current>,
        /// `load_definitions`'s answer; `None` is a missing directory.
        definitions: Option<Vec<Definition>>,
        /// `repart_pending`'s answer; `None` fails.
        pending: Option<Pending>,
        /// Existing marker files.
        markers: HashSet<PathBuf>,
        /// Lines `repart_apply` passes to its progress callback.
        progress: Vec<&'static str>,
    }

    /// A real `ApplyError`: reading a disk that does not exist.
    fn apply_error() -> ApplyError {
        atomix_repart::apply::read_current(Path::new("/nonexistent/atomix-test-disk")).unwrap_err()
    }

    impl Fake {
        /// The last `n` recorded calls.
        fn last_calls(&self, n: usize) -> &[String] {
            &self.calls[self.calls.len().saturating_sub(n)..]
        }

        fn new(cmdline: &str) -> Self {
            let mut f = Fake {
                clock: Duration::from_millis(900),
                slot_disk: Some("/dev/vda".into()),
                disk: Some(flashed(16 << 30)),
                ..Fake::default()
            };
            f.files.insert(CMDLINE_PATH.into(), format!("{cmdline}\n"));
            f
        }
        /// Each call takes 1 ms of boot time.
        fn step(&mut self, call: String) -> bool {
            self.clock += Duration::from_millis(1);
            let name = call
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            if self.panic_at == Some(name.as_str()) {
                panic!("injected panic in {name}");
            }
            self.calls.push(call);
            self.fail == Some(name.as_str())
        }
        fn err() -> io::Error {
            io::Error::from_raw_os_error(5)
        }
    }

    impl System for Fake {
        fn now(&mut self) -> Duration {
            self.clock
        }
        fn mount_early(&mut self) -> Result<(), EarlyError> {
            if self.step("mount_early".into()) {
                return Err(EarlyError::Mount {
                    fstype: "devtmpfs",
                    target: "/dev".into(),
                    source: Self::err(),
                });
            }
            Ok(())
        }
        fn read_file(&mut self, path: &Path) -> io::Result<String> {
            if self.step(format!("read_file {}", path.display())) {
                return Err(Self::err());
            }
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn load_module(&mut self, path: &Path) -> Result<ModuleLoad, ModuleLoadError> {
            self.step(format!("load_module {}", path.display()));
            match self.modules.get(path) {
                Some(Ok(l)) => Ok(*l),
                Some(Err(errno)) => {
                    Err(ModuleLoadError::Init(io::Error::from_raw_os_error(*errno)))
                }
                None => Err(ModuleLoadError::Open(io::Error::from(
                    io::ErrorKind::NotFound,
                ))),
            }
        }
        fn wait_device(
            &mut self,
            spec: &DeviceSpec,
            timeout: Duration,
        ) -> Result<PathBuf, DeviceError> {
            if self.step(format!("wait_device {spec} {}", timeout.as_secs())) {
                self.clock += timeout;
                return Err(DeviceError::Timeout {
                    spec: spec.to_string(),
                    timeout,
                    seen: vec!["vda".into()],
                });
            }
            Ok(PathBuf::from("/dev/vda2"))
        }
        fn slot_disk(&mut self, slot: &Path) -> Result<Option<PathBuf>, DeviceError> {
            self.step(format!("slot_disk {}", slot.display()));
            Ok(self.slot_disk.clone())
        }
        fn read_disk(&mut self, disk: &Path) -> Result<Current, ApplyError> {
            self.step(format!("read_disk {}", disk.display()));
            self.disk.clone().ok_or_else(apply_error)
        }
        fn load_definitions(&mut self, dir: &Path) -> Result<Vec<Definition>, DefinitionError> {
            self.step(format!("load_definitions {}", dir.display()));
            self.definitions
                .clone()
                .ok_or_else(|| DefinitionError::ReadDir {
                    path: dir.to_path_buf(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
        }
        fn repart_pending(&mut self, plan: &Plan, disk: &Path) -> Result<Pending, ApplyError> {
            self.step(format!(
                "repart_pending {} {}",
                plan.actions.len(),
                disk.display()
            ));
            self.pending.clone().ok_or_else(apply_error)
        }
        fn repart_apply(
            &mut self,
            plan: &Plan,
            disk: &Path,
            mount_dir: &Path,
            progress: &mut dyn FnMut(&str),
        ) -> Result<ApplyReport, ApplyError> {
            let fail = self.step(format!(
                "repart_apply {} {}",
                disk.display(),
                mount_dir.display()
            ));
            for line in &self.progress {
                progress(line);
            }
            if fail {
                return Err(apply_error());
            }
            // One kernel partition per created one: what the tests check was recorded.
            Ok(ApplyReport {
                kernel: plan
                    .actions
                    .iter()
                    .filter(|a| a.kind == ActionKind::Create)
                    .map(|a| KernelPartition {
                        number: a.number,
                        device: format!("vda{}", a.number),
                        start_bytes: a.start_lba * 512,
                        size_bytes: a.sectors * 512,
                    })
                    .collect(),
                table_written: true,
                ..ApplyReport::default()
            })
        }
        fn write_marker(&mut self, path: &Path) -> io::Result<()> {
            if self.step(format!("write_marker {}", path.display())) {
                return Err(Self::err());
            }
            self.markers.insert(path.to_path_buf());
            Ok(())
        }
        fn remove_marker(&mut self, path: &Path) -> io::Result<bool> {
            self.step(format!("remove_marker {}", path.display()));
            Ok(self.markers.remove(path))
        }
        fn mount_lower(
            &mut self,
            device: &Path,
            fstype: &str,
            target: &Path,
        ) -> Result<(), SysrootError> {
            if self.step(format!(
                "mount_lower {} {fstype} {}",
                device.display(),
                target.display()
            )) {
                return Err(SysrootError::MountLower {
                    device: device.into(),
                    fstype: fstype.into(),
                    target: target.into(),
                    source: io::Error::from_raw_os_error(22),
                });
            }
            Ok(())
        }
        fn assemble_overlay(
            &mut self,
            lower: &Path,
            overlay_root: &Path,
            target: &Path,
        ) -> Result<(), SysrootError> {
            self.step(format!(
                "assemble_overlay {} {} {}",
                lower.display(),
                overlay_root.display(),
                target.display()
            ));
            Ok(())
        }
        fn write_report(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
            if self.step(format!("write_report {}", path.display())) {
                return Err(Self::err());
            }
            self.reports.push(serde_json::from_slice(contents).unwrap());
            Ok(())
        }
        fn switch_root(&mut self, new_root: &Path, moves: &[&str]) -> Result<(), SysrootError> {
            self.step(format!(
                "switch_root {} {}",
                new_root.display(),
                moves.join(",")
            ));
            Ok(())
        }
        fn exec_init(&mut self, init: &Path) -> io::Result<()> {
            if self.step(format!("exec_init {}", init.display())) {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            Ok(())
        }
        fn shell_available(&mut self) -> bool {
            self.shell
        }
        fn run_shell(&mut self) -> io::Result<Option<i32>> {
            self.step("run_shell".into());
            Ok(Some(0))
        }
        fn sleep(&mut self, duration: Duration) {
            self.step(format!("sleep {}", duration.as_secs()));
            self.clock += duration;
        }
        fn reboot(&mut self) -> io::Result<()> {
            self.step("reboot".into());
            Ok(())
        }
        fn power_off(&mut self) -> io::Result<()> {
            self.step("power_off".into());
            Ok(())
        }
        fn set_panic_context(&mut self, stage: Stage, _policy: FailurePolicy) {
            self.contexts.push(stage);
        }
    }

    const CMDLINE: &str = "console=ttyAMA0 atomixos.lowerdev=PARTLABEL=rootfs-a rauc.slot=boot.0";

    const MIB: u64 = 1 << 20;

    /// A disk of `disk_bytes` holding what the image writes: boot-a at 16 MiB (128 MiB) and
    /// rootfs-a at 144 MiB (1 GiB), its backup GPT 1 MiB after rootfs-a.
    fn flashed(disk_bytes: u64) -> Current {
        let part = |number: u32, type_guid, start: u64, size: u64, name: &str| Partition {
            number,
            type_guid,
            uuid: Guid::from_u128(0x1000 + u128::from(number)),
            first_lba: start / 512,
            last_lba: (start + size) / 512 - 1,
            attributes: 0,
            name: name.into(),
        };
        Current {
            disk_bytes,
            sector_size: 512,
            table: Some(Table {
                disk_guid: Guid::from_u128(0xd15c),
                first_usable_lba: 16 * MIB / 512,
                last_usable_lba: (1169 * MIB) / 512 - 34,
                partitions: vec![
                    part(1, types::XBOOTLDR, 16 * MIB, 128 * MIB, "boot-a"),
                    part(2, types::ROOT_ARM64, 144 * MIB, 1024 * MIB, "rootfs-a"),
                ],
            }),
            repaired_from_backup: false,
            is_block_device: true,
        }
    }

    /// The qemu-virt board's definitions, as `load_dir` would return them.
    fn board_definitions() -> Vec<Definition> {
        let board = atomix_board::Board::builtin("qemu-virt").unwrap();
        board
            .repart
            .definitions
            .iter()
            .map(|(name, text)| {
                atomix_repart::definitions::parse_definition(name, text, Arch::Arm64).unwrap()
            })
            .collect()
    }

    /// The first-boot work on [`flashed`]: a new table, boot-b and data formatted.
    fn first_boot_work() -> Pending {
        let fmt = |number: u32, label: &str, format: Format| PendingFormat {
            number,
            label: label.into(),
            format,
            reason: FormatReason::Created,
        };
        Pending {
            table: true,
            format: vec![fmt(3, "boot-b", Format::Vfat), fmt(5, "data", Format::F2fs)],
        }
    }

    /// A fake with the board's definitions and modules-repart.load, on a freshly flashed disk.
    fn first_boot(cmdline: &str) -> Fake {
        let mut f = with_modules(Fake::new(cmdline));
        f.definitions = Some(board_definitions());
        f.pending = Some(first_boot_work());
        f.files.insert(
            MODULES_REPART_LOAD.into(),
            "# repart\ncrc32_generic /lib/modules/crc32_generic.ko\nf2fs /lib/modules/f2fs.ko\n"
                .into(),
        );
        for m in ["crc32_generic", "f2fs"] {
            f.modules.insert(
                format!("/lib/modules/{m}.ko").into(),
                Ok(ModuleLoad::Loaded),
            );
        }
        f.progress = vec!["formatted 3 boot-b (vfat)", "wrote the GPT"];
        f
    }

    fn with_modules(mut f: Fake) -> Fake {
        f.files.insert(
            MODULES_LOAD.into(),
            "# list\nvirtio_blk /lib/modules/virtio_blk.ko\nsquashfs /lib/modules/squashfs.ko\n"
                .into(),
        );
        f.modules
            .insert("/lib/modules/virtio_blk.ko".into(), Ok(ModuleLoad::Loaded));
        f.modules.insert(
            "/lib/modules/squashfs.ko".into(),
            Ok(ModuleLoad::AlreadyLoaded),
        );
        f
    }

    #[test]
    fn happy_path_order_and_report() {
        capture();
        let mut f = with_modules(Fake::new(CMDLINE));
        f.files.insert(
            PROC_SELF_STATUS.into(),
            "Name:\tinit\nVmPeak:\t    9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1900 kB\n".into(),
        );
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert_eq!(
            f.calls,
            [
                "mount_early",
                "read_file /proc/cmdline",
                "read_file /etc/atomix/modules.load",
                "load_module /lib/modules/virtio_blk.ko",
                "load_module /lib/modules/squashfs.ko",
                "wait_device PARTLABEL=rootfs-a 60",
                "slot_disk /dev/vda2",
                "read_disk /dev/vda",
                "write_marker /run/atomixos/fresh-flash",
                "load_definitions /etc/repart.d",
                "mount_lower /dev/vda2 squashfs /run/rootfs-base",
                "assemble_overlay /run/rootfs-base /run/overlay-root /sysroot",
                "write_marker /sysroot/etc/atomixos/fresh-flash",
                "write_report /run/atomix/initrd.json",
                "switch_root /sysroot /dev,/proc,/sys,/run",
                "read_file /proc/self/status",
                "read_file /proc/self/smaps_rollup",
                "write_report /run/atomix/initrd.json",
                "exec_init /sbin/init",
            ]
        );
        assert_eq!(f.contexts, STAGES);
        let stage_lines: Vec<String> = lines()
            .into_iter()
            .filter(|l| l.starts_with("INFO stage "))
            .collect();
        assert_eq!(
            stage_lines,
            [
                "INFO stage early: ok in 1.0 ms",
                "INFO stage cmdline: ok in 1.0 ms (lowerdev=PARTLABEL=rootfs-a fstype=squashfs init=/sbin/init rauc.slot=boot.0)",
                "INFO stage modules: ok in 3.0 ms (2 modules, 1 already loaded)",
                "INFO stage device: ok in 1.0 ms (PARTLABEL=rootfs-a -> /dev/vda2)",
                "INFO stage fresh-flash: ok in 3.0 ms (fresh flash: /dev/vda has no boot-b partition; wrote /run/atomixos/fresh-flash)",
                "INFO stage repart: ok in 1.0 ms (skipped: no /etc/repart.d in the initramfs)",
                "INFO stage lower: ok in 1.0 ms (/dev/vda2 squashfs at /run/rootfs-base)",
                "INFO stage overlay: ok in 1.0 ms (/sysroot)",
                "INFO stage marker: ok in 2.0 ms (/run/atomix/initrd.json, /sysroot/etc/atomixos/fresh-flash)",
                "INFO stage switch-root: ok in 1.0 ms (/sysroot is /)",
            ]
        );
        assert!(lines().contains(&"INFO boot done in 18.0 ms: exec /sbin/init".to_string()));

        // The marker stage's report has the stages before it; the final one has all of them.
        assert_eq!(f.reports.len(), 2);
        let first = &f.reports[0];
        assert_eq!(first["stages"].as_array().unwrap().len(), 8);
        let r = &f.reports[1];
        assert_eq!(r["version"], 1);
        let names: Vec<&str> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "early",
                "cmdline",
                "modules",
                "device",
                "fresh-flash",
                "repart",
                "lower",
                "overlay",
                "marker",
                "switch-root"
            ]
        );
        assert!(
            r["stages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["outcome"] == "ok")
        );
        assert_eq!(r["stages"][2]["ms"], 3.0);
        assert_eq!(r["start_uptime_ms"], 900.0);
        assert_eq!(
            r["total_ms"], 17.0,
            "measured when the final report is serialised"
        );
        assert_eq!(
            first["peak_rss_kib"],
            serde_json::Value::Null,
            "only the final report has it"
        );
        assert_eq!(r["peak_rss_kib"], 2048);
        assert_eq!(
            r["slot"],
            serde_json::json!({"lowerdev": "PARTLABEL=rootfs-a", "device": "/dev/vda2", "fstype": "squashfs"})
        );
        assert_eq!(r["rauc_slot"], "boot.0");
        assert_eq!(r["init"], "/sbin/init");
        assert_eq!(
            r["modules"],
            serde_json::json!([
                {"name": "virtio_blk", "ms": 1.0, "result": "loaded"},
                {"name": "squashfs", "ms": 1.0, "result": "already-loaded"}
            ])
        );
        assert_eq!(r["warnings"], serde_json::json!([]));
        assert_eq!(r["fresh_flash"], true);
        assert_eq!(r["repart"]["outcome"], "skipped");
        assert_eq!(r["repart"]["reason"], "no /etc/repart.d in the initramfs");
        assert_eq!(r["repart"]["disk"], "/dev/vda");
    }

    #[test]
    fn no_module_list_is_no_modules() {
        capture();
        let mut f = Fake::new(
            "atomixos.lowerdev=/dev/vda2 atomixos.lowerfstype=erofs init=/init2 atomix.bogus=1",
        );
        assert_eq!(run(&mut f), Ending::Exec("/init2".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("load_module")));
        assert!(
            f.calls
                .contains(&"mount_lower /dev/vda2 erofs /run/rootfs-base".to_string())
        );
        let l = lines();
        assert!(
            l.contains(
                &"INFO stage modules: ok in 1.0 ms (no /etc/atomix/modules.load: no modules)"
                    .to_string()
            ),
            "{l:?}"
        );
        assert!(l.contains(&"WARN unknown boot parameter atomix.bogus=1 ignored".to_string()));
        assert_eq!(
            f.reports[1]["warnings"],
            serde_json::json!(["unknown boot parameter atomix.bogus=1 ignored"])
        );
        assert_eq!(f.reports[1]["rauc_slot"], serde_json::Value::Null);
    }

    #[test]
    fn rootdelay_sleeps_before_the_device_and_timeout_is_passed() {
        capture();
        let mut f =
            Fake::new("atomixos.lowerdev=/dev/vda2 rootwait rootdelay=2 atomix.device-timeout=7");
        run(&mut f);
        let i = f.calls.iter().position(|c| c == "sleep 2").unwrap();
        assert_eq!(f.calls[i + 1], "wait_device /dev/vda2 7");
    }

    #[test]
    fn device_timeout_reboots_after_the_delay() {
        capture();
        let mut f = Fake::new(&format!(
            "{CMDLINE} atomix.device-timeout=3 atomix.reboot-delay=4"
        ));
        f.fail = Some("wait_device");
        assert_eq!(run(&mut f), Ending::Reboot);
        let tail = f.last_calls(3);
        assert_eq!(
            tail,
            ["write_report /run/atomix/initrd.json", "sleep 4", "reboot"]
        );
        assert!(!f.calls.iter().any(|c| c.starts_with("mount_lower")));
        let l = lines();
        let fatal: Vec<&String> = l.iter().filter(|l| l.starts_with("ERROR")).collect();
        assert_eq!(
            fatal,
            [
                "ERROR fatal: stage device failed: timed out after 3 s waiting for PARTLABEL=rootfs-a (block devices seen: vda)",
                "ERROR hint: check atomixos.lowerdev= against the disk's partitions and that the storage driver is built in or in the initramfs",
                "ERROR rebooting in 4 s (atomix.emergency=reboot)",
            ]
        );
        assert!(
            l.contains(&"INFO stage device: failed in 3001.0 ms".to_string()),
            "{l:?}"
        );
        // The failure report records the failed stage.
        let r = f.reports.last().unwrap();
        assert_eq!(
            r["stages"][3],
            serde_json::json!({"name": "device", "ms": 3001.0, "outcome": "failed"})
        );
    }

    #[test]
    fn error_chain_is_printed() {
        capture();
        let mut f = Fake::new(CMDLINE);
        f.fail = Some("mount_lower");
        assert_eq!(run(&mut f), Ending::Reboot);
        let l = lines();
        let i = l
            .iter()
            .position(|l| l == "ERROR fatal: stage lower failed: cannot mount /dev/vda2 (squashfs) read-only at /run/rootfs-base")
            .unwrap();
        assert!(
            l[i + 1].starts_with("ERROR   caused by: Invalid argument"),
            "{}",
            l[i + 1]
        );
        assert!(l[i + 2].starts_with("ERROR hint: check atomixos.lowerfstype="));
        assert_eq!(f.calls.last().unwrap(), "reboot");
        assert!(f.calls.contains(&"sleep 10".to_string()), "default delay");
    }

    #[test]
    fn module_failure_names_module_path_errno() {
        capture();
        let mut f = with_modules(Fake::new(CMDLINE));
        f.modules.insert("/lib/modules/squashfs.ko".into(), Err(8));
        assert_eq!(run(&mut f), Ending::Reboot);
        let l = lines();
        assert!(l.contains(&"ERROR fatal: stage modules failed: cannot load module squashfs from /lib/modules/squashfs.ko".to_string()), "{l:?}");
        assert!(
            l.contains(&"ERROR   caused by: Exec format error (os error 8)".to_string()),
            "{l:?}"
        );
        assert!(!f.calls.iter().any(|c| c.starts_with("wait_device")));
    }

    #[test]
    fn missing_module_file() {
        capture();
        let mut f = with_modules(Fake::new(CMDLINE));
        f.modules.remove(Path::new("/lib/modules/virtio_blk.ko"));
        run(&mut f);
        assert!(lines().contains(&"ERROR fatal: stage modules failed: cannot open module virtio_blk at /lib/modules/virtio_blk.ko".to_string()));
    }

    #[test]
    fn shell_policy_runs_shell_then_reboots() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.emergency=shell"));
        f.shell = true;
        f.fail = Some("mount_lower");
        assert_eq!(run(&mut f), Ending::Reboot);
        let tail = f.last_calls(2);
        assert_eq!(tail, ["run_shell", "reboot"]);
        assert!(!f.calls.iter().any(|c| c.starts_with("sleep")));
        let l = lines();
        assert!(l.contains(&"ERROR starting /bin/sh (atomix.emergency=shell); the machine reboots when it exits".to_string()));
        assert!(l.contains(&"ERROR shell exited; rebooting".to_string()));
    }

    #[test]
    fn shell_policy_without_shell_reboots_after_delay() {
        capture();
        let mut f = Fake::new(&format!(
            "{CMDLINE} atomix.emergency=shell atomix.reboot-delay=2"
        ));
        f.fail = Some("mount_lower");
        assert_eq!(run(&mut f), Ending::Reboot);
        let tail = f.last_calls(2);
        assert_eq!(tail, ["sleep 2", "reboot"]);
        assert!(
            lines().contains(
                &"ERROR atomix.emergency=shell but the initramfs has no /bin/sh; rebooting in 2 s"
                    .to_string()
            )
        );
    }

    #[test]
    fn halt_policy_powers_off() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.emergency=halt"));
        f.fail = Some("mount_lower");
        assert_eq!(run(&mut f), Ending::PowerOff);
        assert_eq!(f.calls.last().unwrap(), "power_off");
        assert!(
            !f.calls
                .iter()
                .any(|c| c.starts_with("sleep") || c == "reboot")
        );
        assert!(lines().contains(&"ERROR powering off (atomix.emergency=halt)".to_string()));
    }

    #[test]
    fn bad_cmdline_keeps_its_valid_policy_keys() {
        capture();
        // The malformed delay falls back to its default; the valid emergency= still counts.
        let mut f = Fake::new(
            "atomixos.lowerdev=PARTLABEL=rootfs-a atomix.emergency=halt atomix.reboot-delay=x",
        );
        assert_eq!(run(&mut f), Ending::PowerOff);
        assert_eq!(f.calls.last().map(String::as_str), Some("power_off"));
        assert!(lines().contains(&"ERROR fatal: stage cmdline failed: invalid boot parameter atomix.reboot-delay=\"x\": expected a whole number of seconds".to_string()));
    }

    #[test]
    fn early_failure_does_not_write_a_report() {
        capture();
        let mut f = Fake::new(CMDLINE);
        f.fail = Some("mount_early");
        assert_eq!(run(&mut f), Ending::Reboot);
        assert_eq!(f.calls, ["mount_early", "sleep 10", "reboot"]);
        assert!(lines().contains(
            &"ERROR fatal: stage early failed: cannot mount devtmpfs at /dev".to_string()
        ));
    }

    #[test]
    fn exec_failure_is_fatal() {
        capture();
        let mut f = Fake::new(CMDLINE);
        f.fail = Some("exec_init");
        assert_eq!(run(&mut f), Ending::Reboot);
        assert!(lines().contains(
            &"ERROR fatal: stage switch-root failed: cannot exec /sbin/init".to_string()
        ));
    }

    #[test]
    fn break_runs_shell_before_the_stage_and_continues() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.break=lower"));
        f.shell = true;
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        let i = f.calls.iter().position(|c| c == "run_shell").unwrap();
        assert!(f.calls[i - 1].starts_with("load_definitions"));
        assert!(f.calls[i + 1].starts_with("mount_lower"));
        assert!(lines().contains(&"WARN break before stage lower (atomix.break): starting /bin/sh; exit it to continue the boot".to_string()));
        // The shell's time is not charged to the stage.
        assert!(lines().contains(
            &"INFO stage lower: ok in 1.0 ms (/dev/vda2 squashfs at /run/rootfs-base)".to_string()
        ));
    }

    #[test]
    fn break_without_shell_continues() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.break=modules"));
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c == "run_shell"));
        assert!(lines().contains(&"WARN break before stage modules (atomix.break) but the initramfs has no /bin/sh; continuing".to_string()));
    }

    #[test]
    fn panic_path() {
        capture();
        // What the hook does with the context it was given.
        let mut f = Fake::new(CMDLINE);
        let policy = FailurePolicy {
            emergency: Emergency::Reboot,
            reboot_delay: Duration::from_secs(3),
        };
        assert_eq!(
            on_panic(&mut f, policy, Stage::Device, "boom at x.rs:1"),
            Ending::Reboot
        );
        assert_eq!(f.calls, ["sleep 3", "reboot"]);
        assert_eq!(
            lines()[..2],
            [
                "ERROR fatal: panic in stage device: boom at x.rs:1".to_string(),
                "ERROR hint: check atomixos.lowerdev= against the disk's partitions and that the storage driver is built in or in the initramfs".to_string()
            ]
        );
        // The runner hands the panic hook the running stage before each stage.
        let mut f = Fake::new(CMDLINE);
        f.panic_at = Some("mount_lower");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut f)));
        assert!(r.is_err());
        assert_eq!(f.contexts.last(), Some(&Stage::Lower));
    }

    /// The stage lines (without their timing) and the final report.
    fn stage_detail(stage: &str) -> String {
        let prefix = format!("INFO stage {stage}: ");
        let line = lines()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for {stage}: {:?}", lines()));
        line.split_once(" ms")
            .map(|(_, d)| d.trim().to_owned())
            .unwrap()
    }

    fn pos(f: &Fake, call: &str) -> usize {
        f.calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no call `{call}` in {:?}", f.calls))
    }

    #[test]
    fn first_boot_loads_repart_modules_then_applies_and_marks() {
        capture();
        let mut f = first_boot(CMDLINE);
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        // Order: table read once, marker in /run, plan checked, modules, apply, then the slot.
        let read = pos(&f, "read_disk /dev/vda");
        let run_marker = pos(&f, "write_marker /run/atomixos/fresh-flash");
        let pending = pos(&f, "repart_pending 5 /dev/vda");
        let list = pos(&f, "read_file /etc/atomix/modules-repart.load");
        let f2fs = pos(&f, "load_module /lib/modules/f2fs.ko");
        let apply = pos(&f, "repart_apply /dev/vda /run/atomix/repart");
        let lower = pos(&f, "mount_lower /dev/vda2 squashfs /run/rootfs-base");
        let overlay = pos(
            &f,
            "assemble_overlay /run/rootfs-base /run/overlay-root /sysroot",
        );
        let sysroot_marker = pos(&f, "write_marker /sysroot/etc/atomixos/fresh-flash");
        assert!(read < run_marker && run_marker < pending && pending < list);
        assert!(list < f2fs && f2fs < apply && apply < lower);
        assert!(overlay < sysroot_marker);
        assert_eq!(
            f.calls
                .iter()
                .filter(|c| c.starts_with("read_disk"))
                .count(),
            1,
            "the table is read once, before repart"
        );
        assert!(f.markers.contains(Path::new("/run/atomixos/fresh-flash")));
        assert!(
            f.markers
                .contains(Path::new("/sysroot/etc/atomixos/fresh-flash"))
        );

        assert_eq!(
            stage_detail("repart"),
            "(applied on /dev/vda: 3 changed in the table (created: 3 boot-b, 4 rootfs-b, 5 data); formatted: 3 boot-b (vfat, created), 5 data (f2fs, created))"
        );
        let l = lines();
        for want in [
            "INFO repart: formatted 3 boot-b (vfat)",
            "INFO repart: wrote the GPT",
            "INFO repart: the table of /dev/vda changes",
            "INFO repart: partition 5 (data) gets a new f2fs (created)",
            "INFO repart: 2 modules from /etc/atomix/modules-repart.load, 0 already loaded",
        ] {
            assert!(l.contains(&want.to_owned()), "`{want}` not in {l:?}");
        }
        assert!(
            l.iter()
                .any(|x| x.starts_with("INFO repart plan: backup GPT moves to the end")),
            "{l:?}"
        );

        let r = f.reports.last().unwrap();
        assert_eq!(r["fresh_flash"], true);
        let rep = &r["repart"];
        assert_eq!(rep["outcome"], "applied");
        assert_eq!(rep["disk"], "/dev/vda");
        assert_eq!(rep["error"], serde_json::Value::Null);
        let actions: Vec<(u64, &str, &str)> = rep["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["number"].as_u64().unwrap(),
                    a["label"].as_str().unwrap(),
                    a["kind"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                (3, "boot-b", "create"),
                (4, "rootfs-b", "create"),
                (5, "data", "create")
            ]
        );
        // DESIGN section 3: boot-b at 1168 MiB, rootfs-b at 1296 MiB, data at 2320 MiB.
        let starts: Vec<u64> = rep["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["start_lba"].as_u64().unwrap() * 512 / MIB)
            .collect();
        assert_eq!(starts, [1168, 1296, 2320]);
        assert_eq!(rep["formatted"][1]["label"], "data");
        // apply's report as it returned it (3 created), its keys sorted as schema 1 has them.
        assert_eq!(rep["apply"]["kernel"].as_array().unwrap().len(), 3);
        let apply_keys: Vec<&str> = rep["apply"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            apply_keys,
            ["formatted", "kernel", "make_directories", "table_written"]
        );
        let modules: Vec<&str> = r["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(modules, ["virtio_blk", "squashfs", "crc32_generic", "f2fs"]);
    }

    #[test]
    fn steady_state_is_nothing_to_do_without_modules_or_marker() {
        capture();
        let mut f = first_boot(CMDLINE);
        // The disk as the first boot left it: the plan's table.
        let before = flashed(16 << 30);
        let plan = repart_plan::plan(
            &board_definitions(),
            before.table.as_ref(),
            before.disk_bytes,
            Guid::from_u128(0xd15c),
            &PlanOptions {
                sector_size: 512,
                first_usable_lba: 32768,
            },
        )
        .unwrap();
        f.disk = Some(Current {
            table: Some(plan.table_after.clone()),
            ..before
        });
        f.pending = Some(Pending {
            table: false,
            format: Vec::new(),
        });
        // A marker shipped in the slot image is removed (and warned about).
        f.markers.insert(FRESH_FLASH_SYSROOT.into());
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.contains("modules-repart.load")
            || c.starts_with("repart_apply")
            || c.contains("f2fs")));
        assert!(f.calls.contains(&"repart_pending 5 /dev/vda".to_owned()));
        assert!(
            f.calls
                .contains(&"remove_marker /run/atomixos/fresh-flash".to_owned())
        );
        assert!(f.markers.is_empty(), "{:?}", f.markers);
        assert_eq!(
            stage_detail("fresh-flash"),
            "(not a fresh flash: /dev/vda has boot-b (partition 3))"
        );
        assert_eq!(stage_detail("repart"), "(nothing to do on /dev/vda)");
        assert_eq!(stage_detail("marker"), "(/run/atomix/initrd.json)");
        assert!(lines().iter().any(|l| {
            l.starts_with("WARN /sysroot/etc/atomixos/fresh-flash came from the slot image")
        }));
        assert!(!lines().iter().any(|l| l.contains("repart plan:")));
        let r = f.reports.last().unwrap();
        assert_eq!(r["fresh_flash"], false);
        assert_eq!(r["repart"]["outcome"], "nothing-to-do");
        assert_eq!(r["repart"]["formatted"], serde_json::json!([]));
        assert_eq!(r["modules"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_empty_data_partition_is_reformatted_without_a_marker() {
        capture();
        let mut f = first_boot(CMDLINE);
        let before = flashed(16 << 30);
        let plan = repart_plan::plan(
            &board_definitions(),
            before.table.as_ref(),
            before.disk_bytes,
            Guid::from_u128(0xd15c),
            &PlanOptions::default(),
        )
        .unwrap();
        f.disk = Some(Current {
            table: Some(plan.table_after.clone()),
            ..before
        });
        f.pending = Some(Pending {
            table: false,
            format: vec![PendingFormat {
                number: 5,
                label: "data".into(),
                format: Format::F2fs,
                reason: FormatReason::Empty,
            }],
        });
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(
            f.calls
                .contains(&"load_module /lib/modules/f2fs.ko".to_owned())
        );
        assert!(
            f.calls
                .contains(&"repart_apply /dev/vda /run/atomix/repart".to_owned())
        );
        assert!(f.markers.is_empty());
        assert_eq!(
            stage_detail("repart"),
            "(applied on /dev/vda: 0 changed in the table (created: none); formatted: 5 data (f2fs, empty))"
        );
        let r = f.reports.last().unwrap();
        assert_eq!(r["fresh_flash"], false);
        assert_eq!(r["repart"]["outcome"], "applied");
        assert_eq!(r["repart"]["formatted"][0]["reason"], "empty");
    }

    #[test]
    fn a_repart_failure_is_recorded_and_the_boot_continues() {
        capture();
        // Too small: 2 GiB cannot hold rootfs-b and data after rootfs-a.
        let mut f = first_boot(CMDLINE);
        f.disk = Some(flashed(2 << 30));
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("repart_pending")
            || c.starts_with("repart_apply")
            || c.contains("modules-repart")));
        assert_eq!(
            stage_detail("repart"),
            "(failed on /dev/vda; the boot continues (atomix.repart=auto))"
        );
        let warn = lines()
            .into_iter()
            .find(|l| l.starts_with("WARN repart failed: "))
            .unwrap();
        assert!(
            warn.starts_with("WARN repart failed: cannot plan the partitions of /dev/vda: ")
                && warn.contains("too small"),
            "{warn}"
        );
        let r = f.reports.last().unwrap();
        assert_eq!(r["repart"]["outcome"], "failed");
        assert_eq!(
            r["repart"]["error"].as_str().unwrap(),
            warn.trim_start_matches("WARN repart failed: ")
        );
        assert!(
            r["stages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["outcome"] == "ok")
        );
        // Still a fresh flash: the marker does not depend on repart succeeding.
        assert_eq!(r["fresh_flash"], true);

        // apply itself failing: recorded the same way, with what was to be formatted.
        capture();
        let mut f = first_boot(CMDLINE);
        f.fail = Some("repart_apply");
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        let r = f.reports.last().unwrap();
        assert_eq!(r["repart"]["outcome"], "failed");
        assert_eq!(r["repart"]["formatted"].as_array().unwrap().len(), 2);
        assert!(
            r["repart"]["error"].as_str().unwrap().starts_with(
                "cannot repartition /dev/vda: cannot open /nonexistent/atomix-test-disk"
            ),
            "{}",
            r["repart"]["error"]
        );
    }

    #[test]
    fn repart_required_makes_a_failure_fatal() {
        capture();
        let mut f = first_boot(&format!(
            "{CMDLINE} atomix.repart=required atomix.reboot-delay=1"
        ));
        f.disk = Some(flashed(2 << 30));
        assert_eq!(run(&mut f), Ending::Reboot);
        assert!(!f.calls.iter().any(|c| c.starts_with("mount_lower")));
        let l = lines();
        assert!(
            l.contains(
                &"ERROR fatal: stage repart failed: cannot plan the partitions of /dev/vda"
                    .to_owned()
            ),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("ERROR hint: the disk holding the slot"))
        );
        let r = f.reports.last().unwrap();
        assert_eq!(r["stages"][5]["name"], "repart");
        assert_eq!(r["stages"][5]["outcome"], "failed");
        assert_eq!(r["repart"]["outcome"], "failed");

        // A module that does not load is a repart failure too.
        capture();
        let mut f = first_boot(&format!("{CMDLINE} atomix.repart=required"));
        f.modules.insert("/lib/modules/f2fs.ko".into(), Err(8));
        assert_eq!(run(&mut f), Ending::Reboot);
        assert!(!f.calls.iter().any(|c| c.starts_with("repart_apply")));
        assert!(lines().contains(
            &"ERROR   caused by: cannot load module f2fs from /lib/modules/f2fs.ko".to_owned()
        ));
    }

    #[test]
    fn repart_off_whole_disk_slot_and_no_gpt() {
        capture();
        let mut f = first_boot(&format!("{CMDLINE} atomix.repart=off"));
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("load_definitions")));
        assert_eq!(stage_detail("repart"), "(skipped: atomix.repart=off)");
        let r = f.reports.last().unwrap();
        assert_eq!(r["repart"]["reason"], "atomix.repart=off");
        assert_eq!(
            r["fresh_flash"], true,
            "fresh-flash is decided without repart"
        );

        capture();
        let mut f = first_boot("atomixos.lowerdev=/dev/vdb atomix.repart=required");
        f.slot_disk = None;
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("read_disk")));
        assert_eq!(
            stage_detail("fresh-flash"),
            "(not a fresh flash: the slot /dev/vda2 is not a partition: no disk to look at)"
        );
        assert_eq!(
            stage_detail("repart"),
            "(skipped: the slot is not a partition)"
        );
        assert_eq!(
            f.reports.last().unwrap()["repart"]["disk"],
            serde_json::Value::Null
        );

        // A disk without a GPT is never initialised.
        capture();
        let mut f = first_boot(CMDLINE);
        f.disk = Some(Current {
            table: None,
            ..flashed(16 << 30)
        });
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("repart_")));
        assert_eq!(
            f.reports.last().unwrap()["repart"]["error"],
            "/dev/vda has no GPT: /init only completes a flashed disk and never initialises an empty one"
        );
    }

    #[test]
    fn repart_device_and_an_unreadable_disk() {
        capture();
        let mut f = first_boot(&format!("{CMDLINE} atomix.repart.device=/dev/mmcblk1"));
        f.disk = None;
        assert_eq!(run(&mut f), Ending::Exec("/sbin/init".into()));
        assert!(!f.calls.iter().any(|c| c.starts_with("slot_disk")));
        // Read by fresh-flash (not fresh: unknown), then again by repart, which fails.
        assert_eq!(
            f.calls
                .iter()
                .filter(|c| *c == "read_disk /dev/mmcblk1")
                .count(),
            2
        );
        assert_eq!(
            stage_detail("fresh-flash"),
            "(not a fresh flash: cannot read /dev/mmcblk1)"
        );
        assert!(lines().iter().any(|l| l.starts_with(
            "WARN cannot read the partition table of /dev/mmcblk1: cannot open /nonexistent/atomix-test-disk"
        )));
        let r = f.reports.last().unwrap();
        assert_eq!(r["fresh_flash"], false);
        assert_eq!(r["repart"]["disk"], "/dev/mmcblk1");
        assert!(
            r["repart"]["error"]
                .as_str()
                .unwrap()
                .starts_with("cannot read the partition table of /dev/mmcblk1: ")
        );
    }

    #[test]
    fn a_marker_that_cannot_be_written_is_fatal() {
        capture();
        let mut f = Fake::new(CMDLINE);
        f.fail = Some("write_marker");
        assert_eq!(run(&mut f), Ending::Reboot);
        assert!(
            lines().contains(
                &"ERROR fatal: stage fresh-flash failed: cannot write /run/atomixos/fresh-flash"
                    .to_owned()
            )
        );
    }
}
