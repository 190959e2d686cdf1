//! What the target holds after a flash that did not complete ([`TargetState`]), said as a
//! sentence that tells the user what to do.

use std::fmt;

use atomix_blockdev::size::{Style, human};
use serde::Serialize;

/// What the target holds after a flash that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum TargetState {
    /// Not a byte was written.
    Unchanged,
    /// The first `written` bytes of the image (a failed chunk may have left part of itself
    /// after them), then the target's old data (a file target: nothing).
    Partial {
        /// Bytes of the image written, from its start.
        written: u64,
        /// The image's size.
        total: u64,
        /// They were flushed to the medium (`fsync` succeeded).
        synced: bool,
        /// The target is a regular file (truncated before writing).
        file: bool,
    },
    /// Every byte was written but `fsync` failed: what reached the medium is unknown.
    Unsynced {
        /// The image's size.
        total: u64,
    },
    /// The whole image was written and flushed, but not (completely) verified.
    Written {
        /// The image's size.
        total: u64,
    },
}

impl TargetState {
    pub(super) fn partial(written: u64, total: u64, synced: bool, file: bool) -> Self {
        if written == 0 && !file {
            Self::Unchanged
        } else {
            Self::Partial {
                written,
                total,
                synced,
                file,
            }
        }
    }
}

impl fmt::Display for TargetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unchanged => f.write_str("the target is unchanged"),
            Self::Partial {
                written,
                total,
                synced,
                file,
            } => {
                let head = if file {
                    format!(
                        "the file holds only the first {} of the image's {}",
                        human(written, Style::Flash),
                        human(total, Style::Flash)
                    )
                } else {
                    format!(
                        "the target holds the first {} of the image ({} in all) and its old \
                         data after that; it will not boot correctly",
                        human(written, Style::Flash),
                        human(total, Style::Flash)
                    )
                };
                let sync = if synced {
                    ""
                } else {
                    " (not all of it confirmed on the medium: fsync failed)"
                };
                write!(f, "{head}{sync}; run flash again")
            }
            Self::Unsynced { total } => write!(
                f,
                "all {} were written but not confirmed on the medium (fsync failed): treat the \
                 target as partly written and run flash again",
                human(total, Style::Flash)
            ),
            Self::Written { total } => write!(
                f,
                "all {} of the image were written and flushed, but not verified",
                human(total, Style::Flash)
            ),
        }
    }
}
