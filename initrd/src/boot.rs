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

use crate::cmdline::{BootParams, CmdlineError, Emergency, FailurePolicy};
use crate::device::DeviceError;
use crate::modules::{MODULES_LOAD, ModuleListError, parse_list};
use crate::report::{
    ModuleRecord, PROC_SELF_STATUS, REPORT_PATH, Report, SlotRecord, StageRecord, ms,
    parse_vm_hwm_kib,
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
    /// The module list exists but cannot be read.
    #[error("cannot read {MODULES_LOAD}")]
    ReadModuleList {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The module list is malformed.
    #[error(transparent)]
    ModuleList(#[from] ModuleListError),
    /// A listed module file cannot be opened.
    #[error("cannot open module {name} at {}", path.display())]
    OpenModule {
        /// Module name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `finit_module` failed for a listed module.
    #[error("cannot load module {name} from {}", path.display())]
    LoadModule {
        /// Module name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The errno from `finit_module`.
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
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        boot.report.stages.push(StageRecord {
            name: stage.name().to_owned(),
            ms: ms(took),
            outcome: outcome.to_owned(),
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
                self.write_report()?;
                Ok(Some(REPORT_PATH.to_owned()))
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
        let text = match self.sys.read_file(Path::new(MODULES_LOAD)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(format!("no {MODULES_LOAD}: no modules")));
            }
            Err(source) => return Err(StageError::ReadModuleList { source }),
        };
        let list = parse_list(&text)?;
        let mut already = 0;
        for m in &list {
            let t0 = self.sys.now();
            let load = self.sys.load_module(&m.path).map_err(|e| match e {
                ModuleLoadError::Open(source) => StageError::OpenModule {
                    name: m.name.clone(),
                    path: m.path.clone(),
                    source,
                },
                ModuleLoadError::Init(source) => StageError::LoadModule {
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
                result: load.as_str().to_owned(),
            });
        }
        Ok(Some(format!(
            "{} modules, {} already loaded",
            list.len(),
            already
        )))
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
        self.report.peak_rss_kib = self
            .sys
            .read_file(Path::new(PROC_SELF_STATUS))
            .ok()
            .as_deref()
            .and_then(parse_vm_hwm_kib);
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

/// The messages of `err`'s sources, outermost first (not `err` itself).
pub fn error_chain(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push(e.to_string());
        cur = e.source();
    }
    out
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
    use std::cell::RefCell;
    use std::collections::HashMap;
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
    }

    impl Fake {
        fn new(cmdline: &str) -> Self {
            let mut f = Fake {
                clock: Duration::from_millis(900),
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
                "mount_lower /dev/vda2 squashfs /run/rootfs-base",
                "assemble_overlay /run/rootfs-base /run/overlay-root /sysroot",
                "write_report /run/atomix/initrd.json",
                "switch_root /sysroot /dev,/proc,/sys,/run",
                "read_file /proc/self/status",
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
                "INFO stage lower: ok in 1.0 ms (/dev/vda2 squashfs at /run/rootfs-base)",
                "INFO stage overlay: ok in 1.0 ms (/sysroot)",
                "INFO stage marker: ok in 1.0 ms (/run/atomix/initrd.json)",
                "INFO stage switch-root: ok in 1.0 ms (/sysroot is /)",
            ]
        );
        assert!(lines().contains(&"INFO boot done in 12.0 ms: exec /sbin/init".to_string()));

        // The marker stage's report has the stages before it; the final one has all of them.
        assert_eq!(f.reports.len(), 2);
        let first = &f.reports[0];
        assert_eq!(first["stages"].as_array().unwrap().len(), 6);
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
            r["total_ms"], 11.0,
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
        let tail: Vec<&str> = f
            .calls
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
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
        let tail: Vec<&str> = f
            .calls
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(String::as_str)
            .collect();
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
        let tail: Vec<&str> = f
            .calls
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(String::as_str)
            .collect();
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
        assert!(f.calls[i - 1].starts_with("wait_device"));
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
}
