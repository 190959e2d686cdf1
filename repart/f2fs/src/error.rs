//! Errors of a format, and what the child reported.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// The step of the format sequence a child was in when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Step {
    /// Redirecting output, `f2fs_init_configuration` and setting the configuration.
    Setup = 1,
    /// `f2fs_devs_are_umounted`: the device must not be mounted (reads `/proc/mounts`).
    DevsAreUmounted = 2,
    /// `f2fs_get_device_info`: open the device, read its size and sector size.
    GetDeviceInfo = 3,
    /// `f2fs_get_f2fs_info`: apply the wanted size, check zoned devices.
    GetF2fsInfo = 4,
    /// `f2fs_format_device`: write the filesystem.
    FormatDevice = 5,
    /// `f2fs_finalize_device`: fsync and close.
    FinalizeDevice = 6,
}

impl Step {
    /// In order.
    pub const ALL: [Step; 6] = [
        Step::Setup,
        Step::DevsAreUmounted,
        Step::GetDeviceInfo,
        Step::GetF2fsInfo,
        Step::FormatDevice,
        Step::FinalizeDevice,
    ];

    /// The byte the child writes to its progress pipe when it starts the step.
    pub(crate) const fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The child's exit status when the step returns an error (not 1 or 255, which is what the
    /// library's own `exit()` calls use).
    pub(crate) const fn exit_code(self) -> i32 {
        64 + self as i32
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Setup => "setup",
            Step::DevsAreUmounted => "f2fs_devs_are_umounted",
            Step::GetDeviceInfo => "f2fs_get_device_info",
            Step::GetF2fsInfo => "f2fs_get_f2fs_info",
            Step::FormatDevice => "f2fs_format_device",
            Step::FinalizeDevice => "f2fs_finalize_device",
        })
    }
}

/// How the format child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnding {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl fmt::Display for ChildEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildEnding::Exited(status) => write!(f, "exit status {status}"),
            ChildEnding::Signaled(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// What the library printed (stdout and stderr) in the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildMessages(String);

impl ChildMessages {
    /// `None` when the child printed nothing but white space.
    pub(crate) fn new(bytes: &[u8]) -> Option<ChildMessages> {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        (!text.is_empty()).then(|| ChildMessages(text.to_owned()))
    }

    /// The output as printed (trimmed).
    pub fn text(&self) -> &str {
        &self.0
    }
}

/// One line: the library's lines, trimmed, joined by "; ", without its `Info:` lines unless
/// there is nothing else ([`ChildMessages::text`] has them all).
impl fmt::Display for ChildMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = || self.0.lines().map(str::trim).filter(|l| !l.is_empty());
        let not_info = |l: &&str| !l.starts_with("Info:");
        let mut lines: Box<dyn Iterator<Item = &str>> = if lines().any(|l| not_info(&l)) {
            Box::new(lines().filter(not_info))
        } else {
            Box::new(lines())
        };
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, "; {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChildMessages {}

/// The options cannot be handed to the library.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    /// The device path contains a NUL byte.
    #[error("the device path contains a NUL byte")]
    DevicePathNul,
    /// The label contains a NUL byte.
    #[error("the label contains a NUL byte")]
    LabelNul,
    /// The label is longer than f2fs allows.
    #[error("the label is {len} bytes long, more than {max}", max = crate::MAX_LABEL_BYTES)]
    LabelTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The fixed time of a reproducible format does not fit in `time_t`.
    #[error("the reproducible time {time} does not fit in time_t")]
    TimeOutOfRange {
        /// The time given.
        time: u64,
    },
    /// `total_sectors` is zero.
    #[error("total_sectors is 0")]
    ZeroSectors,
}

/// Formatting a device failed.
#[derive(Debug, Error)]
pub enum F2fsError {
    /// The options were refused before anything ran.
    #[error("invalid f2fs options for {}", device.display())]
    Options {
        /// The device to be formatted.
        device: PathBuf,
        /// What is wrong.
        #[source]
        source: OptionsError,
    },
    /// The pipes for the child's output could not be created.
    #[error("create the pipes for the f2fs format child of {}", device.display())]
    Pipe {
        /// The device to be formatted.
        device: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `fork()` failed.
    #[error("fork the f2fs format child for {}", device.display())]
    Fork {
        /// The device to be formatted.
        device: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the child's output failed (the child was still waited for).
    #[error("read the output of the f2fs format child for {}", device.display())]
    Output {
        /// The device being formatted.
        device: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `waitpid()` failed.
    #[error("wait for the f2fs format child of {}", device.display())]
    Wait {
        /// The device being formatted.
        device: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The child ran and failed: a step returned an error, the library called `exit()`, or a
    /// signal killed it.
    #[error("f2fs format of {} failed in {step} ({ending})", device.display())]
    Failed {
        /// The device being formatted.
        device: PathBuf,
        /// The step the child was in.
        step: Step,
        /// How the child ended.
        ending: ChildEnding,
        /// What the library printed, if anything.
        #[source]
        messages: Option<ChildMessages>,
    },
}
