//! Whether a target may be written ([`check`]): the safety rules, pure (decided from the facts
//! [`inspect_target`](super::inspect_target) gathered), and why a target is refused
//! ([`Refusal`]).

use std::path::PathBuf;

use atomix_blockdev::size::{Style, human};

use super::describe::{InUse, Target, TargetKind};
use super::image::Image;

/// What a refused target was found to be, when it is not the kind of target asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A regular file (a block device was asked for).
    RegularFile,
    /// Nothing at the path (a block device was asked for).
    Missing,
    /// A block device (a file was asked for).
    BlockDevice,
    /// Something else: a directory, a character device, ... (from [`TargetKind::Other`]).
    Other(&'static str),
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RegularFile => "a regular file",
            Self::Missing => "missing",
            Self::BlockDevice => "a block device",
            Self::Other(what) => what,
        })
    }
}

/// Why a target is not written. The message names the target and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a block device, and writing to a file was not asked for.
    #[error("target {} is {what}, not a block device", target.display())]
    NotBlockDevice {
        /// The target.
        target: PathBuf,
        /// What it is instead.
        what: Found,
    },
    /// Writing to a file was asked for, but the target is a block device (or something else
    /// that is not a regular file).
    #[error("target {} is {what}, not a regular file, and writing to a file was asked for",
            target.display())]
    NotAFile {
        /// The target.
        target: PathBuf,
        /// What it is instead.
        what: Found,
    },
    /// The target is the image itself.
    #[error("target {} is the image {} itself", target.display(), image.display())]
    SameAsImage {
        /// The target.
        target: PathBuf,
        /// The image.
        image: PathBuf,
    },
    /// `/` lives on the target's disk.
    #[error("target {} is on the disk holding / (mounted from {root})", target.display())]
    RootDisk {
        /// The target.
        target: PathBuf,
        /// The device `/` is mounted from.
        root: String,
    },
    /// The target or one of its partitions is mounted, a swap, or under a dm/md device.
    #[error("target {} is in use: {}", target.display(), list(uses))]
    InUse {
        /// The target.
        target: PathBuf,
        /// What uses it.
        uses: Vec<InUse>,
    },
    /// The kernel opened the target exclusively and found it busy (in use by a mount or a
    /// holder the other checks did not see, or another exclusive opener).
    #[error("target {} is busy: the kernel refused an exclusive open", target.display())]
    Busy {
        /// The target.
        target: PathBuf,
    },
    /// The kernel marks the target read-only.
    #[error("target {} is read-only", target.display())]
    ReadOnly {
        /// The target.
        target: PathBuf,
    },
    /// The target cannot hold the image.
    #[error("target {} is {}, smaller than the image ({})", target.display(),
            sizes(*target_bytes, *image_bytes).0, sizes(*target_bytes, *image_bytes).1)]
    TooSmall {
        /// The target.
        target: PathBuf,
        /// Its size in bytes.
        target_bytes: u64,
        /// The image's size in bytes.
        image_bytes: u64,
    },
}

fn list(uses: &[InUse]) -> String {
    let parts: Vec<String> = uses.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Two sizes in human units, with exact byte counts when the rounded ones look the same.
fn sizes(a: u64, b: u64) -> (String, String) {
    // "100 MiB" and "100.0 MiB" look alike: compare at one decimal.
    let tenth = |n: u64| format!("{:.1}", n as f64 / f64::from(1u32 << 20));
    let (ha, hb) = (human(a, Style::Flash), human(b, Style::Flash));
    if tenth(a) == tenth(b) {
        (format!("{a} bytes"), format!("{b} bytes"))
    } else {
        (ha, hb)
    }
}

/// Whether `target` may receive `image`: the safety rules, in order (the first broken one is
/// returned).
///
/// - `to_file` false: the target must be a block device; not the image itself; not on the disk
///   holding `/` (nor a partition of it, nor a device built on it); nothing on it mounted, used
///   as swap, or held by dm/md; not read-only; at least as large as the image.
/// - `to_file` true: the target must be a regular file or not exist (it is created, or
///   truncated and rewritten); a block device is refused rather than written, so the option
///   never weakens a device check; and it must not be the image itself.
///
/// # Errors
/// The [`Refusal`].
pub fn check(image: &Image, target: &Target, to_file: bool) -> Result<(), Refusal> {
    let path = || target.path.clone();
    if target.identity == Some(image.identity) {
        return Err(Refusal::SameAsImage {
            target: path(),
            image: image.path.clone(),
        });
    }
    let info = match (&target.kind, to_file) {
        (TargetKind::File | TargetKind::Missing, true) => return Ok(()),
        (TargetKind::Block(_), true) => {
            return Err(Refusal::NotAFile {
                target: path(),
                what: Found::BlockDevice,
            });
        }
        (TargetKind::Other { what }, true) => {
            return Err(Refusal::NotAFile {
                target: path(),
                what: Found::Other(what),
            });
        }
        (TargetKind::File, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::RegularFile,
            });
        }
        (TargetKind::Missing, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::Missing,
            });
        }
        (TargetKind::Other { what }, false) => {
            return Err(Refusal::NotBlockDevice {
                target: path(),
                what: Found::Other(what),
            });
        }
        (TargetKind::Block(info), false) => info,
    };
    if let Some(root) = &info.holds_root {
        return Err(Refusal::RootDisk {
            target: path(),
            root: root.clone(),
        });
    }
    if !info.in_use.is_empty() {
        return Err(Refusal::InUse {
            target: path(),
            uses: info.in_use.clone(),
        });
    }
    if info.read_only {
        return Err(Refusal::ReadOnly { target: path() });
    }
    if target.bytes < image.bytes {
        return Err(Refusal::TooSmall {
            target: path(),
            target_bytes: target.bytes,
            image_bytes: image.bytes,
        });
    }
    Ok(())
}
