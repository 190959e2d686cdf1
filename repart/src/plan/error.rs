//! [`PlanError`]: why no plan could be made, naming the definition and partition concerned.

use crate::gpt::{GptError, Guid, PartitionId};

/// Why no plan could be made. Nothing has been written when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The disk size or sector size cannot hold a GPT.
    #[error("invalid disk geometry")]
    Geometry(#[source] GptError),
    /// The current table is not valid for the disk.
    #[error("the current partition table does not fit a disk of {disk_bytes} bytes")]
    InvalidTable {
        /// Disk size in bytes.
        disk_bytes: u64,
        /// The underlying error.
        #[source]
        source: GptError,
    },
    /// The current table reaches beyond the disk (an image written to a smaller disk).
    #[error(
        "the current partition table reaches LBA {last_usable}, beyond the disk's last usable \
         LBA {max}: the disk is smaller than the image written to it"
    )]
    TableExceedsDisk {
        /// The current table's last usable LBA.
        last_usable: u64,
        /// The disk's last usable LBA.
        max: u64,
    },
    /// The requested first usable LBA of a new table is outside what the disk allows.
    #[error(
        "first usable LBA {first_usable} for a new table is outside {min}..={max} on this disk"
    )]
    FirstUsable {
        /// First usable LBA.
        first_usable: u64,
        /// The lower bound.
        min: u64,
        /// The upper bound.
        max: u64,
    },
    /// A new partition does not fit in the free space.
    #[error(
        "{definition} does not fit: the largest free area holds {largest_free_bytes} bytes; \
         {}{}",
        shortfall_text(*.shortfall_bytes, Some(*.disk_bytes)),
        foreign_text(.foreign)
    )]
    DoesNotFit {
        /// The definition file.
        definition: String,
        /// Disk size in bytes.
        disk_bytes: u64,
        /// The largest free area in bytes.
        largest_free_bytes: u64,
        /// How many more bytes at the end of the disk would make everything fit.
        shortfall_bytes: Option<u64>,
        /// Foreign partitions on the disk (they take space the definitions cannot use).
        foreign: Vec<PartitionId>,
    },
    /// An existing partition must grow but the space after it is not free.
    #[error(
        "{partition}, matched by {definition}, must grow to {needed_bytes} bytes but only \
         {available_bytes} bytes are free up to {}; {}",
        next.as_ref().map_or_else(|| "the end of the disk".to_owned(), ToString::to_string),
        shortfall_text(*.shortfall_bytes, None)
    )]
    ExistingCannotGrow {
        /// The definition file.
        definition: String,
        /// The partition.
        partition: PartitionId,
        /// The size it must reach in bytes.
        needed_bytes: u64,
        /// Bytes free after it.
        available_bytes: u64,
        /// The partition in the way, if it is not the end of the disk.
        next: Option<PartitionId>,
        /// How many more bytes at the end of the disk would make everything fit.
        shortfall_bytes: Option<u64>,
    },
    /// A new partition would need a number beyond the table's entries.
    #[error("{definition} would be partition {number}, beyond the {max} entries of the table")]
    TooManyPartitions {
        /// The definition file.
        definition: String,
        /// The partition number it would get.
        number: u64,
        /// The upper bound.
        max: u32,
    },
    /// A definition's `UUID=` is already used by another partition.
    #[error("{definition}: UUID={uuid} is already the UUID of {partition}")]
    UuidInUse {
        /// The definition file.
        definition: String,
        /// The UUID.
        uuid: Guid,
        /// The partition.
        partition: PartitionId,
    },
    /// The planned table fails validation (a bug in the planner).
    #[error("the planned table is invalid (a bug in the planner)")]
    InvalidResult(#[source] GptError),
}

pub(super) fn shortfall_text(shortfall: Option<u64>, disk_bytes: Option<u64>) -> String {
    match (shortfall, disk_bytes) {
        (Some(s), Some(d)) => format!(
            "the disk is {s} bytes too small (at least {} bytes needed)",
            d.saturating_add(s)
        ),
        (Some(s), None) => format!("the disk is {s} bytes too small"),
        (None, _) => "a larger disk would not help".to_owned(),
    }
}

pub(super) fn foreign_text(foreign: &[PartitionId]) -> String {
    if foreign.is_empty() {
        return String::new();
    }
    let list: Vec<String> = foreign.iter().map(ToString::to_string).collect();
    format!("; foreign partitions in the way: {}", list.join(", "))
}
