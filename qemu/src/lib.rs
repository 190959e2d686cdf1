//! QEMU aarch64 runner: boot a kernel (or U-Boot) with raw virtio-blk disks, stream the serial
//! console, answer an expect script, and judge how the run ended.
//!
//! Owns: the `qemu-system-aarch64` command line for the `virt` machine, the QEMU process (its own
//! process group, killed and reaped on every path: normal end, deadline, error, and a panic in
//! the caller's line callback), the console transcript and its log file, the rules that turn
//! console text into an [`Ending`], and the flash bank images the machine reads (the one place
//! U-Boot's `bootdelay=0` bank is made: [`write_no_bootdelay_bank`]).
//!
//! Must not: build images, know about boot stages or the probe markers of the system tests, or
//! judge a run by QEMU's exit status. Under `-no-reboot` QEMU exits 0 for a guest power-off, a
//! guest reset and SIGTERM alike, so the ending is decided from the console (pitfall P10).
//!
//! ```no_run
//! use std::time::Duration;
//! use atomix_qemu::{Ending, QemuConfig, run};
//!
//! let cfg = QemuConfig {
//!     kernel: Some(".cache/Image".into()),
//!     append: Some("console=ttyAMA0 panic=-1".into()),
//!     timeout: Duration::from_secs(30),
//!     ..QemuConfig::default()
//! };
//! let outcome = run(&cfg, &mut |line| println!("{line}"))?;
//! assert!(matches!(outcome.ending, Ending::Panic { .. }));
//! # Ok::<(), atomix_qemu::QemuError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod command;
mod flash;
mod judge;
mod net;
mod process;
mod run;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use command::{command_line, command_line_string};
pub use flash::{FLASH_BANK_BYTES, FlashBankError, write_flash_bank, write_no_bootdelay_bank};
pub use judge::classify;
pub use net::{BadForward, Forward, LAN_GATEWAY, Mac, Nic, Protocol, appliance_nics};
pub use run::{run, run_interactive};

/// How the raw disks are attached to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// `virtio-blk-pci` (the default; the guest needs `virtio_pci` and its two `*_dev` modules).
    #[default]
    Pci,
    /// `virtio-blk-device` on the virtio-mmio bus (the guest needs `virtio_mmio`).
    Mmio,
}

impl Transport {
    /// The QEMU `-device` model for a disk on this transport.
    pub fn device_model(self) -> &'static str {
        match self {
            Self::Pci => "virtio-blk-pci",
            Self::Mmio => "virtio-blk-device",
        }
    }
}

/// One step of an expect script: when the console shows `wait_for`, type `send` and a newline.
///
/// Steps run in order; each one searches the console after the point where the previous step
/// matched. The match is on the raw byte stream, so a prompt without a newline (`=> `, `/ # `)
/// matches as soon as it is printed. An empty `wait_for` sends at once. The guest usually echoes
/// what is typed, and the echo is part of the console: a later `wait_for` must not be text that
/// the echo of an earlier `send` contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Text to wait for on the console.
    pub wait_for: String,
    /// Text to type into the serial console once `wait_for` appeared (a `\n` is added).
    pub send: String,
}

impl Expect {
    /// A step that types `send` once `wait_for` appeared.
    pub fn new(wait_for: impl Into<String>, send: impl Into<String>) -> Self {
        Self {
            wait_for: wait_for.into(),
            send: send.into(),
        }
    }
}

/// What to boot and how to watch it. Start from [`QemuConfig::default`] and set the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The emulator (default `qemu-system-aarch64`, looked up in `PATH`).
    pub binary: PathBuf,
    /// `-kernel`: an uncompressed arm64 `Image`.
    pub kernel: Option<PathBuf>,
    /// `-initrd`: the initramfs.
    pub initramfs: Option<PathBuf>,
    /// `-append`: the kernel command line.
    pub append: Option<String>,
    /// `-bios`: firmware such as U-Boot's `u-boot.bin`.
    pub bios: Option<PathBuf>,
    /// A read-only flash bank 1 (`-drive if=pflash,unit=1,readonly=on`): where qemu_arm64
    /// U-Boot reads its environment. Make it with [`write_flash_bank`].
    pub flash_bank1: Option<PathBuf>,
    /// Raw disk images, attached in order as virtio-blk (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<PathBuf>,
    /// The virtio transport of the disks.
    pub transport: Transport,
    /// NICs, each on its own restricted user-mode network (see [`Nic`]); none by default.
    pub nics: Vec<Nic>,
    /// Guest RAM in MiB (default 1024).
    pub memory_mib: u32,
    /// Virtual CPUs (default 1).
    pub cpus: u32,
    /// Guest CPU model (default `cortex-a53`).
    pub cpu: String,
    /// Deadline from spawning QEMU; when it passes the run ends in [`Ending::Timeout`].
    pub timeout: Duration,
    /// Pass `-no-reboot` (default true): a guest reset ends QEMU. With `false`, resets and
    /// panics are not terminal (the guest restarts in the same process) and only a power-off,
    /// a `stop_on` pattern, QEMU exiting or the deadline end the run.
    pub no_reboot: bool,
    /// Extra arguments appended after the generated ones. Network options (`-netdev`, `-nic`,
    /// `-net`) are refused: NICs come only from [`QemuConfig::nics`].
    pub extra_args: Vec<String>,
    /// Where to write the console transcript (parent directories are created). The file is
    /// written line by line while the run goes on, so it survives a crash of the caller.
    pub console_log: Option<PathBuf>,
    /// The expect script (see [`Expect`]).
    pub script: Vec<Expect>,
    /// End the run with [`Ending::Matched`] as soon as the console shows one of these.
    pub stop_on: Vec<String>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("qemu-system-aarch64"),
            kernel: None,
            initramfs: None,
            append: None,
            bios: None,
            flash_bank1: None,
            disks: Vec::new(),
            transport: Transport::Pci,
            nics: Vec::new(),
            memory_mib: 1024,
            cpus: 1,
            cpu: "cortex-a53".to_owned(),
            timeout: Duration::from_secs(60),
            no_reboot: true,
            extra_args: Vec::new(),
            console_log: None,
            script: Vec::new(),
            stop_on: Vec::new(),
        }
    }
}

/// How a run ended, judged from the console (not from QEMU's exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The kernel printed `reboot: Power down` (a guest power-off).
    PowerOff,
    /// The kernel printed `reboot: Restarting system`, or U-Boot's `reset` printed
    /// `resetting ...` (only with `no_reboot`).
    Reset,
    /// The kernel printed `Kernel panic - not syncing: <message>` (only with `no_reboot`).
    Panic {
        /// The text after `not syncing: `.
        message: String,
    },
    /// The deadline passed first; QEMU was killed.
    Timeout,
    /// The console showed this `stop_on` pattern; QEMU was killed.
    Matched(String),
    /// The caller of [`run_interactive`] hung up (closed its input channel); QEMU was killed.
    Stopped,
    /// QEMU exited and the console showed none of the markers above (for example U-Boot's
    /// `poweroff`, or QEMU refusing its arguments: see [`Outcome::stderr`]).
    Exited {
        /// QEMU's exit code; `None` when a signal ended it.
        code: Option<i32>,
    },
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PowerOff => f.write_str("power-off"),
            Self::Reset => f.write_str("reset"),
            Self::Panic { message } => write!(f, "kernel panic: {message}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Matched(pattern) => write!(f, "matched `{pattern}`"),
            Self::Stopped => f.write_str("stopped by the caller"),
            Self::Exited { code: Some(code) } => write!(f, "qemu exited with code {code}"),
            Self::Exited { code: None } => f.write_str("qemu killed by a signal"),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the run ended.
    pub ending: Ending,
    /// The guest console: every line with `\r\n` turned into `\n`, invalid UTF-8 replaced by
    /// U+FFFD; a last line without a newline is kept (and given one).
    pub console: String,
    /// What QEMU itself printed on stderr (argument errors, warnings).
    pub stderr: String,
    /// Wall-clock time from spawning QEMU until it was gone.
    pub wall: Duration,
}

/// A failure to run QEMU at all. How the guest fared is an [`Ending`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The config has neither a kernel nor a firmware to start.
    #[error("nothing to boot: set a kernel or a bios")]
    NothingToBoot,
    /// An input file named in the config does not exist.
    #[error("{what} `{}` does not exist", path.display())]
    MissingInput {
        /// Which input (`kernel`, `initramfs`, `bios`, `disk`).
        what: &'static str,
        /// The path that was given.
        path: PathBuf,
    },
    /// `extra_args` holds a network option; guests get network only through
    /// [`QemuConfig::nics`], which are always restricted.
    #[error("extra argument `{arg}` would attach a network: use nics (restricted user networking)")]
    NetworkInExtraArgs {
        /// The offending argument.
        arg: String,
    },
    /// A `stop_on` pattern is empty (it would match at once).
    #[error("stop_on pattern {index} is empty")]
    EmptyStopPattern {
        /// Its index in `stop_on`.
        index: usize,
    },
    /// QEMU could not be started.
    #[error("cannot start `{}`", binary.display())]
    Spawn {
        /// The binary that was run.
        binary: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A console reader thread could not be started.
    #[error("cannot start the console reader thread")]
    ReaderThread {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the QEMU process failed.
    #[error("cannot wait for qemu (pid {pid})")]
    Wait {
        /// QEMU's pid.
        pid: u32,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The console log could not be created or written.
    #[error("cannot write the console log `{}`", path.display())]
    ConsoleLog {
        /// The log file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}
