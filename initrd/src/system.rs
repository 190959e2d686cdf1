//! The narrow interfaces between the boot logic and the machine, one per subsystem.
//!
//! Each piece of logic asks only for the traits it uses: the failure policy for [`Clock`] and
//! [`Rescue`], the first-boot decisions for [`crate::firstboot::RepartDisk`] and [`Markers`],
//! and so on. [`System`] is all of them, what the stage runner needs;
//! [`crate::host::HostSystem`] is the real one, and the unit tests drive the same code with a
//! recording fake, so stage order, timing records, `atomix.break=` and the failure policy are
//! tested without root or a kernel.
//!
//! Must not: hold logic. Methods that end the process on the real machine (`exec_init`,
//! `reboot`, `power_off`) return `Ok(())` only in fakes; the real ones return only on failure.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_sysroot::SysrootError;

use crate::cmdline::FailurePolicy;
use crate::device::{DeviceError, DeviceSpec};
use crate::firstboot::RepartDisk;
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

/// The boot clock.
pub trait Clock {
    /// `CLOCK_BOOTTIME` (the kernel's uptime clock).
    fn now(&mut self) -> Duration;
    /// Sleeps.
    fn sleep(&mut self, duration: Duration);
}

/// The early stage's mounts.
pub trait EarlyMounts {
    /// The early stage: devtmpfs `/dev`, `/dev/console` on fds 0-2, proc, sysfs, tmpfs `/run`
    /// (mode 0755); reads `console_loglevel` for the logger and installs the panic hook.
    ///
    /// # Errors
    ///
    /// The first step that failed.
    fn mount_early(&mut self) -> Result<(), EarlyError>;
}

/// Reading files and writing the report.
pub trait Files {
    /// Reads a whole text file (`/proc/cmdline`, the module list).
    ///
    /// # Errors
    ///
    /// The I/O error (`NotFound` for a missing file).
    fn read_file(&mut self, path: &Path) -> io::Result<String>;
    /// Writes `contents` to `path` atomically (parent created, temp file, fsync, rename).
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn write_report(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;
}

/// Kernel modules.
pub trait ModuleLoader {
    /// `finit_module(fd, "", 0)` on the file at `path`.
    ///
    /// # Errors
    ///
    /// [`ModuleLoadError`]; `EEXIST` is [`ModuleLoad::AlreadyLoaded`], not an error.
    fn load_module(&mut self, path: &Path) -> Result<ModuleLoad, ModuleLoadError>;
}

/// Finding the slot and its disk.
pub trait SlotDevices {
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
}

/// The fresh-flash marker files.
pub trait Markers {
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
}

/// Building the new root and handing over to it.
pub trait RootMounts {
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
}

/// What the failure policy and the panic hook act with.
pub trait Rescue {
    /// Whether the initramfs has `/bin/sh`.
    fn shell_available(&mut self) -> bool;
    /// Runs `/bin/sh` as a child on the console and waits for it; its exit code.
    ///
    /// # Errors
    ///
    /// Spawning or waiting failed.
    fn run_shell(&mut self) -> io::Result<Option<i32>>;
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

/// Every side effect of `/init`: what the stage runner needs. Implemented for every type that
/// has all the narrow traits.
pub trait System:
    Clock
    + EarlyMounts
    + Files
    + ModuleLoader
    + SlotDevices
    + RepartDisk
    + Markers
    + RootMounts
    + Rescue
{
}

impl<T> System for T where
    T: Clock
        + EarlyMounts
        + Files
        + ModuleLoader
        + SlotDevices
        + RepartDisk
        + Markers
        + RootMounts
        + Rescue
{
}
