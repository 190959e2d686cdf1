//! The benchmark behind `atomix-bench boot` (DESIGN section 8): our initramfs against a
//! hand-written busybox one (the anchor), built and booted in the same invocation on the same
//! kernel, disk image and QEMU configuration.
//!
//! Both initramfs are cpio newc archives made by `atomix-image`'s writer and compressed with zstd
//! at [`initramfs::ZSTD_LEVEL`](atomix_image::initramfs::ZSTD_LEVEL); both load the same module
//! closure of the `qemu-virt` board in the same order
//! ([`ModuleIndex::closure`](atomix_image::modules::ModuleIndex::closure)) and boot the probe
//! rootfs of [`build_test_rootfs`](crate::build_test_rootfs) from `PARTLABEL=rootfs-a`. The
//! baseline's `/init` is [`baseline_init_script`].
//!
//! The initrd time of a boot is measured on the guest clock, the same way for both, as the
//! issue defines it ("from `/init` start to exec of the real init"): from the kernel timestamp
//! of [`INIT_STARTED_MARK`] (printed just before the kernel execs `/init`) to the kernel
//! timestamp of [`INIT_EXEC_MARK`], which the kernel prints while it execs `/sbin/init` (both
//! sides exec that path). Both marks come from the kernel, so neither `/init` can move them.
//!
//! The time to [`ROOTFS_STARTED_MARK`], which the probe init writes to `/dev/kmsg` as its first
//! action, is reported beside it: it adds the real init's own start (the exec of a static
//! busybox `sh` under TCG and the start of the script, about 60 ms on both sides), which is not
//! initrd time. Boots alternate (ours, baseline, ours, ...) so a drift in host load hits both
//! sides alike; every boot runs QEMU with `-snapshot`, so each sees the same disk.
//!
//! One file per concern: `sample.rs` reads one boot's numbers from its console and takes their
//! statistics; `baseline.rs` makes the busybox initramfs; `result.rs` holds the result, its
//! rows, the printed tables and the JSON; `run.rs` builds both sides and boots them. This file
//! holds the constants they share, [`Side`] and [`BenchError`].

use std::path::PathBuf;
use std::time::Duration;

use atomix_board::BoardError;
use atomix_image::cpio::CpioError;
use atomix_image::disk::DiskError;
use atomix_image::initramfs::InitramfsError;
use atomix_image::modules::ModuleError;
use atomix_qemu::{Ending, QemuError};

use crate::HarnessError;

mod baseline;
mod result;
mod run;
mod sample;

pub use baseline::{BASELINE_APPLETS, baseline_archive, baseline_init_script};
pub use result::{BenchResult, Row, Sizes, Target, Unit};
pub use run::run;
pub use sample::{BootSample, Stats, baseline_hwm_kib, kernel_timestamp, sample_from_console};

/// The board whose module list both initramfs load.
pub const BOARD: &str = "qemu-virt";
/// The slot both initramfs mount (`atomixos.lowerdev=` for ours, hard-wired in the baseline).
pub const SLOT_PARTLABEL: &str = "rootfs-a";
/// The kernel's line just before it execs `/init`: the start mark.
pub const INIT_STARTED_MARK: &str = "Run /init as init process";
/// The kernel's line while it execs `/sbin/init`: the end mark of the initrd time. TOMOYO (built
/// into Debian's kernel and active) checks for its policy loader on every exec of `/sbin/init`
/// until a policy is loaded, from the `bprm_creds_for_exec` hook, that is at the start of the
/// exec, and prints this when the loader does not exist (neither rootfs has one).
pub const INIT_EXEC_MARK: &str =
    "Not activating Mandatory Access Control as /sbin/tomoyo-init does not exist";
/// The probe init's first `/dev/kmsg` line (see `tests/rootfs/sbin/init`): the end mark of the
/// time to the rootfs init's first line.
pub const ROOTFS_STARTED_MARK: &str = "atomix-probe: rootfs init started";
/// The line the baseline `/init` prints with its shell's `VmHWM` just before `switch_root`.
pub const BASELINE_HWM_MARK: &str = "baseline-init: VmHWM ";
/// Deadline of one boot.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Target: our median initrd time at most this fraction of the baseline's.
pub const TARGET_TIME_RATIO: f64 = 0.5;
/// Target: our initramfs without modules at most this many bytes compressed.
pub const TARGET_NO_MODULES_BYTES: u64 = 1 << 20;
/// Target: `/init`'s peak RSS at most this many KiB.
pub const TARGET_PEAK_RSS_KIB: u64 = 4 << 10;

/// A failure of the benchmark (building, booting, or reading a boot's console).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The harness could not find or prepare its inputs.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The board profile could not be loaded.
    #[error("cannot load board `{BOARD}`")]
    Board(#[source] BoardError),
    /// Our initramfs could not be built.
    #[error("cannot build our initramfs `{}`", path.display())]
    Initramfs {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: InitramfsError,
    },
    /// The module closure for the baseline could not be resolved.
    #[error("cannot resolve the modules of `{BOARD}` in `{}`", root.display())]
    Modules {
        /// The kernel package.
        root: PathBuf,
        /// Why.
        #[source]
        source: ModuleError,
    },
    /// The baseline loads other modules than ours (the two closures must be the same list).
    #[error("module lists differ: ours {ours:?}, baseline {baseline:?}")]
    ModuleMismatch {
        /// Ours, in load order.
        ours: Vec<String>,
        /// The baseline's, in load order.
        baseline: Vec<String>,
    },
    /// A file the baseline archive holds could not be read.
    #[error("cannot read `{}` for the baseline initramfs", path.display())]
    ReadInput {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path in the baseline archive is not UTF-8.
    #[error("path `{}` is not UTF-8", path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// The baseline cpio archive could not be written.
    #[error("cannot write the baseline cpio archive")]
    Cpio(#[source] CpioError),
    /// The baseline archive could not be compressed.
    #[error("cannot compress the baseline initramfs with zstd")]
    Compress(#[source] std::io::Error),
    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file's size could not be read.
    #[error("cannot stat `{}`", path.display())]
    Stat {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The disk image could not be built.
    #[error("cannot build the disk image `{}`", path.display())]
    Disk {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DiskError,
    },
    /// QEMU could not be run.
    #[error("cannot run qemu for {side} boot {boot}")]
    Qemu {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// Why.
        #[source]
        source: QemuError,
    },
    /// A boot did not end in a power-off after `ROOTFS-DONE`.
    #[error("{side} boot {boot} ended in {ending} (ROOTFS-DONE seen: {done}); console log `{}`", log.display())]
    BootFailed {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// How QEMU's run ended.
        ending: Ending,
        /// Whether the probe printed `ROOTFS-DONE`.
        done: bool,
        /// The console log.
        log: PathBuf,
    },
    /// A boot's console lacks a line the measurement needs.
    #[error("{side} boot {boot}: no timestamped `{mark}` line; console log `{}`", log.display())]
    MissingMark {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// The missing line.
        mark: &'static str,
        /// The console log.
        log: PathBuf,
    },
}

/// Which initramfs a boot used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Ours: the atomix `/init`.
    Ours,
    /// The anchor: busybox `sh` as `/init`.
    Baseline,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ours => "ours",
            Self::Baseline => "baseline",
        })
    }
}
