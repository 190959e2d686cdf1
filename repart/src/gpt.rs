//! A small, exact GUID partition table codec (UEFI 2.10 section 5.3).
//!
//! [`write()`] lays out, in this order: the protective MBR (LBA 0), the backup entry array and
//! backup header (end of the disk), then the primary entry array (LBA 2) and primary header
//! (LBA 1). A crash between the two halves leaves one complete, self-consistent table: the old
//! primary with a new backup, or a torn primary that fails its CRC next to a complete new backup.
//! [`encode`] returns the same writes as data, so a caller (the repartitioner, a fault-injection
//! test) can issue them itself in any order.
//!
//! [`read`] checks the primary header ([`read_backup`] the backup header in the disk's last
//! sector): signature, revision, header CRC32, location, usable range, entry geometry and the
//! entry-array CRC32. Entries with a nil type GUID are unused and skipped;
//! a partition's `number` is its 1-based index in the array, so holes are kept.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The "legacy BIOS bootable" attribute (bit 2). U-Boot's distro boot scans only partitions that
/// carry it.
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// Number of entries in the arrays this codec writes.
pub const ENTRY_COUNT: u32 = 128;
/// Size of one entry this codec writes, in bytes.
pub const ENTRY_SIZE: u32 = 128;
/// Longest partition name, in UTF-16 code units.
pub const NAME_UNITS: usize = 36;

const SIGNATURE: [u8; 8] = *b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
/// Largest entry array [`read`] accepts (sgdisk allows resizing the array; 4 MiB is far beyond
/// anything real and keeps a corrupt count from allocating gigabytes).
const MAX_ENTRY_ARRAY_BYTES: u64 = 4 << 20;
const MBR_SIZE: usize = 512;

/// Partition type GUIDs used by the AtomixOS layout (Discoverable Partitions Specification).
pub mod types {
    use super::Guid;

    /// Extended boot loader partition (`xbootldr`), holds kernel, initrd, DTB and boot.scr.
    pub const XBOOTLDR: Guid = Guid::from_u128(0xBC13C2FF_59E6_4262_A352_B275FD6F7172);
    /// Root partition for 64-bit ARM (`root-arm64`).
    pub const ROOT_ARM64: Guid = Guid::from_u128(0xB921B045_1DF0_41C3_AF44_4C6F280D3FAE);
    /// Generic Linux data (`linux-generic`).
    pub const LINUX_GENERIC: Guid = Guid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4);
    /// EFI system partition (`esp`).
    pub const ESP: Guid = Guid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
}

/// A GUID, stored in RFC 4122 byte order (the order of its canonical text form).
///
/// GPT stores the first three fields little-endian on disk ("mixed-endian"); convert with
/// [`Guid::from_gpt_bytes`] and [`Guid::to_gpt_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid([u8; 16]);

impl Guid {
    /// The all-zero GUID; as a partition type it marks an unused entry.
    pub const NIL: Guid = Guid([0; 16]);

    /// The GUID whose canonical text is the hex digits of `value`
    /// (`0xB921B045_1DF0_41C3_AF44_4C6F280D3FAE` is `B921B045-1DF0-41C3-AF44-4C6F280D3FAE`).
    pub const fn from_u128(value: u128) -> Self {
        Guid(value.to_be_bytes())
    }

    /// From bytes in RFC 4122 order.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The bytes in RFC 4122 order.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// From the mixed-endian form GPT stores on disk.
    pub fn from_gpt_bytes(gpt: [u8; 16]) -> Self {
        Guid(swap_mixed_endian(gpt))
    }

    /// The mixed-endian form GPT stores on disk.
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        swap_mixed_endian(self.0)
    }

    /// A deterministic GUID derived from `seed`: the first 16 bytes of SHA-256(seed) with the
    /// version (4) and variant (RFC 4122) bits set, so tools treat it as an ordinary random GUID.
    pub fn from_seed(seed: &[u8]) -> Self {
        let digest = Sha256::digest(seed);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }

    /// Whether this is the nil GUID.
    pub fn is_nil(self) -> bool {
        self == Guid::NIL
    }
}

/// Reverses the byte order of the first three fields (4, 2 and 2 bytes); its own inverse.
fn swap_mixed_endian(mut b: [u8; 16]) -> [u8; 16] {
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// A string that is not a GUID in canonical `8-4-4-4-12` hex form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GUID {text:?}: expected 8-4-4-4-12 hex digits")]
pub struct ParseGuidError {
    /// The rejected text.
    pub text: String,
}

impl FromStr for Guid {
    type Err = ParseGuidError;

    /// Accepts the canonical form in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseGuidError {
            text: text.to_owned(),
        };
        let raw = text.as_bytes();
        if raw.len() != 36 {
            return Err(err());
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in raw.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(err());
                }
                continue;
            }
            let digit = char::from(c).to_digit(16).ok_or_else(err)?;
            let byte = &mut bytes[nibbles / 2];
            // to_digit(16) is < 16, so the cast is lossless.
            *byte = (*byte << 4) | digit as u8;
            nibbles += 1;
        }
        Ok(Guid(bytes))
    }
}

/// One used entry of the partition entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based index in the entry array (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// Partition type ([`types`]).
    pub type_guid: Guid,
    /// Unique partition GUID (PARTUUID).
    pub uuid: Guid,
    /// First sector, inclusive.
    pub first_lba: u64,
    /// Last sector, inclusive.
    pub last_lba: u64,
    /// Attribute bits ([`ATTR_LEGACY_BIOS_BOOTABLE`], bits 48-63 type-specific).
    pub attributes: u64,
    /// Partition name (PARTLABEL); at most [`NAME_UNITS`] UTF-16 code units.
    pub name: String,
}

impl Partition {
    /// Number of sectors the partition spans.
    pub fn sectors(&self) -> u64 {
        (self.last_lba + 1).saturating_sub(self.first_lba)
    }
}

/// A partition table: what the headers say about the disk, and the used entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Disk GUID.
    pub disk_guid: Guid,
    /// First sector partitions may use.
    pub first_usable_lba: u64,
    /// Last sector partitions may use.
    pub last_usable_lba: u64,
    /// Used entries, in entry-array order.
    pub partitions: Vec<Partition>,
}

impl Table {
    /// An empty table whose usable range is as large as the disk allows.
    pub fn spanning(geometry: &Geometry, disk_guid: Guid) -> Self {
        Table {
            disk_guid,
            first_usable_lba: geometry.min_first_usable_lba(),
            last_usable_lba: geometry.max_last_usable_lba(),
            partitions: Vec::new(),
        }
    }

    /// The partition with entry number `number`.
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// The first partition named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// Checks that the table can be written to a disk of this geometry: usable range inside the
    /// space the two GPT copies leave, partitions numbered 1..=128 without repeats, non-nil and
    /// unique GUIDs, start <= end, inside the usable range, not overlapping, names of at most
    /// [`NAME_UNITS`] UTF-16 units without NUL.
    pub fn validate(&self, geometry: &Geometry) -> Result<(), GptError> {
        let min = geometry.min_first_usable_lba();
        let max = geometry.max_last_usable_lba();
        if self.first_usable_lba < min {
            return Err(GptError::FirstUsableTooLow {
                first_usable: self.first_usable_lba,
                min,
            });
        }
        if self.last_usable_lba > max {
            return Err(GptError::LastUsableTooHigh {
                last_usable: self.last_usable_lba,
                max,
            });
        }
        if self.first_usable_lba > self.last_usable_lba {
            return Err(GptError::EmptyUsableRange {
                first_usable: self.first_usable_lba,
                last_usable: self.last_usable_lba,
            });
        }
        for (i, p) in self.partitions.iter().enumerate() {
            let id = || PartitionId::of(p);
            if p.number == 0 || p.number > ENTRY_COUNT {
                return Err(GptError::PartitionNumber {
                    partition: id(),
                    max: ENTRY_COUNT,
                });
            }
            if p.type_guid.is_nil() {
                return Err(GptError::NilType { partition: id() });
            }
            if p.uuid.is_nil() {
                return Err(GptError::NilUuid { partition: id() });
            }
            if p.first_lba > p.last_lba {
                return Err(GptError::Reversed {
                    partition: id(),
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                });
            }
            if p.first_lba < self.first_usable_lba || p.last_lba > self.last_usable_lba {
                return Err(GptError::OutsideUsable {
                    partition: id(),
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                    first_usable: self.first_usable_lba,
                    last_usable: self.last_usable_lba,
                });
            }
            let units = p.name.encode_utf16().count();
            if units > NAME_UNITS {
                return Err(GptError::NameTooLong {
                    partition: id(),
                    units,
                });
            }
            if p.name.contains('\0') {
                return Err(GptError::NameHasNul { partition: id() });
            }
            for q in &self.partitions[..i] {
                if q.number == p.number {
                    return Err(GptError::DuplicateNumber { partition: id() });
                }
                if q.uuid == p.uuid {
                    return Err(GptError::DuplicateUuid {
                        partition: id(),
                        other: PartitionId::of(q),
                    });
                }
                if p.first_lba <= q.last_lba && q.first_lba <= p.last_lba {
                    return Err(GptError::Overlap {
                        partition: id(),
                        other: PartitionId::of(q),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Sector size and count of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    sector_size: u64,
    sectors: u64,
}

impl Geometry {
    /// A disk of `disk_bytes` with `sector_size`-byte logical sectors (512 or 4096); the size must
    /// be a whole number of sectors and leave room for both GPT copies and one usable sector.
    pub fn new(disk_bytes: u64, sector_size: u64) -> Result<Self, GptError> {
        if sector_size != 512 && sector_size != 4096 {
            return Err(GptError::SectorSize { sector_size });
        }
        let geometry = Geometry {
            sector_size,
            sectors: disk_bytes / sector_size,
        };
        let needed = 2 * (1 + geometry.entry_array_sectors()) + 2;
        if !disk_bytes.is_multiple_of(sector_size) || geometry.sectors < needed {
            return Err(GptError::DiskSize {
                disk_bytes,
                sector_size,
            });
        }
        Ok(geometry)
    }

    /// Logical sector size in bytes.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// Number of sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Size in bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.sectors * self.sector_size
    }

    /// Sectors taken by one entry array of [`ENTRY_COUNT`] x [`ENTRY_SIZE`] bytes.
    pub fn entry_array_sectors(&self) -> u64 {
        entry_array_bytes().div_ceil(self.sector_size)
    }

    /// Lowest first-usable LBA: after the protective MBR, primary header and entry array.
    pub fn min_first_usable_lba(&self) -> u64 {
        2 + self.entry_array_sectors()
    }

    /// Highest last-usable LBA: before the backup entry array and backup header.
    pub fn max_last_usable_lba(&self) -> u64 {
        self.backup_entries_lba() - 1
    }

    /// Where the backup header goes: the last sector.
    pub fn backup_header_lba(&self) -> u64 {
        self.sectors - 1
    }

    /// Where the backup entry array goes: right before the backup header.
    pub fn backup_entries_lba(&self) -> u64 {
        self.backup_header_lba() - self.entry_array_sectors()
    }

    fn offset(&self, lba: u64) -> u64 {
        lba * self.sector_size
    }
}

fn entry_array_bytes() -> u64 {
    u64::from(ENTRY_COUNT) * u64::from(ENTRY_SIZE)
}

/// A partition as named in errors: its number and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionId {
    /// Entry number.
    pub number: u32,
    /// Partition name.
    pub name: String,
}

impl PartitionId {
    fn of(p: &Partition) -> Self {
        PartitionId {
            number: p.number,
            name: p.name.clone(),
        }
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} ({:?})", self.number, self.name)
    }
}

/// The on-disk structures of a GPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// LBA 0.
    ProtectiveMbr,
    /// LBA 1.
    PrimaryHeader,
    /// LBA 2 onwards.
    PrimaryEntries,
    /// Right before the backup header.
    BackupEntries,
    /// The last LBA.
    BackupHeader,
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Structure::ProtectiveMbr => "protective MBR",
            Structure::PrimaryHeader => "primary GPT header",
            Structure::PrimaryEntries => "primary GPT entry array",
            Structure::BackupEntries => "backup GPT entry array",
            Structure::BackupHeader => "backup GPT header",
        })
    }
}

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

/// One write of [`encode`]: `data` goes to byte `offset` of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Which structure this is.
    pub what: Structure,
    /// Byte offset on the disk.
    pub offset: u64,
    /// The bytes, whole sectors.
    pub data: Vec<u8>,
}

/// Reads the primary GPT of a disk with 512-byte sectors.
pub fn read(dev: &mut (impl Read + Seek), disk_bytes: u64) -> Result<Table, GptError> {
    read_with(dev, &Geometry::new(disk_bytes, 512)?)
}

/// Reads the primary GPT of a disk of the given geometry.
pub fn read_with(dev: &mut (impl Read + Seek), geometry: &Geometry) -> Result<Table, GptError> {
    read_copy(dev, geometry, Side::Primary)
}

/// Reads the backup GPT (header in the disk's last sector) of a disk of the given geometry, with
/// the same checks as [`read_with`]. Used when the primary copy is damaged.
pub fn read_backup(dev: &mut (impl Read + Seek), geometry: &Geometry) -> Result<Table, GptError> {
    read_copy(dev, geometry, Side::Backup)
}

/// Writes protective MBR, backup and primary GPT of `table` to a disk with 512-byte sectors.
pub fn write(
    dev: &mut (impl Write + Seek),
    disk_bytes: u64,
    table: &Table,
) -> Result<(), GptError> {
    write_with(dev, &Geometry::new(disk_bytes, 512)?, table)
}

/// Writes protective MBR, backup and primary GPT of `table` to a disk of the given geometry, in
/// the order of [`encode`], then flushes.
pub fn write_with(
    dev: &mut (impl Write + Seek),
    geometry: &Geometry,
    table: &Table,
) -> Result<(), GptError> {
    for piece in encode(geometry, table)? {
        let failed = |source| GptError::Write {
            what: piece.what,
            offset: piece.offset,
            source,
        };
        dev.seek(SeekFrom::Start(piece.offset)).map_err(failed)?;
        dev.write_all(&piece.data).map_err(failed)?;
    }
    dev.flush().map_err(|source| GptError::Flush { source })
}

/// Validates `table` and encodes it into the writes [`write_with`] performs, in its order:
/// protective MBR, backup entries, backup header, primary entries, primary header.
pub fn encode(geometry: &Geometry, table: &Table) -> Result<Vec<Piece>, GptError> {
    table.validate(geometry)?;
    let entries = encode_entries(geometry, table);
    let entries_crc = crc32fast::hash(&entries[..to_usize(entry_array_bytes())]);
    let header = |copy: Side| {
        let fields = HeaderFields {
            my_lba: copy.header_lba(geometry),
            alternate_lba: copy.other().header_lba(geometry),
            first_usable: table.first_usable_lba,
            last_usable: table.last_usable_lba,
            disk_guid: table.disk_guid,
            entries_lba: copy.entries_lba(geometry),
            entries_crc,
        };
        Piece {
            what: copy.header(),
            offset: geometry.offset(fields.my_lba),
            data: fields.encode(geometry),
        }
    };
    let entries_piece = |copy: Side| Piece {
        what: copy.entries(),
        offset: geometry.offset(copy.entries_lba(geometry)),
        data: entries.clone(),
    };
    Ok(vec![
        Piece {
            what: Structure::ProtectiveMbr,
            offset: 0,
            data: protective_mbr(geometry),
        },
        entries_piece(Side::Backup),
        header(Side::Backup),
        entries_piece(Side::Primary),
        header(Side::Primary),
    ])
}

/// Which of the two copies of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Primary,
    Backup,
}

impl Side {
    fn header_lba(self, g: &Geometry) -> u64 {
        match self {
            Side::Primary => 1,
            Side::Backup => g.backup_header_lba(),
        }
    }

    fn entries_lba(self, g: &Geometry) -> u64 {
        match self {
            Side::Primary => 2,
            Side::Backup => g.backup_entries_lba(),
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Primary => Side::Backup,
            Side::Backup => Side::Primary,
        }
    }

    fn header(self) -> Structure {
        match self {
            Side::Primary => Structure::PrimaryHeader,
            Side::Backup => Structure::BackupHeader,
        }
    }

    fn entries(self) -> Structure {
        match self {
            Side::Primary => Structure::PrimaryEntries,
            Side::Backup => Structure::BackupEntries,
        }
    }
}

/// The fields of a header that vary between tables and copies.
#[derive(Debug)]
struct HeaderFields {
    my_lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entries_lba: u64,
    entries_crc: u32,
}

impl HeaderFields {
    /// One sector: the 92-byte header, zero-padded.
    fn encode(&self, g: &Geometry) -> Vec<u8> {
        let mut s = vec![0u8; to_usize(g.sector_size)];
        s[0..8].copy_from_slice(&SIGNATURE);
        put_u32(&mut s, 8, REVISION);
        put_u32(&mut s, 12, HEADER_SIZE);
        put_u64(&mut s, 24, self.my_lba);
        put_u64(&mut s, 32, self.alternate_lba);
        put_u64(&mut s, 40, self.first_usable);
        put_u64(&mut s, 48, self.last_usable);
        s[56..72].copy_from_slice(&self.disk_guid.to_gpt_bytes());
        put_u64(&mut s, 72, self.entries_lba);
        put_u32(&mut s, 80, ENTRY_COUNT);
        put_u32(&mut s, 84, ENTRY_SIZE);
        put_u32(&mut s, 88, self.entries_crc);
        let crc = crc32fast::hash(&s[..to_usize(u64::from(HEADER_SIZE))]);
        put_u32(&mut s, 16, crc);
        s
    }
}

/// The entry array padded to whole sectors.
fn encode_entries(g: &Geometry, table: &Table) -> Vec<u8> {
    let mut a = vec![0u8; to_usize(g.entry_array_sectors() * g.sector_size)];
    let size = to_usize(u64::from(ENTRY_SIZE));
    for p in &table.partitions {
        // validate() keeps number in 1..=ENTRY_COUNT.
        let at = to_usize(u64::from(p.number - 1)) * size;
        let e = &mut a[at..at + size];
        e[0..16].copy_from_slice(&p.type_guid.to_gpt_bytes());
        e[16..32].copy_from_slice(&p.uuid.to_gpt_bytes());
        put_u64(e, 32, p.first_lba);
        put_u64(e, 40, p.last_lba);
        put_u64(e, 48, p.attributes);
        for (i, unit) in p.name.encode_utf16().take(NAME_UNITS).enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
    a
}

/// LBA 0: no boot code, one 0xEE partition from LBA 1 over the whole disk (capped at 2^32-1
/// sectors), CHS values as util-linux writes them; padded to a whole sector.
fn protective_mbr(g: &Geometry) -> Vec<u8> {
    let mut s = vec![0u8; to_usize(g.sector_size)];
    let size = u32::try_from(g.sectors - 1).unwrap_or(u32::MAX);
    let entry = &mut s[446..462];
    entry[..8].copy_from_slice(&[0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF]);
    put_u32(entry, 8, 1);
    put_u32(entry, 12, size);
    s[MBR_SIZE - 2] = 0x55;
    s[MBR_SIZE - 1] = 0xAA;
    s
}

fn read_copy(dev: &mut (impl Read + Seek), g: &Geometry, copy: Side) -> Result<Table, GptError> {
    let what = copy.header();
    let lba = copy.header_lba(g);
    let mut s = vec![0u8; to_usize(g.sector_size)];
    read_at(dev, what, g.offset(lba), &mut s)?;
    if s[0..8] != SIGNATURE {
        return Err(GptError::NoGpt { what, lba });
    }
    let revision = get_u32(&s, 8);
    if revision >> 16 != 1 {
        return Err(GptError::Revision {
            what,
            lba,
            revision,
        });
    }
    let header_size = get_u32(&s, 12);
    if header_size < HEADER_SIZE || u64::from(header_size) > g.sector_size {
        return Err(GptError::HeaderSize {
            what,
            lba,
            size: header_size,
        });
    }
    let stored = get_u32(&s, 16);
    let mut zeroed = s[..to_usize(u64::from(header_size))].to_vec();
    zeroed[16..20].fill(0);
    let computed = crc32fast::hash(&zeroed);
    if stored != computed {
        return Err(GptError::HeaderCrc {
            what,
            lba,
            stored,
            computed,
        });
    }
    let recorded = get_u64(&s, 24);
    if recorded != lba {
        return Err(GptError::HeaderLocation {
            what,
            lba,
            recorded,
        });
    }
    let first_usable = get_u64(&s, 40);
    let last_usable = get_u64(&s, 48);
    if first_usable < 2 || last_usable >= g.sectors || first_usable > last_usable.saturating_add(1)
    {
        return Err(GptError::UsableRangeOnDisk {
            what,
            lba,
            first_usable,
            last_usable,
            sectors: g.sectors,
        });
    }
    let disk_guid = Guid::from_gpt_bytes(get_16(&s, 56));
    let entries_lba = get_u64(&s, 72);
    let count = get_u32(&s, 80);
    let size = get_u32(&s, 84);
    let array_bytes = u64::from(count) * u64::from(size);
    if size < ENTRY_SIZE || !size.is_multiple_of(8) || array_bytes > MAX_ENTRY_ARRAY_BYTES {
        return Err(GptError::EntryGeometry {
            what,
            lba,
            count,
            size,
        });
    }
    let array_end = entries_lba
        .checked_mul(g.sector_size)
        .and_then(|o| o.checked_add(array_bytes));
    if entries_lba < 1 || array_end.is_none_or(|end| end > g.disk_bytes()) {
        return Err(GptError::EntriesLocation {
            what,
            lba,
            entries_lba,
        });
    }
    let mut entries = vec![0u8; to_usize(array_bytes)];
    read_at(dev, copy.entries(), g.offset(entries_lba), &mut entries)?;
    let stored = get_u32(&s, 88);
    let computed = crc32fast::hash(&entries);
    if stored != computed {
        return Err(GptError::EntriesCrc {
            what: copy.entries(),
            lba: entries_lba,
            stored,
            computed,
        });
    }
    let mut partitions = Vec::new();
    for (index, e) in entries.chunks_exact(to_usize(u64::from(size))).enumerate() {
        let type_guid = Guid::from_gpt_bytes(get_16(e, 0));
        if type_guid.is_nil() {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]]))
            .take_while(|&u| u != 0)
            .collect();
        partitions.push(Partition {
            // index < count, and count is a u32.
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            type_guid,
            uuid: Guid::from_gpt_bytes(get_16(e, 16)),
            first_lba: get_u64(e, 32),
            last_lba: get_u64(e, 40),
            attributes: get_u64(e, 48),
            // An invalid name is not worth an unreadable disk: decode it lossily.
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(Table {
        disk_guid,
        first_usable_lba: first_usable,
        last_usable_lba: last_usable,
        partitions,
    })
}

fn read_at(
    dev: &mut (impl Read + Seek),
    what: Structure,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), GptError> {
    let failed = |source| GptError::Read {
        what,
        offset,
        source,
    };
    dev.seek(SeekFrom::Start(offset)).map_err(failed)?;
    dev.read_exact(buf).map_err(failed)
}

/// Sizes here are bounded by the sector size or the 4 MiB entry-array cap.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&b[at..at + 16]);
    out
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(out)
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const MIB: u64 = 1 << 20;

    fn sample(disk_bytes: u64) -> Table {
        let g = Geometry::new(disk_bytes, 512).unwrap();
        let mut t = Table::spanning(&g, Guid::from_seed(b"disk"));
        t.first_usable_lba = 32768;
        t.partitions = vec![
            Partition {
                number: 1,
                type_guid: types::XBOOTLDR,
                uuid: Guid::from_seed(b"boot-a"),
                first_lba: 32768,
                last_lba: 32768 + 2048 - 1,
                attributes: ATTR_LEGACY_BIOS_BOOTABLE,
                name: "boot-a".into(),
            },
            Partition {
                number: 3,
                type_guid: types::ROOT_ARM64,
                uuid: Guid::from_seed(b"rootfs-a"),
                first_lba: 34816,
                last_lba: 40959,
                attributes: 0,
                name: "rootfs-ä 🦀".into(),
            },
        ];
        t
    }

    fn written(disk_bytes: u64, t: &Table) -> Cursor<Vec<u8>> {
        let mut dev = Cursor::new(vec![0u8; to_usize(disk_bytes)]);
        write(&mut dev, disk_bytes, t).unwrap();
        dev
    }

    #[test]
    fn guid_text_round_trip_and_case() {
        let g: Guid = "b921b045-1df0-41c3-af44-4c6f280d3fae".parse().unwrap();
        assert_eq!(g, types::ROOT_ARM64);
        assert_eq!(g.to_string(), "B921B045-1DF0-41C3-AF44-4C6F280D3FAE");
        assert_eq!(
            types::LINUX_GENERIC.to_string(),
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
        for bad in [
            "",
            "B921B045-1DF0-41C3-AF44-4C6F280D3FA",
            "B921B045-1DF0-41C3-AF44-4C6F280D3FAEE",
            "B921B045x1DF0-41C3-AF44-4C6F280D3FAE",
            "G921B045-1DF0-41C3-AF44-4C6F280D3FAE",
            "+921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        ] {
            assert!(bad.parse::<Guid>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn guid_mixed_endian() {
        // The ESP type GUID as it appears on disk (UEFI spec example).
        let disk = [
            0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
            0xC9, 0x3B,
        ];
        assert_eq!(Guid::from_gpt_bytes(disk), types::ESP);
        assert_eq!(types::ESP.to_gpt_bytes(), disk);
    }

    #[test]
    fn guid_from_seed_is_deterministic_v4() {
        let a = Guid::from_seed(b"atomix/boot-a");
        assert_eq!(a, Guid::from_seed(b"atomix/boot-a"));
        assert_ne!(a, Guid::from_seed(b"atomix/boot-b"));
        let b = a.to_bytes();
        assert_eq!(b[6] >> 4, 4);
        assert_eq!(b[8] & 0xc0, 0x80);
    }

    #[test]
    fn round_trip() {
        let t = sample(64 * MIB);
        let mut dev = written(64 * MIB, &t);
        assert_eq!(read(&mut dev, 64 * MIB).unwrap(), t);
    }

    #[test]
    fn round_trip_4096_byte_sectors() {
        let g = Geometry::new(64 * MIB, 4096).unwrap();
        let mut t = Table::spanning(&g, Guid::from_seed(b"4k"));
        assert_eq!(t.first_usable_lba, 6);
        t.partitions.push(Partition {
            number: 1,
            type_guid: types::LINUX_GENERIC,
            uuid: Guid::from_seed(b"4k/1"),
            first_lba: 256,
            last_lba: t.last_usable_lba,
            attributes: 0,
            name: "data".into(),
        });
        let mut dev = Cursor::new(vec![0u8; to_usize(64 * MIB)]);
        write_with(&mut dev, &g, &t).unwrap();
        assert_eq!(read_with(&mut dev, &g).unwrap(), t);
        assert_eq!(&dev.get_ref()[4096..4104], b"EFI PART");
        assert_eq!(
            &dev.get_ref()[to_usize(64 * MIB - 4096)..][..8],
            b"EFI PART"
        );
    }

    #[test]
    fn layout_of_the_writes() {
        let disk = 64 * MIB;
        let dev = written(disk, &sample(disk));
        let b = dev.get_ref();
        // protective MBR
        assert_eq!(&b[510..512], &[0x55, 0xAA]);
        assert_eq!(b[446 + 4], 0xEE);
        assert_eq!(get_u32(b, 446 + 8), 1);
        assert_eq!(u64::from(get_u32(b, 446 + 12)), disk / 512 - 1);
        // primary header points at the backup, backup at the primary
        let sectors = disk / 512;
        assert_eq!(get_u64(b, 512 + 24), 1);
        assert_eq!(get_u64(b, 512 + 32), sectors - 1);
        let backup = to_usize((sectors - 1) * 512);
        assert_eq!(&b[backup..backup + 8], b"EFI PART");
        assert_eq!(get_u64(b, backup + 24), sectors - 1);
        assert_eq!(get_u64(b, backup + 32), 1);
        assert_eq!(get_u64(b, backup + 72), sectors - 33);
        assert_eq!(get_u64(b, 512 + 48), sectors - 34);
        // both entry arrays are equal
        let primary = &b[1024..1024 + 16384];
        let backup_entries = &b[to_usize((sectors - 33) * 512)..][..16384];
        assert_eq!(primary, backup_entries);
        // entry 2 is a hole, entry 3 holds rootfs
        assert!(b[1024 + 128..1024 + 256].iter().all(|&x| x == 0));
        assert_eq!(
            &b[1024 + 256..1024 + 272],
            &types::ROOT_ARM64.to_gpt_bytes()
        );
    }

    #[test]
    fn protective_mbr_size_is_capped() {
        let g = Geometry {
            sector_size: 512,
            sectors: 1 << 33,
        };
        assert_eq!(get_u32(&protective_mbr(&g), 446 + 12), u32::MAX);
    }

    #[test]
    fn write_order_backup_before_primary() {
        let g = Geometry::new(64 * MIB, 512).unwrap();
        let order: Vec<_> = encode(&g, &sample(64 * MIB))
            .unwrap()
            .into_iter()
            .map(|p| p.what)
            .collect();
        assert_eq!(
            order,
            [
                Structure::ProtectiveMbr,
                Structure::BackupEntries,
                Structure::BackupHeader,
                Structure::PrimaryEntries,
                Structure::PrimaryHeader
            ]
        );
    }

    #[test]
    fn header_crc_corruption_detected() {
        let mut dev = written(64 * MIB, &sample(64 * MIB));
        dev.get_mut()[512 + 40] ^= 1; // first usable LBA
        match read(&mut dev, 64 * MIB) {
            Err(GptError::HeaderCrc {
                what: Structure::PrimaryHeader,
                lba: 1,
                stored,
                computed,
            }) => assert_ne!(stored, computed),
            other => panic!("expected header CRC error, got {other:?}"),
        }
    }

    #[test]
    fn entries_crc_corruption_detected() {
        let mut dev = written(64 * MIB, &sample(64 * MIB));
        dev.get_mut()[1024 + 56] ^= 1; // a byte of partition 1's name
        let err = read(&mut dev, 64 * MIB).unwrap_err();
        assert!(
            matches!(
                err,
                GptError::EntriesCrc {
                    what: Structure::PrimaryEntries,
                    lba: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("primary GPT entry array at LBA 2"));
    }

    #[test]
    fn no_gpt_on_blank_disk() {
        let mut dev = Cursor::new(vec![0u8; to_usize(MIB)]);
        let err = read(&mut dev, MIB).unwrap_err();
        assert!(matches!(err, GptError::NoGpt { lba: 1, .. }), "{err:?}");
    }

    #[test]
    fn short_device_is_a_read_error() {
        let mut dev = Cursor::new(vec![0u8; 100]);
        let err = read(&mut dev, MIB).unwrap_err();
        assert!(matches!(err, GptError::Read { offset: 512, .. }), "{err:?}");
    }

    #[test]
    fn wrong_header_location_detected() {
        let disk = 64 * MIB;
        let mut dev = written(disk, &sample(disk));
        // Put the backup header where the primary belongs (valid CRC, wrong self-pointer).
        let backup = dev.get_ref()[to_usize(disk - 512)..].to_vec();
        dev.get_mut()[512..1024].copy_from_slice(&backup);
        let err = read(&mut dev, disk).unwrap_err();
        assert!(
            matches!(err, GptError::HeaderLocation { lba: 1, recorded, .. } if recorded == disk / 512 - 1),
            "{err:?}"
        );
    }

    fn invalid(edit: impl FnOnce(&mut Table)) -> GptError {
        let mut t = sample(64 * MIB);
        edit(&mut t);
        let mut dev = Cursor::new(vec![0u8; to_usize(64 * MIB)]);
        let err = write(&mut dev, 64 * MIB, &t).unwrap_err();
        assert!(
            dev.get_ref().iter().all(|&b| b == 0),
            "an invalid table wrote data"
        );
        err
    }

    #[test]
    fn validation_names_the_partition() {
        let err = invalid(|t| t.partitions[1].first_lba = 34000);
        assert!(matches!(err, GptError::Overlap { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "partition 3 (\"rootfs-ä 🦀\"): overlaps partition 1 (\"boot-a\")"
        );

        let err = invalid(|t| t.partitions[1].number = 1);
        assert!(matches!(err, GptError::DuplicateNumber { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[1].number = 129);
        assert!(matches!(err, GptError::PartitionNumber { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[0].first_lba = 100);
        assert!(matches!(err, GptError::OutsideUsable { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[1].last_lba = t.last_usable_lba + 1);
        assert!(matches!(err, GptError::OutsideUsable { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[1].last_lba = t.partitions[1].first_lba - 1);
        assert!(matches!(err, GptError::Reversed { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[0].name = "x".repeat(37));
        assert!(
            matches!(err, GptError::NameTooLong { units: 37, .. }),
            "{err:?}"
        );
        let err = invalid(|t| t.partitions[0].name = "a\0b".into());
        assert!(matches!(err, GptError::NameHasNul { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[0].type_guid = Guid::NIL);
        assert!(matches!(err, GptError::NilType { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[0].uuid = Guid::NIL);
        assert!(matches!(err, GptError::NilUuid { .. }), "{err:?}");
        let err = invalid(|t| t.partitions[1].uuid = t.partitions[0].uuid);
        assert!(matches!(err, GptError::DuplicateUuid { .. }), "{err:?}");
        let err = invalid(|t| t.first_usable_lba = 33);
        assert!(
            matches!(err, GptError::FirstUsableTooLow { min: 34, .. }),
            "{err:?}"
        );
        let err = invalid(|t| t.last_usable_lba += 1);
        assert!(matches!(err, GptError::LastUsableTooHigh { .. }), "{err:?}");
    }

    #[test]
    fn names_of_36_units_fit() {
        let mut t = sample(64 * MIB);
        t.partitions[0].name = "n".repeat(36);
        let mut dev = written(64 * MIB, &t);
        assert_eq!(read(&mut dev, 64 * MIB).unwrap(), t);
    }

    #[test]
    fn geometry_rejects_odd_sizes() {
        assert!(matches!(
            Geometry::new(MIB + 1, 512),
            Err(GptError::DiskSize { .. })
        ));
        assert!(matches!(
            Geometry::new(MIB, 1024),
            Err(GptError::SectorSize { .. })
        ));
        assert!(matches!(
            Geometry::new(67 * 512, 512),
            Err(GptError::DiskSize { .. })
        ));
        assert!(Geometry::new(68 * 512, 512).is_ok());
    }
}
