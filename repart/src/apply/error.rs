//! [`ApplyError`]: every way reading a disk or carrying out a plan fails, with the target,
//! partition or path it concerns. Must not: decide what a failure means for the caller.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::gpt::GptError;
use crate::vfat::VfatError;

/// Failures reading the disk or carrying out a plan.
///
/// An error before the table write leaves the table and every partition as they were (only
/// free space, or a partition without a file system, may have been written); one during it
/// leaves a disk the next run completes. `atomix repart` tells which by reading the disk again.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The target (or a partition device) cannot be opened.
    #[error("cannot open {}", target.display())]
    Open {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The size or sector size of the target cannot be read.
    #[error("cannot read the size of {}", target.display())]
    Size {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The target's size or sector size cannot hold a GPT.
    #[error("{} has no usable size for a GPT", target.display())]
    Geometry {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: GptError,
    },
    /// The partition table cannot be read (an I/O error, not a damaged table).
    #[error("cannot read the partition table of {}", target.display())]
    ReadTable {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: GptError,
    },
    /// Neither the primary nor the backup GPT is usable.
    #[error(
        "{}: both copies of the GPT are damaged; the backup: {backup}; the primary",
        target.display()
    )]
    BothTablesDamaged {
        /// The image file or block device.
        target: PathBuf,
        /// Why the backup GPT is unusable.
        backup: String,
        /// Why the primary GPT is unusable.
        #[source]
        primary: GptError,
    },
    /// The disk has no GPT but holds an MBR partition table or a whole-disk file system.
    #[error("{} has no GPT but holds {found}: refusing to partition it", target.display())]
    NotGpt {
        /// The image file or block device.
        target: PathBuf,
        /// What the disk holds instead.
        found: String,
    },
    /// The plan was made for the disk as it was, not as it is now.
    #[error("the plan does not fit {} as it is now: {reason}", target.display())]
    StalePlan {
        /// The image file or block device.
        target: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A partition cannot be read to look for a file-system signature.
    #[error("cannot read partition {number} ({label}) of {} to look for a file system", target.display())]
    Probe {
        /// The image file or block device.
        target: PathBuf,
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A temporary file or directory (for an f2fs or its `MakeDirectories=`) cannot be made.
    #[error("cannot create a temporary file or directory in {}", dir.display())]
    Temp {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Making the f2fs of a partition failed.
    #[error("cannot format partition {number} ({label}) as f2fs")]
    FormatF2fs {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The underlying error.
        #[source]
        source: atomix_f2fs::F2fsError,
    },
    /// Making the vfat of a partition failed.
    #[error("cannot format partition {number} ({label}) as vfat")]
    FormatVfat {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The underlying error.
        #[source]
        source: VfatError,
    },
    /// `sload.f2fs` is needed for `MakeDirectories=` on an image file but is not installed.
    #[error(
        "sload.f2fs is not installed: on an image file it makes the MakeDirectories= of \
         partition {number} ({label}); install f2fs-tools"
    )]
    SloadMissing {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
    },
    /// `sload.f2fs` is installed but cannot be run.
    #[error("cannot run sload.f2fs for partition {number} ({label})")]
    SloadSpawn {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `sload.f2fs` ran and failed (or its repairs were not confirmed by `fsck.f2fs`).
    #[error("sload.f2fs failed for partition {number} ({label}) ({status}): {output}")]
    Sload {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its output.
        output: String,
    },
    /// The f2fs made in a temporary file cannot be copied into the partition.
    #[error("cannot copy the f2fs of partition {number} ({label}) into {}", target.display())]
    Copy {
        /// The image file or block device.
        target: PathBuf,
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file systems written cannot be flushed to the disk.
    #[error("cannot flush the file systems written to {}", target.display())]
    FlushFormats {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The planned table cannot be encoded for the disk.
    #[error("the planned table does not encode for {}", target.display())]
    EncodeTable {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: GptError,
    },
    /// A piece of the partition table cannot be written or flushed.
    #[error("cannot write the {what} of {}", target.display())]
    WriteTable {
        /// The image file or block device.
        target: PathBuf,
        /// Which piece (backup entries, primary header, a flush).
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel name of the block device cannot be found in sysfs.
    #[error("cannot find the kernel name of {}", target.display())]
    DiskName {
        /// The image file or block device.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A `BLKPG` ioctl (add, resize, delete a partition in the kernel) failed.
    #[error("cannot announce partition {number} of {} to the kernel ({op})", disk.display())]
    Blkpg {
        /// The whole-disk device.
        disk: PathBuf,
        /// Partition number.
        number: u32,
        /// The operation (`add`, `resize`, `delete`).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The partition device did not appear in `/dev` in time.
    #[error("{} did not appear within {} ms", device.display(), waited.as_millis())]
    DeviceTimeout {
        /// The device.
        device: PathBuf,
        /// How long it waited.
        waited: Duration,
    },
    /// A sysfs attribute of a partition cannot be read or is not a number.
    #[error("cannot read {}", path.display())]
    Sysfs {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel sees a partition at another start or size than the table.
    #[error(
        "the kernel sees partition {number} ({device}) at sector {kernel_start} with \
         {kernel_sectors} sectors, the table says sector {start} with {sectors} sectors"
    )]
    KernelMismatch {
        /// Partition number.
        number: u32,
        /// The device.
        device: String,
        /// Start in the table, in 512-byte sectors.
        start: u64,
        /// Size in the table, in 512-byte sectors.
        sectors: u64,
        /// Start the kernel sees, in 512-byte sectors.
        kernel_start: u64,
        /// Size the kernel sees, in 512-byte sectors.
        kernel_sectors: u64,
    },
    /// The new f2fs cannot be mounted to make its `MakeDirectories=`.
    #[error("cannot mount {} on {} as f2fs", device.display(), dir.display())]
    Mount {
        /// The device.
        device: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A directory of `MakeDirectories=` cannot be made or synced.
    #[error("cannot make {} in partition {number} ({label})", path.display())]
    MakeDir {
        /// Partition number.
        number: u32,
        /// Partition label.
        label: String,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The f2fs mounted for `MakeDirectories=` cannot be unmounted.
    #[error("cannot unmount {}", dir.display())]
    Unmount {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
