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
//!
//! The values it reads and writes live beside it: [`Guid`] (`guid.rs`), [`Table`], [`Partition`]
//! and [`Geometry`] (`table.rs`), [`GptError`] (`error.rs`); this file is the codec and its
//! tests.

use std::io::{Read, Seek, SeekFrom, Write};

mod error;
mod guid;
mod table;

pub use self::error::GptError;
pub use self::guid::{Guid, ParseGuidError};
use self::table::entry_array_bytes;
pub use self::table::{Geometry, Partition, PartitionId, Structure, Table};

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
