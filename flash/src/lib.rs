//! Writing a disk image to a flash target safely: `atomix flash`.
//!
//! Owns: examining a flash target — a block device or, when asked for, a regular file
//! ([`inspect_target`], from `/proc/self/mountinfo`, `/proc/swaps`, sysfs and
//! `/dev/disk/by-id`, read through [`Host`] so tests can use a fake tree); the safety refusals
//! ([`check`], pure: mounted or holding mounted partitions, swap or dm/md on it, the disk
//! holding `/`, smaller than the image, read-only, not a block device, the image itself);
//! writing the image with progress, throughput and a cancel flag, `fsync`, and verifying by
//! reading the target back past the page cache and comparing SHA-256 ([`write`](fn@write)); and saying
//! what state the target is in after any failure or interruption ([`TargetState`]).
//!
//! Plan/apply: [`plan`] opens nothing for writing and decides whether the target may be
//! written; [`write`](fn@write) carries a plan out (and re-checks what can change in between: it opens a
//! block device exclusively, so nothing can mount it while it is written, and sizes it again).
//!
//! Must not: know the image layout, partitions inside the image, or boards; ask the user
//! anything or print (the caller confirms and shows progress); install signal handlers (the
//! caller sets the cancel flag).
//!
//! No unsafe code: a block device's size is the end offset of a seek to its end (the same
//! number `BLKGETSIZE64` gives), page-cache advice and `O_DIRECT` go through rustix and std.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod host;
mod target;
mod write;

use std::path::{Path, PathBuf};

use atomix_blockdev::size::{Style, human};

pub use host::{DevNum, Host, Mount, Partition, parse_mountinfo, parse_swaps};
pub use target::{
    BlockInfo, Found, Identity, Image, InUse, Refusal, Target, TargetKind, check, inspect_target,
};
pub use write::{CHUNK_BYTES, Phase, Progress, Report, TargetState, WriteOptions, write};

/// Everything `atomix flash` can fail with. Failures after the first byte was written carry
/// the [`TargetState`] and say it in the message.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The image cannot be opened or sized.
    #[error("cannot open the image {}", path.display())]
    Image {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image is not something that can be flashed.
    #[error("image {} is {what}, not a regular file or block device", path.display())]
    ImageKind {
        /// The image.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The target does not exist (and writing to a file was not asked for).
    #[error("target {} does not exist", path.display())]
    TargetMissing {
        /// The target.
        path: PathBuf,
    },
    /// The target cannot be examined or sized.
    #[error("cannot examine the target {}", path.display())]
    Target {
        /// The target.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A block device without a sysfs entry (sysfs not mounted?).
    #[error("block device {dev} has no entry under /sys/dev/block (is sysfs mounted?)")]
    NoSysfs {
        /// Its device number.
        dev: DevNum,
    },
    /// A file describing the host (mount table, sysfs) cannot be read.
    #[error("cannot read {}", path.display())]
    Host {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A safety check refused the target; nothing was written.
    #[error("{0}")]
    Refused(Refusal),
    /// The target cannot be opened for writing; nothing was written.
    #[error("cannot open {} for writing; {}", path.display(), TargetState::Unchanged)]
    OpenTarget {
        /// The target.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the image failed while writing.
    #[error("cannot read the image {} at byte {offset}; {state}", path.display())]
    ReadImage {
        /// The image.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// The target afterwards.
        state: TargetState,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the target failed.
    #[error("cannot write {} at byte {offset}; {state}", path.display())]
    Write {
        /// The target.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// The target afterwards.
        state: TargetState,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `fsync` of the target failed after everything was written.
    #[error("cannot flush {} to the medium (fsync); {state}", path.display())]
    Sync {
        /// The target.
        path: PathBuf,
        /// The target afterwards.
        state: TargetState,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the target back for verification failed.
    #[error("cannot read {} back at byte {offset} to verify it; {state}", path.display())]
    ReadBack {
        /// The target.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// The target afterwards.
        state: TargetState,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bytes read back differ from the image.
    #[error(
        "verification failed: {} reads back as sha256 {actual}, the image is sha256 \
         {expected}; the target holds corrupt data: run flash again, or suspect the medium",
        path.display()
    )]
    Mismatch {
        /// The target.
        path: PathBuf,
        /// SHA-256 of the image (hex).
        expected: String,
        /// SHA-256 of what was read back (hex).
        actual: String,
    },
    /// The cancel flag was set (SIGINT/SIGTERM in the CLI).
    #[error("interrupted {}: {state}", progress_text(*done, *total, *phase))]
    Interrupted {
        /// The target.
        path: PathBuf,
        /// Which phase was running.
        phase: Phase,
        /// Bytes of that phase done.
        done: u64,
        /// Bytes of that phase in all.
        total: u64,
        /// The target afterwards.
        state: TargetState,
    },
}

fn progress_text(done: u64, total: u64, phase: Phase) -> String {
    match phase {
        Phase::Write => format!(
            "after writing {} of {}",
            human(done, Style::Flash),
            human(total, Style::Flash)
        ),
        Phase::Verify => format!(
            "after verifying {} of {}",
            human(done, Style::Flash),
            human(total, Style::Flash)
        ),
    }
}

/// What kind of failure a [`FlashError`] is, for a caller that maps failures to outcomes (the
/// CLI's exit codes) without looking at messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The image or the target named is not there or not something that can be flashed.
    Usage,
    /// A safety check refused the target; nothing was written.
    Refused,
    /// An I/O failure; [`FlashError::state`] says what the target holds.
    Io,
    /// The target read back differs from the image.
    Mismatch,
    /// The cancel flag was set.
    Interrupted,
}

impl FlashError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Image { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                FailureKind::Usage
            }
            Self::ImageKind { .. } | Self::TargetMissing { .. } => FailureKind::Usage,
            Self::Refused(_) => FailureKind::Refused,
            Self::Image { .. }
            | Self::Target { .. }
            | Self::NoSysfs { .. }
            | Self::Host { .. }
            | Self::OpenTarget { .. }
            | Self::ReadImage { .. }
            | Self::Write { .. }
            | Self::Sync { .. }
            | Self::ReadBack { .. } => FailureKind::Io,
            Self::Mismatch { .. } => FailureKind::Mismatch,
            Self::Interrupted { .. } => FailureKind::Interrupted,
        }
    }

    /// The target's state after this error, when writing had started.
    pub fn state(&self) -> Option<&TargetState> {
        match self {
            Self::ReadImage { state, .. }
            | Self::Write { state, .. }
            | Self::Sync { state, .. }
            | Self::ReadBack { state, .. }
            | Self::Interrupted { state, .. } => Some(state),
            _ => None,
        }
    }
}

/// How to plan a flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The target is (or becomes) a regular file instead of a block device.
    pub to_file: bool,
    /// Where the facts about the machine come from.
    pub host: Host,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            to_file: false,
            host: Host::real(),
        }
    }
}

/// A checked flash: the image, the target as found, and that it may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The image.
    pub image: Image,
    /// The target.
    pub target: Target,
    /// The target is a regular file.
    pub to_file: bool,
}

/// Examines `image` and `target` and applies every safety rule ([`check`]); writes nothing.
///
/// # Errors
/// [`FlashError::Refused`] with the first rule broken; [`FlashError::TargetMissing`] for a
/// missing target without `to_file`; errors examining the image or target.
pub fn plan(image: &Path, target: &Path, opts: &Options) -> Result<Plan, FlashError> {
    let image = Image::open(image)?;
    let target = inspect_target(target, &opts.host)?;
    if target.kind == TargetKind::Missing && !opts.to_file {
        return Err(FlashError::TargetMissing { path: target.path });
    }
    check(&image, &target, opts.to_file).map_err(FlashError::Refused)?;
    Ok(Plan {
        image,
        target,
        to_file: opts.to_file,
    })
}
