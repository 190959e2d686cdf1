//! cpio "newc" (SVR4, magic `070701`) writer and reader, as the kernel's initramfs unpacker reads it.
//!
//! The writer is hand-written rather than taken from a crate so that every header field is ours:
//! sequential inode numbers from 1, uid/gid 0, one mtime for every entry, nlink 1 for everything
//! but directories (nlink 2). The kernel treats a regular file with nlink > 1 as a hardlink
//! candidate keyed by inode number, so inode numbers must never repeat. Names are written without
//! a leading `/` (like `gen_init_cpio` and `cpio -o`); the reader returns them as stored.
//!
//! Layout of one entry: a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the name
//! and its NUL, padded so the data starts on a 4-byte boundary, then the data padded to 4 bytes.
//! The archive ends with an entry named `TRAILER!!!`.

use std::io::{self, Write};

/// The newc magic (no checksums).
pub const MAGIC: &[u8; 6] = b"070701";
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Size of the fixed newc header.
pub const HEADER_LEN: usize = 110;

/// File type bits (`S_IFMT`) and the types this module writes.
pub const S_IFMT: u32 = 0o170_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// Block device (read only; the writer has no use for it).
pub const S_IFBLK: u32 = 0o060_000;

/// A failure to write or parse a newc archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// Writing an entry to the underlying writer failed.
    #[error("cannot write cpio entry `{name}`")]
    Write {
        /// The entry being written.
        name: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An entry name is empty, contains a NUL, or is the trailer name.
    #[error("invalid cpio entry name `{name}`")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// The data of an entry does not fit the 32-bit size field.
    #[error("cpio entry `{name}` is too large ({size} bytes, newc allows at most 4 GiB - 1)")]
    TooLarge {
        /// The entry.
        name: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The mtime does not fit the 32-bit field.
    #[error("mtime {mtime} does not fit a cpio newc header (at most 4294967295)")]
    MtimeOutOfRange {
        /// The epoch given.
        mtime: u64,
    },
    /// The archive ended inside an entry, or before its trailer.
    #[error("cpio archive truncated at byte {offset} (reading {what})")]
    Truncated {
        /// Byte offset where more data was expected.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A header does not start with the newc magic.
    #[error("bad cpio magic at byte {offset} (only newc `070701` is supported)")]
    BadMagic {
        /// Byte offset of the header.
        offset: usize,
    },
    /// A header field is not 8 hex digits.
    #[error("bad cpio header field `{field}` at byte {offset}")]
    BadField {
        /// Byte offset of the header.
        offset: usize,
        /// The field name.
        field: &'static str,
    },
    /// An entry name is not NUL-terminated UTF-8.
    #[error("bad cpio entry name at byte {offset}")]
    BadName {
        /// Byte offset of the header.
        offset: usize,
    },
}

/// Writes a newc archive entry by entry. Call [`Writer::finish`] to append the trailer.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    mtime: u32,
    next_ino: u32,
    written: u64,
    entries: usize,
}

impl<W: Write> Writer<W> {
    /// Start an archive; every entry gets `mtime` (seconds since the epoch, e.g.
    /// `SOURCE_DATE_EPOCH`).
    pub fn new(out: W, mtime: u64) -> Result<Self, CpioError> {
        let mtime = u32::try_from(mtime).map_err(|_| CpioError::MtimeOutOfRange { mtime })?;
        Ok(Self {
            out,
            mtime,
            next_ino: 1,
            written: 0,
            entries: 0,
        })
    }

    /// A directory with permission bits `perm` (e.g. `0o755`).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// A regular file with permission bits `perm` and contents `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link `name` -> `target` (mode 0777, as symlinks have).
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node `major:minor` with permission bits `perm`.
    pub fn char_device(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Entries written so far (without the trailer).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Append the trailer and return the writer and the total archive size in bytes.
    pub fn finish(mut self) -> Result<(W, u64), CpioError> {
        self.raw_entry(TRAILER, 0, 0, 1, (0, 0), &[])?;
        Ok((self.out, self.written))
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            return Err(CpioError::InvalidName {
                name: name.to_owned(),
            });
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw_entry(name, ino, mode, nlink, rdev, data)?;
        self.entries += 1;
        Ok(())
    }

    fn raw_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        (rmajor, rminor): (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            name: name.to_owned(),
            size: data.len() as u64,
        })?;
        let namesize = name.len() + 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            self.mtime,
            size,
            0, // devmajor
            0, // devminor
            rmajor,
            rminor,
            namesize as u32,
            0, // check (newc has none)
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + namesize + 3);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        header.resize(header.len() + pad4(header.len()), 0);
        let padding = [0u8; 3];
        let write = |out: &mut W| -> io::Result<()> {
            out.write_all(&header)?;
            out.write_all(data)?;
            out.write_all(&padding[..pad4(data.len())])
        };
        write(&mut self.out).map_err(|source| CpioError::Write {
            name: name.to_owned(),
            source,
        })?;
        self.written += (header.len() + data.len() + pad4(data.len())) as u64;
        Ok(())
    }
}

/// Bytes of padding after `len` bytes to reach a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as stored (no leading `/` when written by [`Writer`]).
    pub name: String,
    /// Inode number.
    pub ino: u32,
    /// Full mode: type bits and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device number of a character or block device (`major`, `minor`).
    pub rdev: (u32, u32),
    /// File contents, or the target of a symlink.
    pub data: Vec<u8>,
}

impl Entry {
    /// The type bits (`mode & S_IFMT`).
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// The permission bits (`mode & 0o7777`).
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == S_IFREG
    }

    /// The target of a symlink, `None` for other types or a non-UTF-8 target.
    pub fn symlink_target(&self) -> Option<&str> {
        (self.file_type() == S_IFLNK)
            .then(|| std::str::from_utf8(&self.data).ok())
            .flatten()
    }
}

/// Parse an uncompressed newc archive up to its trailer. Bytes after the trailer (the padding
/// some tools add, or a concatenated archive) are ignored.
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry>, CpioError> {
    const FIELDS: [&str; 13] = [
        "ino",
        "mode",
        "uid",
        "gid",
        "nlink",
        "mtime",
        "filesize",
        "devmajor",
        "devminor",
        "rdevmajor",
        "rdevminor",
        "namesize",
        "check",
    ];
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let start = pos;
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .ok_or(CpioError::Truncated {
                offset: pos,
                what: "header",
            })?;
        if &header[..6] != MAGIC {
            return Err(CpioError::BadMagic { offset: start });
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let hex = &header[6 + 8 * i..14 + 8 * i];
            *field = std::str::from_utf8(hex)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or(CpioError::BadField {
                    offset: start,
                    field: FIELDS[i],
                })?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            _,
            _,
            rmajor,
            rminor,
            namesize,
            _,
        ] = fields;
        pos += HEADER_LEN;
        let namesize = namesize as usize;
        let raw_name = bytes.get(pos..pos + namesize).ok_or(CpioError::Truncated {
            offset: pos,
            what: "name",
        })?;
        let name = raw_name
            .split_last()
            .filter(|(nul, _)| **nul == 0)
            .and_then(|(_, name)| std::str::from_utf8(name).ok())
            .ok_or(CpioError::BadName { offset: start })?
            .to_owned();
        pos += namesize;
        pos += pad4(pos);
        let size = size as usize;
        let data = bytes
            .get(pos..pos + size)
            .ok_or(CpioError::Truncated {
                offset: pos,
                what: "data",
            })?
            .to_vec();
        pos += size;
        pos += pad4(pos);
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmajor, rminor),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mtime: u64) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), mtime).unwrap();
        w.dir("dev", 0o755).unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"hello").unwrap();
        w.file("empty", 0o644, b"").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        assert_eq!(w.entries(), 5);
        let (out, len) = w.finish().unwrap();
        assert_eq!(out.len() as u64, len);
        out
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let bytes = sample(1_700_000_000);
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_archive(&bytes).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "empty", "bin/sh"]);
        let inos: Vec<_> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5]);
        for e in &entries {
            assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 1_700_000_000), "{}", e.name);
        }
        assert_eq!(entries[0].mode, 0o040_755);
        assert_eq!(entries[0].nlink, 2);
        assert_eq!(entries[1].mode, 0o020_600);
        assert_eq!(entries[1].rdev, (5, 1));
        assert!(entries[1].data.is_empty());
        assert!(entries[2].is_file());
        assert_eq!(entries[2].perm(), 0o755);
        assert_eq!(entries[2].nlink, 1);
        assert_eq!(entries[2].data, b"hello");
        assert!(entries[3].data.is_empty());
        assert_eq!(entries[4].mode, 0o120_777);
        assert_eq!(entries[4].symlink_target(), Some("busybox"));
    }

    #[test]
    fn header_is_exactly_newc() {
        let bytes = sample(0);
        let first = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        // magic, ino 1, mode 040755, uid 0, gid 0, nlink 2, mtime 0, size 0, dev 0:0,
        // rdev 0:0, namesize 4 ("dev\0"), check 0.
        let expected = format!(
            "070701{:08X}{:08X}{}{:08X}{}{:08X}{}",
            1,
            0o040_755,
            "0".repeat(16),
            2,
            "0".repeat(48),
            4,
            "0".repeat(8)
        );
        assert_eq!(first, expected);
        // "dev\0" ends at 114, padded to 116 (no data); the next header follows.
        assert_eq!(&bytes[110..116], b"dev\0\0\0");
        assert_eq!(&bytes[116..122], MAGIC);
        // 110 + "TRAILER!!!\0" = 121 bytes, padded to 124.
        assert_eq!(&bytes[bytes.len() - 14..], b"TRAILER!!!\0\0\0\0");
        let trailer = &bytes[bytes.len() - 124..];
        assert_eq!(&trailer[..6], MAGIC);
    }

    #[test]
    fn same_input_same_bytes_and_epoch_matters() {
        assert_eq!(sample(5), sample(5));
        assert_ne!(sample(5), sample(6));
    }

    #[test]
    fn rejects_bad_names_and_mtime() {
        let mut w = Writer::new(Vec::new(), 0).unwrap();
        assert!(matches!(
            w.file("/", 0o644, b""),
            Err(CpioError::InvalidName { .. })
        ));
        assert!(matches!(
            w.file(TRAILER, 0o644, b""),
            Err(CpioError::InvalidName { .. })
        ));
        assert!(matches!(
            Writer::new(Vec::new(), u64::from(u32::MAX) + 1),
            Err(CpioError::MtimeOutOfRange { .. })
        ));
    }

    #[test]
    fn reader_reports_truncation_and_bad_magic() {
        let bytes = sample(0);
        let cut = &bytes[..bytes.len() - 20];
        assert!(matches!(
            read_archive(cut),
            Err(CpioError::Truncated { .. })
        ));
        let mut bad = bytes.clone();
        bad[5] = b'7';
        assert!(matches!(
            read_archive(&bad),
            Err(CpioError::BadMagic { offset: 0 })
        ));
        let mut bad = bytes;
        bad[6] = b'x';
        assert!(matches!(
            read_archive(&bad),
            Err(CpioError::BadField { field: "ino", .. })
        ));
    }
}
