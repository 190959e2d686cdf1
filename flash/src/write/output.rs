//! The target opened for writing ([`Output`]): `O_DIRECT` when the file system allows it,
//! `O_EXCL` for a block device (and its size checked again), a buffered descriptor for an
//! unaligned tail.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::ALIGN;
use crate::{FlashError, Plan, Refusal};

fn is_errno(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// Opens `path` with `O_DIRECT` added to `opts` if the file system allows it (`EINVAL` means it
/// does not: tmpfs); returns whether it did.
pub(super) fn open_maybe_direct(
    opts: &OpenOptions,
    extra_flags: OFlags,
    path: &Path,
) -> io::Result<(File, bool)> {
    let mut direct = opts.clone();
    direct.custom_flags((extra_flags | OFlags::DIRECT).bits() as i32);
    match direct.open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if is_errno(&e, Errno::INVAL) => {
            let mut plain = opts.clone();
            plain.custom_flags(extra_flags.bits() as i32);
            Ok((plain.open(path)?, false))
        }
        Err(e) => Err(e),
    }
}

/// The open target: the main descriptor, and a buffered one for an unaligned tail.
pub(super) struct Output {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) direct: bool,
    tail: Option<File>,
}

impl Output {
    pub(super) fn open(plan: &Plan) -> Result<Self, FlashError> {
        let path = plan.target.path.clone();
        let open_err = |source| FlashError::OpenTarget {
            path: path.clone(),
            source,
        };
        let mut opts = OpenOptions::new();
        let (file, direct) = if plan.to_file {
            opts.write(true).create(true).truncate(true);
            open_maybe_direct(&opts, OFlags::empty(), &path).map_err(open_err)?
        } else {
            opts.write(true);
            let (mut file, direct) = match open_maybe_direct(&opts, OFlags::EXCL, &path) {
                Err(e) if is_errno(&e, Errno::BUSY) => {
                    return Err(FlashError::Refused(Refusal::Busy { target: path }));
                }
                other => other.map_err(open_err)?,
            };
            // The size again: a device can change between plan and write (a card swapped).
            let bytes = file.seek(SeekFrom::End(0)).map_err(open_err)?;
            if bytes < plan.image.bytes {
                return Err(FlashError::Refused(Refusal::TooSmall {
                    target: path,
                    target_bytes: bytes,
                    image_bytes: plan.image.bytes,
                }));
            }
            (file, direct)
        };
        Ok(Self {
            path,
            file,
            direct,
            tail: None,
        })
    }

    /// Writes `data` (from an aligned buffer) at `offset`.
    pub(super) fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        if !self.direct {
            return self.file.write_all_at(data, offset);
        }
        let aligned = data.len() / ALIGN * ALIGN;
        self.file.write_all_at(&data[..aligned], offset)?;
        if aligned < data.len() {
            if self.tail.is_none() {
                self.tail = Some(OpenOptions::new().write(true).open(&self.path)?);
            }
            if let Some(tail) = &self.tail {
                tail.write_all_at(&data[aligned..], offset + aligned as u64)?;
            }
        }
        Ok(())
    }

    /// `fsync` of both descriptors.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_all()?;
        if let Some(tail) = &self.tail {
            tail.sync_all()?;
        }
        Ok(())
    }
}
