//! The kernel's view of a whole-disk block device: announcing, resizing and removing partitions
//! with BLKPG, waiting for `/dev/<part>`, and checking sysfs `start`/`size` against the table.
//! sysfs is read through an injected [`atomix_blockdev::Sysfs`]. Must not: write the disk's
//! contents.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{ApplyError, KernelPartition};
use crate::blkdev::{self, BlkpgOp};
use crate::gpt::Table;

/// How long to wait for `/dev/<part>` after `BLKPG_ADD_PARTITION`.
const DEVICE_DEADLINE: Duration = Duration::from_secs(10);

/// A whole-disk block device as the kernel names it.
pub(super) struct KernelDisk<'a> {
    file: &'a File,
    target: &'a Path,
    /// `loop0`, `mmcblk0`, `vda`.
    name: String,
}

impl<'a> KernelDisk<'a> {
    pub(super) fn of(file: &'a File, target: &'a Path) -> Result<Self, ApplyError> {
        let failed = |source| ApplyError::DiskName {
            target: target.to_owned(),
            source,
        };
        let rdev = file.metadata().map_err(failed)?.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let link = fs::read_link(format!("/sys/dev/block/{major}:{minor}")).map_err(failed)?;
        let name = link
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| failed(io::Error::other("sysfs link without a name")))?;
        Ok(KernelDisk { file, target, name })
    }

    /// The kernel's name of partition `number`: `loop0p3`, `mmcblk0p3`, `vda3`.
    pub(super) fn part_name(&self, number: u32) -> String {
        if self.name.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{}p{number}", self.name)
        } else {
            format!("{}{number}", self.name)
        }
    }

    /// (start, size) in 512-byte sectors as sysfs shows partition `number`, if the kernel knows
    /// it.
    pub(super) fn kernel_view(&self, number: u32) -> Result<Option<(u64, u64)>, ApplyError> {
        let dir = PathBuf::from(format!("/sys/class/block/{}", self.part_name(number)));
        if !dir.exists() {
            return Ok(None);
        }
        let read = |file: &str| -> Result<u64, ApplyError> {
            let path = dir.join(file);
            let text = fs::read_to_string(&path).map_err(|source| ApplyError::Sysfs {
                path: path.clone(),
                source,
            })?;
            text.trim().parse().map_err(|_| ApplyError::Sysfs {
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")),
            })
        };
        Ok(Some((read("start")?, read("size")?)))
    }

    /// Makes the kernel see partition `number` at `start_bytes` with `size_bytes`: adds it or
    /// resizes it, then checks sysfs. Returns whether it had to be added.
    pub(super) fn ensure(
        &self,
        number: u32,
        start_bytes: u64,
        size_bytes: u64,
        progress: &mut dyn FnMut(&str),
    ) -> Result<bool, ApplyError> {
        let device = self.part_name(number);
        let want = (start_bytes / 512, size_bytes / 512);
        let mismatch = |(kernel_start, kernel_sectors): (u64, u64)| ApplyError::KernelMismatch {
            number,
            device: device.clone(),
            start: want.0,
            sectors: want.1,
            kernel_start,
            kernel_sectors,
        };
        let blkpg = |op: BlkpgOp| {
            blkdev::blkpg(self.file, op, number, start_bytes, size_bytes).map_err(|source| {
                ApplyError::Blkpg {
                    disk: self.target.to_owned(),
                    number,
                    op: op.name(),
                    source,
                }
            })
        };
        let added = match self.kernel_view(number)? {
            Some(seen) if seen == want => return Ok(false),
            Some(seen) if seen.0 != want.0 => return Err(mismatch(seen)),
            Some(_) => {
                progress(&format!("resizing {device} in the kernel (BLKPG)"));
                blkpg(BlkpgOp::Resize)?;
                false
            }
            None => {
                progress(&format!("adding {device} to the kernel (BLKPG)"));
                blkpg(BlkpgOp::Add)?;
                true
            }
        };
        match self.kernel_view(number)? {
            Some(seen) if seen == want => Ok(added),
            Some(seen) => Err(mismatch(seen)),
            None => Err(mismatch((0, 0))),
        }
    }

    /// Waits for `/dev/<part>` (devtmpfs creates it) and returns its path.
    pub(super) fn wait_device(&self, number: u32) -> Result<PathBuf, ApplyError> {
        let device = PathBuf::from(format!("/dev/{}", self.part_name(number)));
        let started = Instant::now();
        loop {
            if fs::metadata(&device).is_ok_and(|m| m.file_type().is_block_device()) {
                return Ok(device);
            }
            if started.elapsed() > DEVICE_DEADLINE {
                return Err(ApplyError::DeviceTimeout {
                    device,
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(super) fn remove(&self, number: u32) {
        if let Err(e) = blkdev::blkpg(self.file, BlkpgOp::Delete, number, 0, 0) {
            log::warn!(
                "cannot remove partition {number} of {} from the kernel again: {e}",
                self.target.display()
            );
        }
    }

    /// Step 3: every partition of `table` known to the kernel with its start and size.
    pub(super) fn sync(
        &self,
        table: &Table,
        sector_size: u64,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<KernelPartition>, ApplyError> {
        let mut seen = Vec::new();
        for p in &table.partitions {
            let start = p.first_lba * sector_size;
            let size = p.sectors() * sector_size;
            self.ensure(p.number, start, size, progress)?;
            seen.push(KernelPartition {
                number: p.number,
                device: self.part_name(p.number),
                start_bytes: start,
                size_bytes: size,
            });
        }
        Ok(seen)
    }
}
