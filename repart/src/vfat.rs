//! FAT file systems with the `fatfs` crate, inside a byte range of a disk: one implementation for
//! the image builder (boot-a with its files), the repartitioner (an empty boot-b), the slot
//! writer (a boot partition refilled) and the A/B state file ([`format`](fn@format)), and for reading and
//! updating single files in an existing file system's root directory ([`list_root`],
//! [`read_file`], [`write_file`]).
//!
//! Files go in the root directory only: `fatfs` 0.3.6 writes subdirectories that `fsck.vfat`
//! rejects (rafalh/rust-fatfs#117), so no directories are made.
//!
//! Errors name the file system by its byte range on the disk; callers add the disk and the
//! partition number. Nothing here fsyncs: the caller decides when its writes must be durable
//! ([`DiskIo::flush`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::io::{DiskIo, Window, WriteBack};

/// How to format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfatOptions {
    /// The 11-byte, space-padded volume label ([`fat_label`], [`label_from_partition`]).
    pub volume_label: [u8; 11],
    /// The volume id (serial number) shown as `XXXX-XXXX`.
    pub volume_id: u32,
    /// FAT12/16/32; `None` lets `fatfs` choose by size (FAT16 for 128 MiB).
    pub fat_type: Option<fatfs::FatType>,
    /// Every timestamp written, in seconds since 1970 (clamped to FAT's 1980..=2107).
    pub time: u64,
}

/// Failures making a FAT file system.
#[derive(Debug, thiserror::Error)]
pub enum VfatError {
    /// A volume label that FAT cannot hold.
    #[error("volume label {label:?} is not 1-11 characters of A-Z 0-9 - _")]
    Label {
        /// The label given.
        label: String,
    },
    /// Formatting the range as FAT failed.
    #[error("cannot format bytes {start}..{end} as FAT")]
    Format {
        /// First byte.
        start: u64,
        /// End byte (exclusive).
        end: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file to copy into the file system cannot be opened.
    #[error("cannot open {name} from {path}")]
    OpenFile {
        /// The file name.
        name: String,
        /// Where it is read from.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file cannot be written into the new file system.
    #[error("cannot write {name} into the FAT file system")]
    WriteFile {
        /// The file name.
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The range holds no usable FAT file system.
    #[error("no usable FAT file system in bytes {start}..{end}")]
    Open {
        /// First byte.
        start: u64,
        /// End byte (exclusive).
        end: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The root directory cannot be listed.
    #[error("cannot list the root directory of the FAT file system in bytes {start}..{end}")]
    List {
        /// First byte.
        start: u64,
        /// End byte (exclusive).
        end: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file of an existing file system cannot be read.
    #[error("cannot read {name} from the FAT file system in bytes {start}..{end}")]
    ReadFile {
        /// The file name.
        name: String,
        /// First byte.
        start: u64,
        /// End byte (exclusive).
        end: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file of an existing file system cannot be written.
    #[error("cannot write {name} into the FAT file system in bytes {start}..{end}")]
    UpdateFile {
        /// The file name.
        name: String,
        /// First byte.
        start: u64,
        /// End byte (exclusive).
        end: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A name that cannot be a file in the FAT root directory.
    #[error("{name:?} is not a file name for the FAT root directory (no `/`, `\\` or NUL)")]
    FileName {
        /// The file name.
        name: String,
    },
}

/// An entry of a FAT root directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootEntry {
    /// The long file name (the short one when there is none).
    pub name: String,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// A directory rather than a file.
    pub is_dir: bool,
}

/// The 11-byte, space-padded FAT volume label of `label`: 1-11 characters of `A-Z 0-9 - _`.
pub fn fat_label(label: &str) -> Result<[u8; 11], VfatError> {
    let ok = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_';
    if label.is_empty() || label.len() > 11 || !label.bytes().all(ok) {
        return Err(VfatError::Label {
            label: label.to_owned(),
        });
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// A volume label made from a partition label: upper-cased, characters outside `A-Z 0-9 - _`
/// replaced by `_`, cut to 11 bytes; `NO NAME` for an empty label (`boot-b` gives `BOOT-B`).
pub fn label_from_partition(label: &str) -> [u8; 11] {
    let mut out = [b' '; 11];
    let mut n = 0;
    for c in label.chars().take(11) {
        let c = c.to_ascii_uppercase();
        out[n] = if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_' {
            c as u8
        } else {
            b'_'
        };
        n += 1;
    }
    if n == 0 {
        out = *b"NO NAME    ";
    }
    out
}

/// Formats bytes `start..start + size` of `io` as FAT and writes `files` (name in the root
/// directory, source file) into it. Every write goes through `io`.
pub fn format(
    io: &dyn DiskIo,
    start: u64,
    size: u64,
    options: &VfatOptions,
    files: &[(String, PathBuf)],
) -> Result<(), VfatError> {
    let failed = |source| VfatError::Format {
        start,
        end: start + size,
        source,
    };
    // fatfs writes a sector at a time; whole runs of them go out as one write.
    let buffered = WriteBack::new(io, 1 << 20);
    let io: &dyn DiskIo = &buffered;
    let mut format = fatfs::FormatVolumeOptions::new()
        .volume_label(options.volume_label)
        .volume_id(options.volume_id);
    if let Some(fat_type) = options.fat_type {
        format = format.fat_type(fat_type);
    }
    fatfs::format_volume(Window::new(io, start, size), format).map_err(failed)?;
    // fatfs wants a &'static time provider; one small provider per format is leaked.
    let time: &'static EpochTime = Box::leak(Box::new(EpochTime::new(options.time)));
    let fs = fatfs::FileSystem::new(
        Window::new(io, start, size),
        fatfs::FsOptions::new().time_provider(time),
    )
    .map_err(failed)?;
    for (name, path) in files {
        let mut src = File::open(path).map_err(|source| VfatError::OpenFile {
            name: name.clone(),
            path: path.clone(),
            source,
        })?;
        let failed = |source| VfatError::WriteFile {
            name: name.clone(),
            source,
        };
        let mut dst = fs.root_dir().create_file(name).map_err(failed)?;
        dst.truncate().map_err(failed)?;
        io::copy(&mut src, &mut dst).map_err(failed)?;
        dst.flush().map_err(failed)?;
    }
    fs.unmount().map_err(failed)?;
    buffered.flush().map_err(failed)
}

/// Opens the FAT file system in bytes `start..start + size` of `io`; timestamps of any write
/// are `time` (seconds since 1970).
fn open<'a>(
    io: &'a dyn DiskIo,
    start: u64,
    size: u64,
    time: u64,
) -> Result<fatfs::FileSystem<Window<'a>>, VfatError> {
    // fatfs wants a &'static time provider; one small provider per open is leaked.
    let time: &'static EpochTime = Box::leak(Box::new(EpochTime::new(time)));
    fatfs::FileSystem::new(
        Window::new(io, start, size),
        fatfs::FsOptions::new().time_provider(time),
    )
    .map_err(|source| VfatError::Open {
        start,
        end: start + size,
        source,
    })
}

/// The entries of the root directory of the FAT file system in bytes `start..start + size`
/// (`.`/`..` and the volume label left out), in directory order.
pub fn list_root(io: &dyn DiskIo, start: u64, size: u64) -> Result<Vec<RootEntry>, VfatError> {
    let fs = open(io, start, size, 0)?;
    let mut out = Vec::new();
    for entry in fs.root_dir().iter() {
        let entry = entry.map_err(|source| VfatError::List {
            start,
            end: start + size,
            source,
        })?;
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        out.push(RootEntry {
            name,
            size: if entry.is_dir() { 0 } else { entry.len() },
            is_dir: entry.is_dir(),
        });
    }
    Ok(out)
}

/// The contents of file `name` (matched case-insensitively, as FAT does) in the root directory
/// of the FAT file system in bytes `start..start + size`; `None` when there is no such file.
pub fn read_file(
    io: &dyn DiskIo,
    start: u64,
    size: u64,
    name: &str,
) -> Result<Option<Vec<u8>>, VfatError> {
    check_root_name(name)?;
    let fs = open(io, start, size, 0)?;
    let failed = |source| VfatError::ReadFile {
        name: name.to_owned(),
        start,
        end: start + size,
        source,
    };
    let mut file = match fs.root_dir().open_file(name) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(failed)?;
    Ok(Some(data))
}

/// Creates file `name` in the root directory of the FAT file system in bytes
/// `start..start + size`, or truncates and rewrites it when it exists, with `data`; its
/// timestamps are `time` (seconds since 1970). Every write goes through `io`; nothing is
/// fsynced.
pub fn write_file(
    io: &dyn DiskIo,
    start: u64,
    size: u64,
    name: &str,
    data: &[u8],
    time: u64,
) -> Result<(), VfatError> {
    check_root_name(name)?;
    let failed = |source| VfatError::UpdateFile {
        name: name.to_owned(),
        start,
        end: start + size,
        source,
    };
    let buffered = WriteBack::new(io, 1 << 20);
    let fs = open(&buffered, start, size, time)?;
    let mut file = fs.root_dir().create_file(name).map_err(failed)?;
    file.truncate().map_err(failed)?;
    file.write_all(data).map_err(failed)?;
    file.flush().map_err(failed)?;
    drop(file);
    fs.unmount().map_err(failed)?;
    buffered.flush().map_err(failed)
}

fn check_root_name(name: &str) -> Result<(), VfatError> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) {
        return Err(VfatError::FileName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// A fatfs time provider that always answers with one fixed instant.
#[derive(Debug)]
struct EpochTime(fatfs::DateTime);

impl EpochTime {
    /// FAT times run from 1980-01-01 to 2107-12-31 23:59:58 (UTC here); clamp into that.
    fn new(epoch: u64) -> Self {
        const FAT_MIN: u64 = 315_532_800; // 1980-01-01T00:00:00Z
        const FAT_MAX: u64 = 4_354_819_198; // 2107-12-31T23:59:58Z
        let t = epoch.clamp(FAT_MIN, FAT_MAX);
        let (year, month, day) = civil_from_days(t / 86_400);
        let secs = t % 86_400;
        // Every value below is bounded (year <= 2107, secs < 86400), so the casts are lossless.
        EpochTime(fatfs::DateTime {
            date: fatfs::Date {
                year: year as u16,
                month: month as u16,
                day: day as u16,
            },
            time: fatfs::Time {
                hour: (secs / 3600) as u16,
                min: (secs / 60 % 60) as u16,
                sec: (secs % 60) as u16,
                millis: 0,
            },
        })
    }
}

impl fatfs::TimeProvider for EpochTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn epoch_time_is_clamped_and_split() {
        let t = EpochTime::new(1_700_000_000).0; // 2023-11-14T22:13:20Z
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        let t = EpochTime::new(0).0;
        assert_eq!((t.date.year, t.date.month, t.date.day), (1980, 1, 1));
        let t = EpochTime::new(u64::MAX).0;
        assert_eq!((t.date.year, t.date.month, t.date.day), (2107, 12, 31));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (23, 59, 58));
    }

    #[test]
    fn fat_labels() {
        assert_eq!(&fat_label("BOOT-A").unwrap(), b"BOOT-A     ");
        assert!(fat_label("boot-a").is_err());
        assert!(fat_label("TWELVE-CHARS").is_err());
        assert!(fat_label("").is_err());
        assert_eq!(&label_from_partition("boot-b"), b"BOOT-B     ");
        assert_eq!(&label_from_partition("a.b c twelve!"), b"A_B_C_TWELV");
        assert_eq!(&label_from_partition(""), b"NO NAME    ");
    }

    #[test]
    fn formats_fat16_with_a_file_inside_its_window() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(200 << 20).unwrap();
        let src = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(src.path(), b"hello").unwrap();
        let opts = VfatOptions {
            volume_label: *b"BOOT-B     ",
            volume_id: 0x1234_5678,
            fat_type: None,
            time: 1_700_000_000,
        };
        format(
            &f,
            16 << 20,
            128 << 20,
            &opts,
            &[("hello.txt".into(), src.path().to_path_buf())],
        )
        .unwrap();
        let mut boot = [0u8; 512];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut boot, 16 << 20).unwrap();
        assert_eq!(&boot[510..], &[0x55, 0xAA]);
        assert_eq!(&boot[54..59], b"FAT16");
        assert_eq!(&boot[43..54], b"BOOT-B     ");
        let mut before = vec![0u8; 16 << 20];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut before, 0).unwrap();
        assert!(before.iter().all(|&b| b == 0), "wrote before the window");
    }
}
