//! The stage runner.
//!
//! [`run`] executes the stages of [`crate::stage::STAGES`] in that order on a [`System`], each
//! stage taking the values the ones before it returned (the boot parameters, the slot device,
//! the disk the fresh-flash stage read). It times each on `CLOCK_BOOTTIME`, logs one info line
//! per stage (`stage device: ok in 12.3 ms (PARTLABEL=rootfs-a -> /dev/vda2)`), records it in the
//! report, honours `atomix.break=`, and on the first error hands over to the failure policy
//! ([`crate::policy`]). It returns only when the process cannot go on: on the real machine exec,
//! reboot and power-off do not return.
//!
//! Must not: decide first-boot questions (fresh flash, repart: [`crate::firstboot`]) or what a
//! failure leads to ([`crate::policy`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_sysroot::SysrootError;

use crate::cmdline::{BootParams, CmdlineError, FailurePolicy};
use crate::device::DeviceError;
use crate::firstboot::fresh_flash::{self, FlashedDisk, FreshFlashError};
use crate::firstboot::{MarkerError, RepartError, repart};
use crate::modules::{self, MODULES_LOAD, ModulesError};
pub use crate::policy::Ending;
use crate::policy::fail;
use crate::report::{
    PROC_SELF_SMAPS_ROLLUP, PROC_SELF_STATUS, REPORT_PATH, Report, SlotRecord, StageOutcome,
    StageRecord, ms, parse_smaps_rss_kib, parse_vm_hwm_kib, peak_rss_kib,
};
use crate::stage::Stage;
use crate::system::{EarlyError, System};

#[cfg(test)]
mod tests;

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
    /// The fresh-flash stage failed.
    #[error(transparent)]
    FreshFlash(#[from] FreshFlashError),
    /// Repartitioning failed with `atomix.repart=required`.
    #[error(transparent)]
    Repart(#[from] Box<RepartError>),
    /// The fresh-flash marker in the new root could not be written or removed.
    #[error(transparent)]
    Marker(#[from] MarkerError),
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

/// What a stage returns: its value for the stages after it, and the detail for its log line.
struct Done<T> {
    value: T,
    detail: Option<String>,
}

impl<T> Done<T> {
    fn new(value: T, detail: impl Into<String>) -> Self {
        Done {
            value,
            detail: Some(detail.into()),
        }
    }
}

struct Runner<'s, S: System> {
    sys: &'s mut S,
    start: Duration,
    report: Report,
    /// `atomix.emergency=` and `atomix.reboot-delay=`: the default until the command line was
    /// read, what could be salvaged of it if it did not parse, then the parsed policy.
    policy: FailurePolicy,
    /// `atomix.break=`, once the command line was parsed.
    break_before: Option<Stage>,
}

/// Runs the boot on `sys`. See the module docs.
pub fn run<S: System>(sys: &mut S) -> Ending {
    let start = sys.now();
    let mut runner = Runner {
        sys,
        start,
        report: Report::new(start),
        policy: FailurePolicy::default(),
        break_before: None,
    };
    match runner.stages() {
        Ok(init) => runner.finish(init),
        Err(ending) => ending,
    }
}

impl<S: System> Runner<'_, S> {
    /// The stages in [`crate::stage::STAGES`] order, each fed what the earlier ones returned;
    /// `init=` when all succeeded.
    fn stages(&mut self) -> Result<PathBuf, Ending> {
        self.stage(Stage::Early, |r| {
            r.sys.mount_early()?;
            Ok(Done {
                value: (),
                detail: None,
            })
        })?;
        let params = self.stage(Stage::Cmdline, Self::cmdline)?;
        self.stage(Stage::Modules, Self::modules)?;
        let slot = self.stage(Stage::Device, |r| r.device(&params))?;
        let found = self.stage(Stage::FreshFlash, |r| r.fresh_flash(&params, &slot))?;
        let fresh = found.fresh;
        self.stage(Stage::Repart, |r| r.repart(&params, found))?;
        self.stage(Stage::Lower, |r| {
            let fstype = &params.lowerfstype;
            r.sys.mount_lower(&slot, fstype, Path::new(ROOTFS_BASE))?;
            let detail = format!("{} {fstype} at {ROOTFS_BASE}", slot.display());
            Ok(Done::new((), detail))
        })?;
        self.stage(Stage::Overlay, |r| {
            r.sys.assemble_overlay(
                Path::new(ROOTFS_BASE),
                Path::new(OVERLAY_ROOT),
                Path::new(SYSROOT),
            )?;
            Ok(Done::new((), SYSROOT))
        })?;
        self.stage(Stage::Marker, |r| {
            let marker = fresh_flash::sysroot_marker(r.sys, fresh)?;
            r.write_report()?;
            Ok(Done::new((), format!("{REPORT_PATH}{marker}")))
        })?;
        self.stage(Stage::SwitchRoot, |r| {
            r.sys.switch_root(Path::new(SYSROOT), MOVED_MOUNTS)?;
            Ok(Done::new((), format!("{SYSROOT} is /")))
        })?;
        Ok(params.init)
    }

    /// Runs one stage: the break point, the panic context, timing, the log line and the record;
    /// on failure the best-effort report and the failure policy.
    fn stage<T>(
        &mut self,
        stage: Stage,
        body: impl FnOnce(&mut Self) -> Result<Done<T>, StageError>,
    ) -> Result<T, Ending> {
        if self.break_before == Some(stage) {
            self.break_here(stage);
        }
        self.sys.set_panic_context(stage, self.policy);
        let t0 = self.sys.now();
        let result = body(self);
        let took = self.sys.now().saturating_sub(t0);
        let outcome = if result.is_ok() {
            StageOutcome::Ok
        } else {
            StageOutcome::Failed
        };
        self.report.stages.push(StageRecord {
            name: stage,
            ms: ms(took),
            outcome,
        });
        match result {
            Ok(done) => {
                log::info!(
                    "stage {stage}: ok in {:.1} ms{}",
                    took.as_secs_f64() * 1000.0,
                    done.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                );
                Ok(done.value)
            }
            Err(err) => {
                log::info!(
                    "stage {stage}: failed in {:.1} ms",
                    took.as_secs_f64() * 1000.0
                );
                // Best effort, for a rescue shell: /run may not even be mounted.
                if stage != Stage::Early
                    && let Ok(json) = self.report_json()
                {
                    let _ = self.sys.write_report(Path::new(REPORT_PATH), &json);
                }
                // A failed cmdline stage has salvaged what it could of the policy.
                Err(fail(self.sys, self.policy, stage, &err))
            }
        }
    }

    fn break_here(&mut self, stage: Stage) {
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

    fn cmdline(&mut self) -> Result<Done<BootParams>, StageError> {
        let text = self
            .sys
            .read_file(Path::new(CMDLINE_PATH))
            .map_err(|source| StageError::ReadCmdline { source })?;
        self.policy = FailurePolicy::salvage(&text);
        let p = BootParams::parse(&text)?;
        self.policy = p.policy;
        self.break_before = p.break_before;
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
        Ok(Done::new(p, detail))
    }

    fn modules(&mut self) -> Result<Done<()>, StageError> {
        let detail = match modules::load_list(self.sys, MODULES_LOAD, &mut self.report.modules)? {
            Some(l) => format!("{} modules, {} already loaded", l.modules, l.already),
            None => format!("no {MODULES_LOAD}: no modules"),
        };
        Ok(Done::new((), detail))
    }

    /// Waits for the slot; its device node.
    fn device(&mut self, p: &BootParams) -> Result<Done<PathBuf>, StageError> {
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
        Ok(Done::new(dev, detail))
    }

    fn fresh_flash(
        &mut self,
        p: &BootParams,
        slot: &Path,
    ) -> Result<Done<FlashedDisk>, StageError> {
        let found = fresh_flash::decide(self.sys, p.repart_device.as_deref(), slot)?;
        self.report.fresh_flash = Some(found.fresh.is_fresh());
        let detail = found.detail();
        Ok(Done::new(found, detail))
    }

    fn repart(&mut self, p: &BootParams, found: FlashedDisk) -> Result<Done<()>, StageError> {
        let detail = repart::run(self.sys, p.repart, found, &mut self.report)?;
        Ok(Done::new((), detail))
    }

    /// After the last stage: the final report (now that `/run` is back at `/run`) and the exec.
    fn finish(mut self, init: PathBuf) -> Ending {
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
            log::warn!("{}", atomix_errchain::OneLine(&e));
        }
        log::info!(
            "boot done in {:.1} ms: exec {}",
            self.sys.now().saturating_sub(self.start).as_secs_f64() * 1000.0,
            init.display()
        );
        match self.sys.exec_init(&init) {
            Ok(()) => Ending::Exec(init),
            Err(source) => fail(
                self.sys,
                self.policy,
                Stage::SwitchRoot,
                &StageError::Exec { init, source },
            ),
        }
    }
}
