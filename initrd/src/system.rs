//! The narrow interface between the boot logic and the machine.
//!
//! [`System`] is every side effect `/init` has. [`crate::host::HostSystem`] is the real one;
//! the unit tests drive the runner with a recording fake, so stage order, timing records,
//! `atomix.break=` and the failure policy are tested without root or a kernel.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_repart::apply::{ApplyError, ApplyReport, Current, Pending};
use atomix_repart::definitions::{Definition, DefinitionError};
use atomix_repart::plan::Plan;
use atomix_sysroot::SysrootError;

use crate::cmdline::FailurePolicy;
use crate::device::{DeviceError, DeviceSpec};
use crate::stage::Stage;

/// A failure of the early stage.
#[derive(Debug, thiserror::Error)]
pub enum EarlyError {
    /// A mount point could not be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An API filesystem could not be mounted.
    #[error("cannot mount {fstype} at {}", target.display())]
    Mount {
        /// `devtmpfs`, `proc`, `sysfs` or `tmpfs`.
        fstype: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `/dev/console` could not be opened or put on fds 0-2.
    #[error("cannot attach /dev/console to stdin, stdout and stderr")]
    Console {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What `finit_module` did (`initrd.json`'s `modules[].result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleLoad {
    /// The module was loaded now.
    Loaded,
    /// `EEXIST`: it was already loaded (or built in under the same name).
    AlreadyLoaded,
}

impl ModuleLoad {
    /// `loaded` or `already-loaded` (the report's `result`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleLoad::Loaded => "loaded",
            ModuleLoad::AlreadyLoaded => "already-loaded",
        }
    }
}

/// Why a module did not load.
#[derive(Debug)]
pub enum ModuleLoadError {
    /// The `.ko` file could not be opened.
    Open(io::Error),
    /// `finit_module` failed (not with `EEXIST`).
    Init(io::Error),
}

/// Every side effect of `/init`.
///
/// Methods that end the process on the real machine (`exec_init`, `reboot`, `power_off`)
/// return `Ok(())` only in fakes; the real implementation returns only on failure.
pub trait System {
    /// `CLOCK_BOOTTIME` (the kernel's uptime clock).
    fn now(&mut self) -> Duration;
    /// The early stage: devtmpfs `/dev`, `/dev/console` on fds 0-2, proc, sysfs, tmpfs `/run`
    /// (mode 0755); reads `console_loglevel` for the logger and installs the panic hook.
    ///
    /// # Errors
    ///
    /// The first step that failed.
    fn mount_early(&mut self) -> Result<(), EarlyError>;
    /// Reads a whole text file (`/proc/cmdline`, the module list).
    ///
    /// # Errors
    ///
    /// The I/O error (`NotFound` for a missing file).
    fn read_file(&mut self, path: &Path) -> io::Result<String>;
    /// `finit_module(fd, "", 0)` on the file at `path`.
    ///
    /// # Errors
    ///
    /// [`ModuleLoadError`]; `EEXIST` is [`ModuleLoad::AlreadyLoaded`], not an error.
    fn load_module(&mut self, path: &Path) -> Result<ModuleLoad, ModuleLoadError>;
    /// Waits at most `timeout` for the slot device; see [`crate::device::wait_for`].
    ///
    /// # Errors
    ///
    /// [`DeviceError`], e.g. the timeout.
    fn wait_device(&mut self, spec: &DeviceSpec, timeout: Duration)
    -> Result<PathBuf, DeviceError>;
    /// The whole disk holding the block device `slot` (sysfs, see [`crate::device::disk_of`]);
    /// `None` if `slot` is a whole disk.
    ///
    /// # Errors
    ///
    /// [`DeviceError::Sysfs`].
    fn slot_disk(&mut self, slot: &Path) -> Result<Option<PathBuf>, DeviceError>;
    /// `atomix_repart::apply::read_current` on `disk`.
    ///
    /// # Errors
    ///
    /// The disk cannot be opened or read, or holds a table that cannot be used.
    fn read_disk(&mut self, disk: &Path) -> Result<Current, ApplyError>;
    /// `atomix_repart::definitions::load_dir` (arm64) on `dir`.
    ///
    /// # Errors
    ///
    /// As `load_dir`; a missing `dir` is [`DefinitionError::ReadDir`] with `NotFound`.
    fn load_definitions(&mut self, dir: &Path) -> Result<Vec<Definition>, DefinitionError>;
    /// `atomix_repart::apply::pending`: what carrying out `plan` on `disk` would change.
    ///
    /// # Errors
    ///
    /// The disk cannot be read.
    fn repart_pending(&mut self, plan: &Plan, disk: &Path) -> Result<Pending, ApplyError>;
    /// `atomix_repart::apply::apply` with `mount_dir` for `MakeDirectories=`; each action is
    /// passed to `progress`. Returns apply's report.
    ///
    /// # Errors
    ///
    /// The first step that failed.
    fn repart_apply(
        &mut self,
        plan: &Plan,
        disk: &Path,
        mount_dir: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApplyReport, ApplyError>;
    /// Creates the empty file `path` (parents created), fsyncs it and its directory.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn write_marker(&mut self, path: &Path) -> io::Result<()>;
    /// Removes `path` if it exists (fsyncing its directory); whether it existed.
    ///
    /// # Errors
    ///
    /// The I/O error (not `NotFound`).
    fn remove_marker(&mut self, path: &Path) -> io::Result<bool>;
    /// [`atomix_sysroot::mount_lower`].
    ///
    /// # Errors
    ///
    /// As [`atomix_sysroot::mount_lower`].
    fn mount_lower(
        &mut self,
        device: &Path,
        fstype: &str,
        target: &Path,
    ) -> Result<(), SysrootError>;
    /// [`atomix_sysroot::assemble_overlay`].
    ///
    /// # Errors
    ///
    /// As [`atomix_sysroot::assemble_overlay`].
    fn assemble_overlay(
        &mut self,
        lower: &Path,
        overlay_root: &Path,
        target: &Path,
    ) -> Result<(), SysrootError>;
    /// Writes `contents` to `path` atomically (parent created, temp file, fsync, rename).
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn write_report(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// [`atomix_sysroot::switch_root`].
    ///
    /// # Errors
    ///
    /// As [`atomix_sysroot::switch_root`].
    fn switch_root(&mut self, new_root: &Path, moves: &[&str]) -> Result<(), SysrootError>;
    /// Replaces the process (PID 1 stays) with `init`; fds 0-2 are the console.
    ///
    /// # Errors
    ///
    /// Why exec failed. The real implementation never returns `Ok`.
    fn exec_init(&mut self, init: &Path) -> io::Result<()>;
    /// Whether the initramfs has `/bin/sh`.
    fn shell_available(&mut self) -> bool;
    /// Runs `/bin/sh` as a child on the console and waits for it; its exit code.
    ///
    /// # Errors
    ///
    /// Spawning or waiting failed.
    fn run_shell(&mut self) -> io::Result<Option<i32>>;
    /// Sleeps.
    fn sleep(&mut self, duration: Duration);
    /// Syncs and reboots (`RB_AUTOBOOT`).
    ///
    /// # Errors
    ///
    /// Why the reboot call failed. The real implementation never returns `Ok`.
    fn reboot(&mut self) -> io::Result<()>;
    /// Syncs and powers off (`atomix.emergency=halt`).
    ///
    /// # Errors
    ///
    /// Why the power-off call failed. The real implementation never returns `Ok`.
    fn power_off(&mut self) -> io::Result<()>;
    /// Tells the panic hook which stage runs and which policy applies.
    fn set_panic_context(&mut self, stage: Stage, policy: FailurePolicy);
}
