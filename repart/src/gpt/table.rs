//! What a GPT holds, as values: [`Table`] and its [`Partition`]s with their validation, the disk's
//! [`Geometry`], and the names used in errors ([`PartitionId`], [`Structure`]). Must not: read
//! or write a disk (the codec in the parent module does).

use std::fmt;

use super::{ENTRY_COUNT, ENTRY_SIZE, GptError, Guid, NAME_UNITS};

/// One used entry of the partition entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based index in the entry array (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// Partition type ([`super::types`]).
    pub type_guid: Guid,
    /// Unique partition GUID (PARTUUID).
    pub uuid: Guid,
    /// First sector, inclusive.
    pub first_lba: u64,
    /// Last sector, inclusive.
    pub last_lba: u64,
    /// Attribute bits ([`super::ATTR_LEGACY_BIOS_BOOTABLE`], bits 48-63 type-specific).
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
    pub(super) sector_size: u64,
    pub(super) sectors: u64,
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

    pub(super) fn offset(&self, lba: u64) -> u64 {
        lba * self.sector_size
    }
}

pub(super) fn entry_array_bytes() -> u64 {
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
