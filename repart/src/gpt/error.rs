//! [`GptError`]: every way reading, validating or writing a GPT fails, with the structure,
//! LBA or partition concerned.

use std::io;

use super::{PartitionId, Structure};

/// Failures reading, validating or writing a GPT.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// A logical sector size other than 512 or 4096.
    #[error("unsupported logical sector size {sector_size} (expected 512 or 4096)")]
    SectorSize {
        /// Logical sector size in bytes.
        sector_size: u64,
    },
    /// The disk size is not whole sectors, or too small for a GPT.
    #[error(
        "disk size {disk_bytes} bytes is not a whole number of {sector_size}-byte sectors \
         large enough for a GPT"
    )]
    DiskSize {
        /// Disk size in bytes.
        disk_bytes: u64,
        /// Logical sector size in bytes.
        sector_size: u64,
    },
    /// A GPT structure cannot be read.
    #[error("cannot read the {what} at byte {offset}")]
    Read {
        /// Which structure.
        what: Structure,
        /// Byte offset on the disk.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A GPT structure cannot be written.
    #[error("cannot write the {what} at byte {offset}")]
    Write {
        /// Which structure.
        what: Structure,
        /// Byte offset on the disk.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The written table cannot be flushed.
    #[error("cannot flush the partition table to the disk")]
    Flush {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The header lacks the `EFI PART` signature: no GPT there.
    #[error("no GPT: the {what} at LBA {lba} lacks the \"EFI PART\" signature")]
    NoGpt {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
    },
    /// The header has a revision other than 1.0.
    #[error("the {what} at LBA {lba} has unsupported revision {revision:#010x}")]
    Revision {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The revision found.
        revision: u32,
    },
    /// The header declares an invalid header size.
    #[error("the {what} at LBA {lba} has invalid header size {size}")]
    HeaderSize {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The size declared.
        size: u32,
    },
    /// The header CRC32 does not match.
    #[error(
        "bad CRC32 in the {what} at LBA {lba}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    HeaderCrc {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The CRC32 stored.
        stored: u32,
        /// The CRC32 computed.
        computed: u32,
    },
    /// The header records another LBA than the one it was read from.
    #[error("the {what} at LBA {lba} says it lives at LBA {recorded}")]
    HeaderLocation {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The LBA it records.
        recorded: u64,
    },
    /// The header's usable range is not inside the disk.
    #[error(
        "the {what} at LBA {lba} has usable range {first_usable}..={last_usable}, \
         not inside a disk of {sectors} sectors"
    )]
    UsableRangeOnDisk {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// First usable LBA.
        first_usable: u64,
        /// Last usable LBA.
        last_usable: u64,
        /// Disk size in sectors.
        sectors: u64,
    },
    /// The header declares an unsupported number or size of entries.
    #[error(
        "the {what} at LBA {lba} declares {count} entries of {size} bytes, which is unsupported"
    )]
    EntryGeometry {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// Number of entries declared.
        count: u32,
        /// The size declared.
        size: u32,
    },
    /// The header places its entry array outside the disk.
    #[error(
        "the {what} at LBA {lba} places its entry array at LBA {entries_lba}, outside the disk"
    )]
    EntriesLocation {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The LBA of the entry array.
        entries_lba: u64,
    },
    /// The entry array CRC32 does not match the header.
    #[error(
        "bad CRC32 of the {what} at LBA {lba}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    EntriesCrc {
        /// Which structure.
        what: Structure,
        /// Where it was read (LBA).
        lba: u64,
        /// The CRC32 stored.
        stored: u32,
        /// The CRC32 computed.
        computed: u32,
    },
    /// A table to encode starts its usable range inside the primary entry array.
    #[error("first usable LBA {first_usable} is below {min}, where the primary entry array ends")]
    FirstUsableTooLow {
        /// First usable LBA.
        first_usable: u64,
        /// The lowest allowed LBA.
        min: u64,
    },
    /// A table to encode ends its usable range inside the backup entry array.
    #[error("last usable LBA {last_usable} is above {max}, where the backup entry array begins")]
    LastUsableTooHigh {
        /// Last usable LBA.
        last_usable: u64,
        /// The highest allowed number or LBA.
        max: u64,
    },
    /// A table to encode has an empty usable range.
    #[error("usable range {first_usable}..={last_usable} is empty")]
    EmptyUsableRange {
        /// First usable LBA.
        first_usable: u64,
        /// Last usable LBA.
        last_usable: u64,
    },
    /// A partition number outside the table's entries.
    #[error("{partition}: number outside 1..={max}")]
    PartitionNumber {
        /// The partition.
        partition: PartitionId,
        /// The highest allowed number or LBA.
        max: u32,
    },
    /// Two partitions with the same number.
    #[error("{partition}: number used twice")]
    DuplicateNumber {
        /// The partition.
        partition: PartitionId,
    },
    /// A partition with the nil type GUID (which marks an unused entry).
    #[error("{partition}: nil type GUID marks an unused entry")]
    NilType {
        /// The partition.
        partition: PartitionId,
    },
    /// A partition with the nil partition GUID.
    #[error("{partition}: nil partition GUID")]
    NilUuid {
        /// The partition.
        partition: PartitionId,
    },
    /// Two partitions with the same partition GUID.
    #[error("{partition}: same partition GUID as {other}")]
    DuplicateUuid {
        /// The partition.
        partition: PartitionId,
        /// The other partition.
        other: PartitionId,
    },
    /// A partition whose first LBA is after its last.
    #[error("{partition}: first LBA {first_lba} is after last LBA {last_lba}")]
    Reversed {
        /// The partition.
        partition: PartitionId,
        /// First LBA.
        first_lba: u64,
        /// Last LBA.
        last_lba: u64,
    },
    /// A partition outside the usable range.
    #[error(
        "{partition}: LBAs {first_lba}..={last_lba} are outside the usable range \
         {first_usable}..={last_usable}"
    )]
    OutsideUsable {
        /// The partition.
        partition: PartitionId,
        /// First LBA.
        first_lba: u64,
        /// Last LBA.
        last_lba: u64,
        /// First usable LBA.
        first_usable: u64,
        /// Last usable LBA.
        last_usable: u64,
    },
    /// Two partitions that overlap.
    #[error("{partition}: overlaps {other}")]
    Overlap {
        /// The partition.
        partition: PartitionId,
        /// The other partition.
        other: PartitionId,
    },
    /// A partition name longer than the 36 UTF-16 units an entry holds.
    #[error("{partition}: name is {units} UTF-16 units long, at most 36 fit")]
    NameTooLong {
        /// The partition.
        partition: PartitionId,
        /// Its length in UTF-16 units.
        units: usize,
    },
    /// A partition name with a NUL character.
    #[error("{partition}: name contains a NUL character")]
    NameHasNul {
        /// The partition.
        partition: PartitionId,
    },
}
