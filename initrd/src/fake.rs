//! The recording fake of every narrow trait in [`crate::system`] and
//! [`crate::firstboot::RepartDisk`], a logger that captures lines per test thread, and the disk
//! and board fixtures the runner, first-boot and policy tests share.
//!
//! Calls are recorded as typed [`Call`] values; a failure or a panic is injected by naming an
//! [`Op`]. Each call takes 1 ms of boot time.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_repart::apply::{
    ApplyError, ApplyReport, Current, FormatReason, KernelPartition, Pending, PendingFormat,
};
use atomix_repart::definitions::{Arch, Definition, DefinitionError, Format};
use atomix_repart::gpt::{Guid, Partition, Table, types};
use atomix_repart::plan::{ActionKind, Plan};
use atomix_sysroot::SysrootError;

use crate::boot::CMDLINE_PATH;
use crate::cmdline::FailurePolicy;
use crate::device::{DeviceError, DeviceSpec};
use crate::firstboot::RepartDisk;
use crate::modules::{MODULES_LOAD, MODULES_REPART_LOAD};
use crate::stage::Stage;
use crate::system::{
    Clock, EarlyError, EarlyMounts, Files, Markers, ModuleLoad, ModuleLoadError, ModuleLoader,
    Rescue, RootMounts, SlotDevices,
};

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
pub fn capture() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Debug);
    LINES.with(|l| l.borrow_mut().clear());
}
pub fn lines() -> Vec<String> {
    LINES.with(|l| l.borrow().clone())
}

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MountEarly,
    ReadFile(PathBuf),
    LoadModule(PathBuf),
    WaitDevice {
        spec: String,
        timeout: Duration,
    },
    SlotDisk(PathBuf),
    ReadDisk(PathBuf),
    LoadDefinitions(PathBuf),
    /// The plan's number of actions and the disk.
    RepartPending {
        actions: usize,
        disk: PathBuf,
    },
    RepartApply {
        disk: PathBuf,
        mount_dir: PathBuf,
    },
    WriteMarker(PathBuf),
    RemoveMarker(PathBuf),
    MountLower {
        device: PathBuf,
        fstype: String,
        target: PathBuf,
    },
    AssembleOverlay {
        lower: PathBuf,
        overlay_root: PathBuf,
        target: PathBuf,
    },
    WriteReport(PathBuf),
    SwitchRoot {
        new_root: PathBuf,
        moves: Vec<String>,
    },
    ExecInit(PathBuf),
    RunShell,
    Sleep(Duration),
    Reboot,
    PowerOff,
}

/// A kind of call, to inject a failure or a panic or to look for any call of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    MountEarly,
    ReadFile,
    LoadModule,
    WaitDevice,
    SlotDisk,
    ReadDisk,
    LoadDefinitions,
    RepartPending,
    RepartApply,
    WriteMarker,
    RemoveMarker,
    MountLower,
    AssembleOverlay,
    WriteReport,
    SwitchRoot,
    ExecInit,
    RunShell,
    Sleep,
    Reboot,
    PowerOff,
}

impl Call {
    /// Its kind.
    pub fn op(&self) -> Op {
        match self {
            Call::MountEarly => Op::MountEarly,
            Call::ReadFile(_) => Op::ReadFile,
            Call::LoadModule(_) => Op::LoadModule,
            Call::WaitDevice { .. } => Op::WaitDevice,
            Call::SlotDisk(_) => Op::SlotDisk,
            Call::ReadDisk(_) => Op::ReadDisk,
            Call::LoadDefinitions(_) => Op::LoadDefinitions,
            Call::RepartPending { .. } => Op::RepartPending,
            Call::RepartApply { .. } => Op::RepartApply,
            Call::WriteMarker(_) => Op::WriteMarker,
            Call::RemoveMarker(_) => Op::RemoveMarker,
            Call::MountLower { .. } => Op::MountLower,
            Call::AssembleOverlay { .. } => Op::AssembleOverlay,
            Call::WriteReport(_) => Op::WriteReport,
            Call::SwitchRoot { .. } => Op::SwitchRoot,
            Call::ExecInit(_) => Op::ExecInit,
            Call::RunShell => Op::RunShell,
            Call::Sleep(_) => Op::Sleep,
            Call::Reboot => Op::Reboot,
            Call::PowerOff => Op::PowerOff,
        }
    }

    /// `ReadFile(path)`.
    pub fn read_file(path: &str) -> Call {
        Call::ReadFile(path.into())
    }

    /// `LoadModule(path)`.
    pub fn load_module(path: &str) -> Call {
        Call::LoadModule(path.into())
    }

    /// `MountLower` of `device` as `fstype` at `/run/rootfs-base`.
    pub fn mount_lower(device: &str, fstype: &str) -> Call {
        Call::MountLower {
            device: device.into(),
            fstype: fstype.into(),
            target: "/run/rootfs-base".into(),
        }
    }

    /// `Sleep` of whole seconds.
    pub fn sleep(secs: u64) -> Call {
        Call::Sleep(Duration::from_secs(secs))
    }

    /// `WriteReport` of `/run/atomix/initrd.json`.
    pub fn write_report() -> Call {
        Call::WriteReport("/run/atomix/initrd.json".into())
    }
}

// --- the recording fake -------------------------------------------------------------------

#[derive(Default)]
pub struct Fake {
    pub clock: Duration,
    pub calls: Vec<Call>,
    pub files: HashMap<PathBuf, String>,
    pub modules: HashMap<PathBuf, Result<ModuleLoad, i32>>,
    pub fail: Option<Op>,
    pub panic_at: Option<Op>,
    pub shell: bool,
    pub reports: Vec<serde_json::Value>,
    pub contexts: Vec<Stage>,
    /// `slot_disk`'s answer.
    pub slot_disk: Option<PathBuf>,
    /// `read_disk`'s answer; `None` fails.
    pub disk: Option<Current>,
    /// `load_definitions`'s answer; `None` is a missing directory.
    pub definitions: Option<Vec<Definition>>,
    /// `repart_pending`'s answer; `None` fails.
    pub pending: Option<Pending>,
    /// Existing marker files.
    pub markers: HashSet<PathBuf>,
    /// Lines `repart_apply` passes to its progress callback.
    pub progress: Vec<&'static str>,
}

/// A real `ApplyError`: reading a disk that does not exist.
fn apply_error() -> ApplyError {
    atomix_repart::apply::read_current(Path::new("/nonexistent/atomix-test-disk")).unwrap_err()
}

impl Fake {
    /// The last `n` recorded calls.
    pub fn last_calls(&self, n: usize) -> &[Call] {
        &self.calls[self.calls.len().saturating_sub(n)..]
    }

    /// Whether any call of kind `op` was made.
    pub fn called(&self, op: Op) -> bool {
        self.calls.iter().any(|c| c.op() == op)
    }

    /// A fake whose `/proc/cmdline` is `cmdline`, on a flashed 16 GiB `/dev/vda`.
    pub fn new(cmdline: &str) -> Self {
        let mut f = Fake {
            clock: Duration::from_millis(900),
            slot_disk: Some("/dev/vda".into()),
            disk: Some(flashed(16 << 30)),
            ..Fake::default()
        };
        f.files.insert(CMDLINE_PATH.into(), format!("{cmdline}\n"));
        f
    }
    /// Records `call`; whether it is to fail.
    fn step(&mut self, call: Call) -> bool {
        self.clock += Duration::from_millis(1);
        let op = call.op();
        if self.panic_at == Some(op) {
            panic!("injected panic in {op:?}");
        }
        self.calls.push(call);
        self.fail == Some(op)
    }
    fn err() -> io::Error {
        io::Error::from_raw_os_error(5)
    }
}

impl Clock for Fake {
    fn now(&mut self) -> Duration {
        self.clock
    }
    fn sleep(&mut self, duration: Duration) {
        self.step(Call::Sleep(duration));
        self.clock += duration;
    }
}

impl EarlyMounts for Fake {
    fn mount_early(&mut self) -> Result<(), EarlyError> {
        if self.step(Call::MountEarly) {
            return Err(EarlyError::Mount {
                fstype: "devtmpfs",
                target: "/dev".into(),
                source: Self::err(),
            });
        }
        Ok(())
    }
}

impl Files for Fake {
    fn read_file(&mut self, path: &Path) -> io::Result<String> {
        if self.step(Call::ReadFile(path.to_path_buf())) {
            return Err(Self::err());
        }
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn write_report(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        if self.step(Call::WriteReport(path.to_path_buf())) {
            return Err(Self::err());
        }
        self.reports.push(serde_json::from_slice(contents).unwrap());
        Ok(())
    }
}

impl ModuleLoader for Fake {
    fn load_module(&mut self, path: &Path) -> Result<ModuleLoad, ModuleLoadError> {
        self.step(Call::LoadModule(path.to_path_buf()));
        match self.modules.get(path) {
            Some(Ok(l)) => Ok(*l),
            Some(Err(errno)) => Err(ModuleLoadError::Init(io::Error::from_raw_os_error(*errno))),
            None => Err(ModuleLoadError::Open(io::Error::from(
                io::ErrorKind::NotFound,
            ))),
        }
    }
}

impl SlotDevices for Fake {
    fn wait_device(
        &mut self,
        spec: &DeviceSpec,
        timeout: Duration,
    ) -> Result<PathBuf, DeviceError> {
        if self.step(Call::WaitDevice {
            spec: spec.to_string(),
            timeout,
        }) {
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
        self.step(Call::SlotDisk(slot.to_path_buf()));
        Ok(self.slot_disk.clone())
    }
}

impl RepartDisk for Fake {
    fn read_disk(&mut self, disk: &Path) -> Result<Current, ApplyError> {
        self.step(Call::ReadDisk(disk.to_path_buf()));
        self.disk.clone().ok_or_else(apply_error)
    }
    fn load_definitions(&mut self, dir: &Path) -> Result<Vec<Definition>, DefinitionError> {
        self.step(Call::LoadDefinitions(dir.to_path_buf()));
        self.definitions
            .clone()
            .ok_or_else(|| DefinitionError::ReadDir {
                path: dir.to_path_buf(),
                source: io::Error::from(io::ErrorKind::NotFound),
            })
    }
    fn repart_pending(&mut self, plan: &Plan, disk: &Path) -> Result<Pending, ApplyError> {
        self.step(Call::RepartPending {
            actions: plan.actions.len(),
            disk: disk.to_path_buf(),
        });
        self.pending.clone().ok_or_else(apply_error)
    }
    fn repart_apply(
        &mut self,
        plan: &Plan,
        disk: &Path,
        mount_dir: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApplyReport, ApplyError> {
        let fail = self.step(Call::RepartApply {
            disk: disk.to_path_buf(),
            mount_dir: mount_dir.to_path_buf(),
        });
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
}

impl Markers for Fake {
    fn write_marker(&mut self, path: &Path) -> io::Result<()> {
        if self.step(Call::WriteMarker(path.to_path_buf())) {
            return Err(Self::err());
        }
        self.markers.insert(path.to_path_buf());
        Ok(())
    }
    fn remove_marker(&mut self, path: &Path) -> io::Result<bool> {
        self.step(Call::RemoveMarker(path.to_path_buf()));
        Ok(self.markers.remove(path))
    }
}

impl RootMounts for Fake {
    fn mount_lower(
        &mut self,
        device: &Path,
        fstype: &str,
        target: &Path,
    ) -> Result<(), SysrootError> {
        if self.step(Call::MountLower {
            device: device.to_path_buf(),
            fstype: fstype.to_owned(),
            target: target.to_path_buf(),
        }) {
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
        self.step(Call::AssembleOverlay {
            lower: lower.to_path_buf(),
            overlay_root: overlay_root.to_path_buf(),
            target: target.to_path_buf(),
        });
        Ok(())
    }
    fn switch_root(&mut self, new_root: &Path, moves: &[&str]) -> Result<(), SysrootError> {
        self.step(Call::SwitchRoot {
            new_root: new_root.to_path_buf(),
            moves: moves.iter().map(|m| (*m).to_owned()).collect(),
        });
        Ok(())
    }
    fn exec_init(&mut self, init: &Path) -> io::Result<()> {
        if self.step(Call::ExecInit(init.to_path_buf())) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(())
    }
}

impl Rescue for Fake {
    fn shell_available(&mut self) -> bool {
        self.shell
    }
    fn run_shell(&mut self) -> io::Result<Option<i32>> {
        self.step(Call::RunShell);
        Ok(Some(0))
    }
    fn reboot(&mut self) -> io::Result<()> {
        self.step(Call::Reboot);
        Ok(())
    }
    fn power_off(&mut self) -> io::Result<()> {
        self.step(Call::PowerOff);
        Ok(())
    }
    fn set_panic_context(&mut self, stage: Stage, _policy: FailurePolicy) {
        self.contexts.push(stage);
    }
}

// --- fixtures -----------------------------------------------------------------------------

pub const CMDLINE: &str = "console=ttyAMA0 atomixos.lowerdev=PARTLABEL=rootfs-a rauc.slot=boot.0";

pub const MIB: u64 = 1 << 20;

/// A disk of `disk_bytes` holding what the image writes: boot-a at 16 MiB (128 MiB) and
/// rootfs-a at 144 MiB (1 GiB), its backup GPT 1 MiB after rootfs-a.
pub fn flashed(disk_bytes: u64) -> Current {
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
pub fn board_definitions() -> Vec<Definition> {
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
pub fn first_boot_work() -> Pending {
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
pub fn first_boot(cmdline: &str) -> Fake {
    let mut f = with_modules(Fake::new(cmdline));
    f.definitions = Some(board_definitions());
    f.pending = Some(first_boot_work());
    f.files.insert(
        MODULES_REPART_LOAD.into(),
        "# repart\ncrc32_generic /lib/modules/crc32_generic.ko\nf2fs /lib/modules/f2fs.ko\n".into(),
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

pub fn with_modules(mut f: Fake) -> Fake {
    f.files.insert(
        MODULES_LOAD.into(),
        "# list\nvirtio_blk /lib/modules/virtio_blk.ko\nsquashfs /lib/modules/squashfs.ko\n".into(),
    );
    f.modules
        .insert("/lib/modules/virtio_blk.ko".into(), Ok(ModuleLoad::Loaded));
    f.modules.insert(
        "/lib/modules/squashfs.ko".into(),
        Ok(ModuleLoad::AlreadyLoaded),
    );
    f
}

/// The stage line's detail (without its timing) for `stage`.
pub fn stage_detail(stage: &str) -> String {
    let prefix = format!("INFO stage {stage}: ");
    let line = lines()
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {stage}: {:?}", lines()));
    line.split_once(" ms")
        .map(|(_, d)| d.trim().to_owned())
        .unwrap()
}

/// Where `call` is in `f.calls`.
pub fn pos(f: &Fake, call: &Call) -> usize {
    f.calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call `{call:?}` in {:?}", f.calls))
}
