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
    #[error("cannot open {}", target.display())]
    Open {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the size of {}", target.display())]
    Size {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} has no usable size for a GPT", target.display())]
    Geometry {
        target: PathBuf,
        #[source]
        source: GptError,
    },
    #[error("cannot read the partition table of {}", target.display())]
    ReadTable {
        target: PathBuf,
        #[source]
        source: GptError,
    },
    #[error(
        "{}: both copies of the GPT are damaged; the backup: {backup}; the primary",
        target.display()
    )]
    BothTablesDamaged {
        target: PathBuf,
        backup: String,
        #[source]
        primary: GptError,
    },
    #[error("{} has no GPT but holds {found}: refusing to partition it", target.display())]
    NotGpt { target: PathBuf, found: String },
    #[error("the plan does not fit {} as it is now: {reason}", target.display())]
    StalePlan { target: PathBuf, reason: String },
    #[error("cannot read partition {number} ({label}) of {} to look for a file system", target.display())]
    Probe {
        target: PathBuf,
        number: u32,
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a temporary file or directory in {}", dir.display())]
    Temp {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot format partition {number} ({label}) as f2fs")]
    FormatF2fs {
        number: u32,
        label: String,
        #[source]
        source: atomix_f2fs::F2fsError,
    },
    #[error("cannot format partition {number} ({label}) as vfat")]
    FormatVfat {
        number: u32,
        label: String,
        #[source]
        source: VfatError,
    },
    #[error(
        "sload.f2fs is not installed: on an image file it makes the MakeDirectories= of \
         partition {number} ({label}); install f2fs-tools"
    )]
    SloadMissing { number: u32, label: String },
    #[error("cannot run sload.f2fs for partition {number} ({label})")]
    SloadSpawn {
        number: u32,
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("sload.f2fs failed for partition {number} ({label}) ({status}): {output}")]
    Sload {
        number: u32,
        label: String,
        status: ExitStatus,
        output: String,
    },
    #[error("cannot copy the f2fs of partition {number} ({label}) into {}", target.display())]
    Copy {
        target: PathBuf,
        number: u32,
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot flush the file systems written to {}", target.display())]
    FlushFormats {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the planned table does not encode for {}", target.display())]
    EncodeTable {
        target: PathBuf,
        #[source]
        source: GptError,
    },
    #[error("cannot write the {what} of {}", target.display())]
    WriteTable {
        target: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the kernel name of {}", target.display())]
    DiskName {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot announce partition {number} of {} to the kernel ({op})", disk.display())]
    Blkpg {
        disk: PathBuf,
        number: u32,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} did not appear within {} ms", device.display(), waited.as_millis())]
    DeviceTimeout { device: PathBuf, waited: Duration },
    #[error("cannot read {}", path.display())]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the kernel sees partition {number} ({device}) at sector {kernel_start} with \
         {kernel_sectors} sectors, the table says sector {start} with {sectors} sectors"
    )]
    KernelMismatch {
        number: u32,
        device: String,
        start: u64,
        sectors: u64,
        kernel_start: u64,
        kernel_sectors: u64,
    },
    #[error("cannot mount {} on {} as f2fs", device.display(), dir.display())]
    Mount {
        device: PathBuf,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make {} in partition {number} ({label})", path.display())]
    MakeDir {
        number: u32,
        label: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unmount {}", dir.display())]
    Unmount {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}
