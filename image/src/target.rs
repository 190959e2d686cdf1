//! An image file or block device opened for [`crate::bootenv`], [`crate::slot`] and
//! [`crate::inspect`]: the file, its size and its GPT as `atomix_repart::apply::read_current`
//! reads them (block-device sizes through repart's ioctls), and partition byte ranges.
//!
//! Plain positional reads and writes only: no ioctl, no mount, no BLKPG here.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use atomix_repart::apply::{self, ApplyError, Current};
use atomix_repart::gpt::{Partition, Table};
use atomix_repart::io::read_exact_at;

/// Failures opening a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot open {} for {}", target.display(), if *write { "writing" } else { "reading" })]
    Open {
        target: PathBuf,
        write: bool,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the size and partition table of {}", target.display())]
    Table {
        target: PathBuf,
        #[source]
        source: Box<ApplyError>,
    },
    #[error("cannot read {len} bytes at {offset:#x} of {}", target.display())]
    Read {
        target: PathBuf,
        offset: u64,
        len: usize,
        #[source]
        source: io::Error,
    },
}

/// An opened image file or block device.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) disk: Current,
}

impl Target {
    /// Opens `path` (read-write when `write`) and reads its size and GPT.
    pub(crate) fn open(path: &Path, write: bool) -> Result<Self, TargetError> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|source| TargetError::Open {
                target: path.to_owned(),
                write,
                source,
            })?;
        let disk = apply::read_current(path).map_err(|source| TargetError::Table {
            target: path.to_owned(),
            source: Box::new(source),
        })?;
        Ok(Target {
            path: path.to_owned(),
            file,
            disk,
        })
    }

    /// The GPT, if the target has one.
    pub(crate) fn table(&self) -> Option<&Table> {
        self.disk.table.as_ref()
    }

    /// Partition `number`, if the table has it.
    pub(crate) fn partition(&self, number: u32) -> Option<&Partition> {
        self.table()?.partition(number)
    }

    /// The byte range (start, size) of a partition.
    pub(crate) fn range(&self, p: &Partition) -> (u64, u64) {
        (
            p.first_lba * self.disk.sector_size,
            p.sectors() * self.disk.sector_size,
        )
    }

    /// The first byte of the first partition (the end of the raw region), if there is one.
    pub(crate) fn first_partition_start(&self) -> Option<u64> {
        let t = self.table()?;
        t.partitions
            .iter()
            .map(|p| p.first_lba * self.disk.sector_size)
            .min()
    }

    /// Reads `len` bytes at `offset`; bytes past the end of the target read as zeros.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, TargetError> {
        let mut buf = vec![0u8; len];
        let available = self.disk.disk_bytes.saturating_sub(offset);
        let n = usize::try_from(available).map_or(len, |a| a.min(len));
        read_exact_at(&self.file, &mut buf[..n], offset).map_err(|source| TargetError::Read {
            target: self.path.clone(),
            offset,
            len,
            source,
        })?;
        Ok(buf)
    }
}
