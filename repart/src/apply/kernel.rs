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
use atomix_blockdev::{Sysfs, SysfsError, partition_name};

/// How long to wait for `/dev/<part>` after `BLKPG_ADD_PARTITION`.
const DEVICE_DEADLINE: Duration = Duration::from_secs(10);

/// A whole-disk block device as the kernel names it.
pub(super) struct KernelDisk<'a> {
    file: &'a File,
    target: &'a Path,
    /// Where the kernel's view is read (`/sys`, or a fixture tree in tests).
    sys: Sysfs,
    /// `loop0`, `mmcblk0`, `vda`.
    name: String,
}

impl<'a> KernelDisk<'a> {
    /// The block device `file` (opened from `target`), named through `sys`.
    pub(super) fn of(file: &'a File, target: &'a Path, sys: Sysfs) -> Result<Self, ApplyError> {
        let failed = |source| ApplyError::DiskName {
            target: target.to_owned(),
            source,
        };
        let rdev = file.metadata().map_err(failed)?.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let name = sys.block_name(major, minor).map_err(failed)?;
        Ok(KernelDisk {
            file,
            target,
            sys,
            name,
        })
    }

    /// The kernel's name of partition `number`: `loop0p3`, `mmcblk0p3`, `vda3`.
    pub(super) fn part_name(&self, number: u32) -> String {
        partition_name(&self.name, number)
    }

    /// (start, size) in 512-byte sectors as sysfs shows partition `number`, if the kernel knows
    /// it.
    pub(super) fn kernel_view(&self, number: u32) -> Result<Option<(u64, u64)>, ApplyError> {
        let extent = self
            .sys
            .extent(&self.part_name(number))
            .map_err(|e| match e {
                SysfsError::Read { path, source } => ApplyError::Sysfs { path, source },
                SysfsError::NotANumber { path, text } => ApplyError::Sysfs {
                    path,
                    source: io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")),
                },
            })?;
        Ok(extent.map(|e| (e.start, e.sectors)))
    }

    /// Checks that sysfs shows partition `number` at `want` (start, size in 512-byte sectors).
    fn check(&self, number: u32, want: (u64, u64)) -> Result<(), ApplyError> {
        match self.kernel_view(number)? {
            Some(seen) if seen == want => Ok(()),
            Some(seen) => Err(self.mismatch(number, want, seen)),
            None => Err(self.mismatch(number, want, (0, 0))),
        }
    }

    fn mismatch(&self, number: u32, want: (u64, u64), seen: (u64, u64)) -> ApplyError {
        ApplyError::KernelMismatch {
            number,
            device: self.part_name(number),
            start: want.0,
            sectors: want.1,
            kernel_start: seen.0,
            kernel_sectors: seen.1,
        }
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
            Some(seen) if seen.0 != want.0 => return Err(self.mismatch(number, want, seen)),
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
        self.check(number, want)?;
        Ok(added)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture sysfs: `class/block/<name>/{start,size}` per partition the kernel knows.
    struct Tree {
        dir: tempfile::TempDir,
        disk: File,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("sys/class/block")).unwrap();
            let disk = File::create(dir.path().join("disk.img")).unwrap();
            Tree { dir, disk }
        }

        fn part(&self, name: &str, start: u64, sectors: u64) {
            let d = self.dir.path().join("sys/class/block").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("start"), format!("{start}\n")).unwrap();
            fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        }

        fn disk(&self, name: &str) -> KernelDisk<'_> {
            KernelDisk {
                file: &self.disk,
                target: Path::new("/dev/fixture"),
                sys: Sysfs::at(&self.dir.path().join("sys")),
                name: name.to_owned(),
            }
        }
    }

    #[test]
    fn partition_names_follow_the_kernel() {
        let t = Tree::new();
        assert_eq!(t.disk("vda").part_name(2), "vda2");
        assert_eq!(t.disk("mmcblk0").part_name(2), "mmcblk0p2");
        assert_eq!(t.disk("nvme0n1").part_name(2), "nvme0n1p2");
        assert_eq!(t.disk("loop0").part_name(2), "loop0p2");
    }

    #[test]
    fn the_disk_is_named_through_sysfs() {
        let t = Tree::new();
        let dev = t.dir.path().join("sys/dev/block");
        fs::create_dir_all(&dev).unwrap();
        // A regular file has device number 0:0.
        let target = t.dir.path().join("disk.img");
        assert!(matches!(
            KernelDisk::of(&t.disk, &target, Sysfs::at(&t.dir.path().join("sys"))),
            Err(ApplyError::DiskName { .. })
        ));
        std::os::unix::fs::symlink("../../devices/virtual/block/mmcblk1", dev.join("0:0")).unwrap();
        let k = KernelDisk::of(&t.disk, &target, Sysfs::at(&t.dir.path().join("sys"))).unwrap();
        assert_eq!(k.part_name(5), "mmcblk1p5");
    }

    #[test]
    fn a_partition_the_kernel_sees_as_planned_needs_no_blkpg() {
        let t = Tree::new();
        t.part("mmcblk0p2", 32768, 2097152);
        let k = t.disk("mmcblk0");
        // BLKPG on a regular file fails: Ok(false) shows none was issued.
        let added = k
            .ensure(2, 32768 * 512, 2097152 * 512, &mut |_| {})
            .unwrap();
        assert!(!added);
        assert_eq!(k.kernel_view(2).unwrap(), Some((32768, 2097152)));
        k.check(2, (32768, 2097152)).unwrap();
    }

    #[test]
    fn a_wrong_start_or_size_is_a_mismatch() {
        let t = Tree::new();
        t.part("nvme0n1p2", 32768, 2097152);
        let k = t.disk("nvme0n1");
        let err = k
            .ensure(2, 65536 * 512, 2097152 * 512, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::KernelMismatch {
                    number: 2,
                    start: 65536,
                    kernel_start: 32768,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("nvme0n1p2"), "{err}");
        let err = k.check(2, (32768, 4194304)).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::KernelMismatch {
                    sectors: 4194304,
                    kernel_sectors: 2097152,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_partition_directory_is_unknown_to_the_kernel() {
        let t = Tree::new();
        // `vda2` naming: a directory called `vdap2` is not partition 2 of `vda`.
        t.part("vdap2", 2048, 4096);
        let k = t.disk("vda");
        assert_eq!(k.kernel_view(2).unwrap(), None);
        let err = k.check(2, (2048, 4096)).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::KernelMismatch {
                    kernel_start: 0,
                    kernel_sectors: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unreadable_sysfs_names_the_file() {
        let t = Tree::new();
        t.part("loop0p1", 2048, 4096);
        fs::write(t.dir.path().join("sys/class/block/loop0p1/size"), "junk\n").unwrap();
        let err = t.disk("loop0").kernel_view(1).unwrap_err();
        assert!(matches!(err, ApplyError::Sysfs { .. }), "{err}");
        assert!(err.to_string().ends_with("loop0p1/size"), "{err}");
    }
}
