//! The real [`crate::system::System`]: the only module of `/init` that touches the machine.
//!
//! Must not: hold boot logic; each trait impl only carries out its call.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use atomix_repart::apply::{self, ApplyError, ApplyOptions, ApplyReport, Current, Pending};
use atomix_repart::definitions::{self, Arch, Definition, DefinitionError};
use atomix_repart::plan::Plan;
use atomix_sysroot::SysrootError;
use rustix::mount::MountFlags;

use crate::cmdline::FailurePolicy;
use crate::device::{self, DeviceError, DeviceSpec, HostPaths, NetlinkUevents, RepartGpt};
use crate::firstboot::RepartDisk;
use crate::kmsg;
use crate::stage::Stage;
use crate::system::{
    Clock, EarlyError, EarlyMounts, Files, Markers, ModuleLoad, ModuleLoadError, ModuleLoader,
    Rescue, RootMounts, SlotDevices,
};
use crate::{boot, policy};

/// What the panic hook needs to know: the running stage and the policy in force.
static PANIC_CONTEXT: Mutex<Option<(Stage, FailurePolicy)>> = Mutex::new(None);

const SHELL: &str = "/bin/sh";

/// The machine `/init` runs on.
#[derive(Debug, Default)]
pub struct HostSystem;

impl HostSystem {
    /// The real system.
    pub fn new() -> Self {
        HostSystem
    }
}

/// `CLOCK_BOOTTIME`, the clock of the kernel's timestamps and `/proc/uptime`.
pub fn boottime() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn mkdir(path: &str) -> Result<(), EarlyError> {
    fs::create_dir_all(path).map_err(|source| EarlyError::CreateDir {
        path: PathBuf::from(path),
        source,
    })
}

fn mount_api(
    fstype: &'static str,
    target: &str,
    flags: MountFlags,
    data: &std::ffi::CStr,
) -> Result<(), EarlyError> {
    mkdir(target)?;
    rustix::mount::mount(fstype, target, fstype, flags, data).map_err(|e| EarlyError::Mount {
        fstype,
        target: PathBuf::from(target),
        source: e.into(),
    })
}

fn attach_console() -> io::Result<()> {
    let console = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")?;
    rustix::stdio::dup2_stdin(&console)?;
    rustix::stdio::dup2_stdout(&console)?;
    rustix::stdio::dup2_stderr(&console)?;
    Ok(())
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = match (
            info.payload().downcast_ref::<&str>(),
            info.payload().downcast_ref::<String>(),
        ) {
            (Some(s), _) => (*s).to_owned(),
            (None, Some(s)) => s.clone(),
            (None, None) => "(no message)".to_owned(),
        };
        let message = match info.location() {
            Some(l) => format!("{message} at {}:{}", l.file(), l.line()),
            None => message,
        };
        let (stage, policy) = PANIC_CONTEXT
            .lock()
            .map(|c| *c)
            .unwrap_or_else(|p| *p.into_inner())
            .unwrap_or((Stage::Early, FailurePolicy::default()));
        // Returns only if reboot/power-off failed; the process then aborts and the kernel panics.
        policy::on_panic(&mut HostSystem, policy, stage, &message);
    }));
}

fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

impl Clock for HostSystem {
    fn now(&mut self) -> Duration {
        boottime()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl EarlyMounts for HostSystem {
    fn mount_early(&mut self) -> Result<(), EarlyError> {
        install_panic_hook();
        let api = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
        mount_api("devtmpfs", "/dev", MountFlags::NOSUID, c"mode=0755")?;
        attach_console().map_err(|source| EarlyError::Console { source })?;
        mount_api("proc", "/proc", api, c"")?;
        // As early as possible, so the logger mirrors correctly even if a later step fails.
        match fs::read_to_string("/proc/sys/kernel/printk")
            .ok()
            .as_deref()
            .and_then(kmsg::parse_console_loglevel)
        {
            Some(level) => kmsg::global().set_console_loglevel(level),
            None => log::warn!("cannot read console_loglevel from /proc/sys/kernel/printk"),
        }
        mount_api("sysfs", "/sys", api, c"")?;
        mount_api(
            "tmpfs",
            "/run",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=0755",
        )?;
        Ok(())
    }
}

impl Files for HostSystem {
    fn read_file(&mut self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn write_report(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    }
}

impl ModuleLoader for HostSystem {
    fn load_module(&mut self, path: &Path) -> Result<ModuleLoad, ModuleLoadError> {
        let f = File::open(path).map_err(ModuleLoadError::Open)?;
        match rustix::system::finit_module(&f, c"", 0) {
            Ok(()) => Ok(ModuleLoad::Loaded),
            Err(rustix::io::Errno::EXIST) => Ok(ModuleLoad::AlreadyLoaded),
            Err(e) => Err(ModuleLoadError::Init(e.into())),
        }
    }
}

impl SlotDevices for HostSystem {
    fn wait_device(
        &mut self,
        spec: &DeviceSpec,
        timeout: Duration,
    ) -> Result<PathBuf, DeviceError> {
        // Opened only if the first scan does not find the device (see `device::wait_for`).
        let mut events = NetlinkUevents::new();
        device::wait_for(
            &HostPaths::system(),
            spec,
            timeout,
            &mut RepartGpt,
            &mut events,
            &mut boottime,
        )
    }

    fn slot_disk(&mut self, slot: &Path) -> Result<Option<PathBuf>, DeviceError> {
        device::disk_of(&HostPaths::system(), slot)
    }
}

impl RepartDisk for HostSystem {
    fn read_disk(&mut self, disk: &Path) -> Result<Current, ApplyError> {
        apply::read_current(disk)
    }

    fn load_definitions(&mut self, dir: &Path) -> Result<Vec<Definition>, DefinitionError> {
        definitions::load_dir(dir, Arch::Arm64)
    }

    fn repart_pending(&mut self, plan: &Plan, disk: &Path) -> Result<Pending, ApplyError> {
        apply::pending(plan, disk)
    }

    fn repart_apply(
        &mut self,
        plan: &Plan,
        disk: &Path,
        mount_dir: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApplyReport, ApplyError> {
        let opts = ApplyOptions {
            mount_dir: mount_dir.to_path_buf(),
            ..ApplyOptions::default()
        };
        apply::apply(plan, disk, &opts, progress)
    }
}

impl Markers for HostSystem {
    fn write_marker(&mut self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(dir)?;
        File::create(path)?.sync_all()?;
        File::open(dir)?.sync_all()
    }

    fn remove_marker(&mut self, path: &Path) -> io::Result<bool> {
        match fs::remove_file(path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    File::open(dir)?.sync_all()?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl RootMounts for HostSystem {
    fn mount_lower(
        &mut self,
        device: &Path,
        fstype: &str,
        target: &Path,
    ) -> Result<(), SysrootError> {
        atomix_sysroot::mount_lower(device, fstype, target)
    }

    fn assemble_overlay(
        &mut self,
        lower: &Path,
        overlay_root: &Path,
        target: &Path,
    ) -> Result<(), SysrootError> {
        atomix_sysroot::assemble_overlay(lower, overlay_root, target)
    }

    fn switch_root(&mut self, new_root: &Path, moves: &[&str]) -> Result<(), SysrootError> {
        atomix_sysroot::switch_root(new_root, moves)
    }

    fn exec_init(&mut self, init: &Path) -> io::Result<()> {
        Err(Command::new(init).exec())
    }
}

impl Rescue for HostSystem {
    fn shell_available(&mut self) -> bool {
        Path::new(SHELL).exists()
    }

    fn run_shell(&mut self) -> io::Result<Option<i32>> {
        Ok(Command::new(SHELL).status()?.code())
    }

    fn reboot(&mut self) -> io::Result<()> {
        power(rustix::system::RebootCommand::Restart)
    }

    fn power_off(&mut self) -> io::Result<()> {
        power(rustix::system::RebootCommand::PowerOff)
    }

    fn set_panic_context(&mut self, stage: Stage, policy: FailurePolicy) {
        let mut ctx = PANIC_CONTEXT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *ctx = Some((stage, policy));
    }
}

/// Syncs and reboots or powers off; refuses outside PID 1 so a stray run cannot reboot a host.
fn power(cmd: rustix::system::RebootCommand) -> io::Result<()> {
    if !is_pid1() {
        return Err(io::Error::other(
            "not PID 1: refusing to reboot or power off",
        ));
    }
    rustix::fs::sync();
    rustix::system::reboot(cmd)?;
    Ok(())
}

/// The `/init` entry point: installs the logger, refuses to run outside PID 1 (exit 1), runs
/// the boot, and exits 1 if the boot ever returns (the kernel then panics, and reboots if
/// `panic=` is set).
pub fn main() -> ! {
    kmsg::install();
    if !is_pid1() {
        eprintln!(
            "{}: not running as PID 1 (pid {}): this is the initramfs /init; refusing to mount anything or reboot",
            kmsg::TAG,
            rustix::process::getpid().as_raw_nonzero()
        );
        std::process::exit(1);
    }
    let ending = boot::run(&mut HostSystem::new());
    log::error!("/init cannot continue ({ending:?}); exiting, the kernel will panic");
    std::process::exit(1)
}
