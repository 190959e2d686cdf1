//! Carrying out a [`Plan`] on an image file or a block device, crash-safely.
//!
//! The order is systemd-repart's rule — a partition either does not exist or exists fully
//! populated:
//!
//! 1. **File systems first, into free space.** A new partition's file system (and its
//!    `MakeDirectories=`) is written into the space the partition will occupy *before* the table
//!    refers to it. Image files: f2fs is made in a temporary sparse file of the partition's size
//!    (`atomix_f2fs::format`, then `sload.f2fs` for the directories, since the host kernel has no
//!    f2fs) and its data extents are copied in, the two superblocks last; vfat is written by
//!    `fatfs` straight into the range. Block devices: the partition is announced to the kernel
//!    with `BLKPG_ADD_PARTITION` (kernel state only, nothing on disk), formatted through
//!    `/dev/<part>`, mounted to make the directories, unmounted.
//! 2. **The table last**: protective MBR, backup entries and header at the disk's real end,
//!    a flush, then the primary entries and header, a flush. A cut at any write leaves a disk
//!    whose primary or backup is a valid old or new table; the next run reads it (from the backup
//!    when the primary is torn) and completes.
//! 3. **The kernel** (block devices): `BLKPG_ADD_PARTITION` for partitions it does not know,
//!    `BLKPG_RESIZE_PARTITION` for grown ones — this works while another partition of the disk is
//!    mounted; `BLKRRPART` is never used — then sysfs `start`/`size` are read back and checked.
//!
//! Nothing below the first partition (or the first usable LBA of a table without partitions) is
//! ever written, apart from the GPT's own sectors: every write goes through a guard that
//! refuses that range. No discard, ever. A partition that holds a file system is never
//! formatted: an existing partition whose definition has `Format=` is formatted only when
//! [`probe_signature`] finds no known signature in it (the "reprovisioned" case).
//!
//! Running it again on the result finds nothing pending and writes nothing.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::blkdev::{self, BlkpgOp};
use crate::definitions::{Definition, Format};
use crate::gpt::{self, Geometry, GptError, Guid, Structure, Table};
use crate::io::{DiskIo, Guarded};
use crate::plan::{Action, ActionKind, Plan, PlanError, PlanOptions, derive_uuid, plan};
use crate::vfat::{self, VfatError, VfatOptions};

/// Bytes of a partition read to look for a file-system signature (btrfs's is at 64 KiB + 64).
const PROBE_BYTES: usize = 128 * 1024;
/// Copy chunk for f2fs metadata.
const COPY_CHUNK: u64 = 1 << 20;
/// The f2fs superblocks live at 1024 in blocks 0 and 1: copied last.
const F2FS_SUPERBLOCKS: u64 = 8192;
/// How long to wait for `/dev/<part>` after `BLKPG_ADD_PARTITION`.
const DEVICE_DEADLINE: Duration = Duration::from_secs(10);

/// The disk as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Size in bytes (file length, or `BLKGETSIZE64`).
    pub disk_bytes: u64,
    /// Logical sector size (512 for image files, `BLKSSZGET` for block devices).
    pub sector_size: u64,
    /// The partition table; `None` when the disk has no GPT at all.
    pub table: Option<Table>,
    /// The primary GPT is damaged and the table was read from the backup; apply rewrites both.
    pub repaired_from_backup: bool,
    /// The target is a block device (BLKPG, partition devices) rather than an image file.
    pub is_block_device: bool,
}

/// Why a file system is (re)made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatReason {
    /// A new partition.
    Created,
    /// An existing partition whose definition has `Format=` but which holds no file system
    /// (wiped or discarded): a reprovisioned disk.
    Empty,
}

impl fmt::Display for FormatReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatReason::Created => "new partition",
            FormatReason::Empty => "existing partition without a file system",
        })
    }
}

/// A file system apply makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingFormat {
    /// Partition number.
    pub number: u32,
    /// Partition label.
    pub label: String,
    /// The file system.
    pub format: Format,
    /// Why.
    pub reason: FormatReason,
}

/// What [`apply`] would do, found by reading only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// The partition table is written (the plan changes it, or a copy is damaged or stale).
    pub table: bool,
    /// File systems made, in partition order.
    pub format: Vec<PendingFormat>,
}

impl Pending {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        !self.table && self.format.is_empty()
    }
}

/// How [`apply`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// SOURCE_DATE_EPOCH for host images: file-system UUIDs fixed to
    /// `derive_uuid(partition uuid, "file-system-uuid")` and every timestamp set to this time,
    /// so the same plan gives the same bytes. `None`: the f2fs UUID is random, times are now.
    pub reproducible: Option<u64>,
    /// Block devices: where a new f2fs is mounted to make its `MakeDirectories=`.
    pub mount_dir: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            reproducible: None,
            mount_dir: PathBuf::from("/run/atomix/repart"),
        }
    }
}

/// A partition as the kernel sees it after apply (sysfs `start` and `size`, in bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelPartition {
    /// Partition number.
    pub number: u32,
    /// Kernel name (`loop0p3`, `mmcblk0p5`).
    pub device: String,
    /// First byte.
    pub start_bytes: u64,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// How the `MakeDirectories=` of a new file system were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MakeDirsOutcome {
    /// Mounted, made, fsynced, unmounted.
    Done,
    /// Made by a host tool into the unmounted file system (the tool's name, `sload.f2fs`).
    Host(String),
    /// Not made, and why.
    Skipped(String),
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ApplyReport {
    /// File systems made.
    pub formatted: Vec<PendingFormat>,
    /// The partition table was written.
    pub table_written: bool,
    /// Block devices: the kernel's view of every partition of the table, checked against it.
    pub kernel: Vec<KernelPartition>,
    /// Per formatted partition with `MakeDirectories=`: (number, directories, outcome).
    pub make_directories: Vec<(u32, Vec<String>, MakeDirsOutcome)>,
}

impl ApplyReport {
    /// Nothing was written.
    pub fn nothing_done(&self) -> bool {
        !self.table_written && self.formatted.is_empty()
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing_done() {
            writeln!(f, "nothing to do: no byte written")?;
        }
        for p in &self.formatted {
            writeln!(
                f,
                "formatted partition {} ({}) as {} ({})",
                p.number, p.label, p.format, p.reason
            )?;
        }
        for (number, dirs, outcome) in &self.make_directories {
            let how = match outcome {
                MakeDirsOutcome::Done => "made (mounted)".to_owned(),
                MakeDirsOutcome::Host(tool) => format!("made with {tool}"),
                MakeDirsOutcome::Skipped(why) => format!("skipped: {why}"),
            };
            writeln!(
                f,
                "partition {number}: directories {} {how}",
                dirs.join(" ")
            )?;
        }
        if self.table_written {
            writeln!(
                f,
                "partition table written (backup at the disk's end, then primary)"
            )?;
        }
        for k in &self.kernel {
            writeln!(
                f,
                "kernel: partition {} = {} start {} size {} bytes",
                k.number, k.device, k.start_bytes, k.size_bytes
            )?;
        }
        Ok(())
    }
}

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

/// Reads the disk's size and partition table: the primary GPT, or the backup in the last sector
/// when the primary is damaged (then [`Current::repaired_from_backup`] is set and apply rewrites
/// both). Both damaged is an error naming the disk; no GPT at all gives `table: None`, unless the
/// disk holds an MBR partition table or a whole-disk file system instead (an error: such a disk
/// is never given a new table).
pub fn read_current(target: &Path) -> Result<Current, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    read_current_from(&file, target)
}

fn read_current_from(file: &File, target: &Path) -> Result<Current, ApplyError> {
    let size_error = |source| ApplyError::Size {
        target: target.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(size_error)?;
    let is_block_device = meta.file_type().is_block_device();
    let (disk_bytes, sector_size) = if is_block_device {
        (
            blkdev::size_bytes(file).map_err(size_error)?,
            blkdev::sector_size(file).map_err(size_error)?,
        )
    } else {
        (meta.len(), 512)
    };
    let geometry =
        Geometry::new(disk_bytes, sector_size).map_err(|source| ApplyError::Geometry {
            target: target.to_owned(),
            source,
        })?;
    let mut reader = file;
    let (table, repaired_from_backup) = match gpt::read_with(&mut reader, &geometry) {
        Ok(t) => (Some(t), false),
        Err(primary @ GptError::Read { .. }) => {
            return Err(ApplyError::ReadTable {
                target: target.to_owned(),
                source: primary,
            });
        }
        Err(primary) => match gpt::read_backup(&mut reader, &geometry) {
            Ok(t) => {
                log::warn!(
                    "{}: primary GPT unusable ({primary}); using the backup GPT, both copies \
                     will be rewritten",
                    target.display()
                );
                (Some(t), true)
            }
            Err(GptError::NoGpt { .. }) if matches!(primary, GptError::NoGpt { .. }) => {
                let head = read_head(file, 0, disk_bytes).map_err(|source| ApplyError::Size {
                    target: target.to_owned(),
                    source,
                })?;
                if let Some(found) = not_gpt_content(&head) {
                    return Err(ApplyError::NotGpt {
                        target: target.to_owned(),
                        found,
                    });
                }
                (None, false)
            }
            Err(backup) => {
                return Err(ApplyError::BothTablesDamaged {
                    target: target.to_owned(),
                    backup: backup.to_string(),
                    primary,
                });
            }
        },
    };
    Ok(Current {
        disk_bytes,
        sector_size,
        table,
        repaired_from_backup,
        is_block_device,
    })
}

/// Plans `definitions` against the disk as [`read_current`] found it, with the defaults of
/// `atomix repart` and `/init`: the seed is `seed`, else the current table's disk GUID (so a
/// re-run after a crash plans the same partitions), else a fresh one for a blank disk; the first
/// usable LBA of a new table is `first_usable_bytes` (the board's raw-region bound).
pub fn plan_current(
    definitions: &[Definition],
    current: &Current,
    seed: Option<Guid>,
    first_usable_bytes: u64,
) -> Result<Plan, PlanError> {
    let seed = seed
        .or_else(|| current.table.as_ref().map(|t| t.disk_guid))
        .filter(|g| !g.is_nil())
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mut bytes = nanos.to_le_bytes().to_vec();
            bytes.extend_from_slice(&std::process::id().to_le_bytes());
            Guid::from_seed(&bytes)
        });
    let options = PlanOptions {
        sector_size: current.sector_size,
        first_usable_lba: first_usable_bytes.div_ceil(current.sector_size),
    };
    plan(
        definitions,
        current.table.as_ref(),
        current.disk_bytes,
        seed,
        &options,
    )
}

/// What [`apply`] would do on `target` now. Reads only.
pub fn pending(plan: &Plan, target: &Path) -> Result<Pending, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    let current = read_current_from(&file, target)?;
    pending_on(plan, &file, &current, target)
}

fn pending_on(
    plan: &Plan,
    file: &File,
    current: &Current,
    target: &Path,
) -> Result<Pending, ApplyError> {
    check_plan(plan, current, target)?;
    let table = !plan.nothing_to_do
        || current.repaired_from_backup
        || backup_is_stale(file, current, target)?;
    let probe_file = if current.is_block_device {
        // The whole-disk page cache may hold pages read before a partition device wrote them:
        // probe with O_DIRECT.
        Some(
            OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
                .open(target)
                .map_err(|source| ApplyError::Open {
                    target: target.to_owned(),
                    source,
                })?,
        )
    } else {
        None
    };
    let mut format = Vec::new();
    for a in &plan.actions {
        let Some(fs) = a.format else { continue };
        let reason = match a.kind {
            ActionKind::Create => FormatReason::Created,
            ActionKind::Keep | ActionKind::Grow => {
                let start = a.start_lba * plan.sector_size;
                let len = a.sectors * plan.sector_size;
                let head = read_head(probe_file.as_ref().unwrap_or(file), start, len).map_err(
                    |source| ApplyError::Probe {
                        target: target.to_owned(),
                        number: a.number,
                        label: a.label.clone(),
                        source,
                    },
                )?;
                match probe_signature(&head) {
                    Some(found) => {
                        log::debug!(
                            "partition {} ({}) holds {found}: not formatted",
                            a.number,
                            a.label
                        );
                        continue;
                    }
                    None => FormatReason::Empty,
                }
            }
            ActionKind::Foreign => continue,
        };
        format.push(PendingFormat {
            number: a.number,
            label: a.label.clone(),
            format: fs,
            reason,
        });
    }
    Ok(Pending { table, format })
}

/// The first [`PROBE_BYTES`] of a partition (less if it is smaller), read with an aligned buffer
/// so that it works on an O_DIRECT descriptor.
fn read_head(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    const ALIGN: usize = 4096;
    let want = usize::try_from(len).map_or(PROBE_BYTES, |l| l.min(PROBE_BYTES));
    let padded = want.div_ceil(ALIGN) * ALIGN;
    let mut raw = vec![0u8; padded + ALIGN];
    let skip = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[skip..skip + padded];
    let mut done = 0;
    while done < padded {
        match std::os::unix::fs::FileExt::read_at(file, &mut buf[done..], start + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf[..want.min(done)].to_vec())
}

/// The name of the file system (or other content) whose signature starts `head` (the first
/// bytes of a partition), if any: f2fs (either superblock), vfat, ext2/3/4, squashfs, xfs,
/// btrfs, erofs, LUKS, swap. A partition without one holds no file system.
pub fn probe_signature(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    const F2FS: [u8; 4] = 0xF2F5_2010u32.to_le_bytes();
    if at(1024, &F2FS) || at(4096 + 1024, &F2FS) {
        return Some("f2fs");
    }
    if at(510, &[0x55, 0xAA]) && (at(54, b"FAT") || at(82, b"FAT")) {
        return Some("vfat");
    }
    if at(1080, &[0x53, 0xEF]) {
        return Some("ext4");
    }
    if at(0, b"hsqs") {
        return Some("squashfs");
    }
    if at(0, b"XFSB") {
        return Some("xfs");
    }
    if at(65600, b"_BHRfS_M") {
        return Some("btrfs");
    }
    if at(1024, &0xE0F5_E1E2u32.to_le_bytes()) {
        return Some("erofs");
    }
    if at(0, b"LUKS\xba\xbe") {
        return Some("crypto_LUKS");
    }
    if at(4086, b"SWAPSPACE2") || at(65526, b"SWAPSPACE2") {
        return Some("swap");
    }
    None
}

/// What a disk without a GPT holds instead, if anything: an MBR partition table or a file
/// system on the whole disk. Such a disk is never given a new table.
fn not_gpt_content(head: &[u8]) -> Option<String> {
    if let Some(fs) = probe_signature(head) {
        return Some(format!("a {fs} file system on the whole disk"));
    }
    if head.get(510..512) == Some(&[0x55, 0xAA][..]) {
        let used = (0..4).any(|i| head.get(446 + 16 * i + 4).is_some_and(|&t| t != 0));
        if used {
            return Some("an MBR partition table".to_owned());
        }
    }
    None
}

/// Whether the backup GPT in the last sector is missing or differs from the primary (only
/// asked when the primary is good and the plan changes nothing).
fn backup_is_stale(file: &File, current: &Current, target: &Path) -> Result<bool, ApplyError> {
    let Some(primary) = &current.table else {
        return Ok(false);
    };
    if current.repaired_from_backup {
        return Ok(true);
    }
    let geometry = Geometry::new(current.disk_bytes, current.sector_size).map_err(|source| {
        ApplyError::Geometry {
            target: target.to_owned(),
            source,
        }
    })?;
    let mut reader = file;
    Ok(match gpt::read_backup(&mut reader, &geometry) {
        Ok(backup) => {
            let mut a = backup.partitions.clone();
            let mut b = primary.partitions.clone();
            a.sort_by_key(|p| p.number);
            b.sort_by_key(|p| p.number);
            a != b
                || backup.disk_guid != primary.disk_guid
                || backup.first_usable_lba != primary.first_usable_lba
                || backup.last_usable_lba != primary.last_usable_lba
        }
        Err(GptError::Read { source, .. }) => {
            return Err(ApplyError::ReadTable {
                target: target.to_owned(),
                source: GptError::Read {
                    what: Structure::BackupHeader,
                    offset: geometry.backup_header_lba() * geometry.sector_size(),
                    source,
                },
            });
        }
        Err(e) => {
            log::warn!(
                "{}: backup GPT unusable ({e}); it will be rewritten",
                target.display()
            );
            true
        }
    })
}

/// Checks that `plan` was made for the disk as it is: same size and sector size, and the same
/// existing partitions where the plan keeps, grows or leaves them.
fn check_plan(plan: &Plan, current: &Current, target: &Path) -> Result<(), ApplyError> {
    let stale = |reason: String| {
        Err(ApplyError::StalePlan {
            target: target.to_owned(),
            reason,
        })
    };
    if plan.disk_bytes != current.disk_bytes || plan.sector_size != current.sector_size {
        return stale(format!(
            "planned for {} bytes in {}-byte sectors, the disk has {} bytes in {}-byte sectors",
            plan.disk_bytes, plan.sector_size, current.disk_bytes, current.sector_size
        ));
    }
    let Some(table) = &current.table else {
        if !plan.new_table {
            return stale("planned for an existing table, the disk has none".into());
        }
        return Ok(());
    };
    if plan.new_table {
        return stale("planned for a blank disk, the disk has a partition table".into());
    }
    for a in &plan.actions {
        let existing = table.partition(a.number);
        match (a.kind, existing) {
            (ActionKind::Create, None) => {}
            (ActionKind::Create, Some(p)) => {
                return stale(format!(
                    "partition {} is to be created but exists ({:?})",
                    a.number, p.name
                ));
            }
            (_, Some(p)) if p.first_lba == a.start_lba && p.type_guid == a.type_guid => {}
            (_, _) => {
                return stale(format!(
                    "partition {} ({:?}) is not on the disk where the plan expects it",
                    a.number, a.label
                ));
            }
        }
    }
    for p in &table.partitions {
        if !plan.actions.iter().any(|a| a.number == p.number) {
            return stale(format!(
                "partition {} ({:?}) is on the disk but not in the plan",
                p.number, p.name
            ));
        }
    }
    Ok(())
}

/// Carries `plan` out on `target` (an image file or a block device) in the crash-safe order of
/// the module documentation, reporting steps through `progress`.
pub fn apply(
    plan: &Plan,
    target: &Path,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, ApplyError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(target)
        .map_err(|source| ApplyError::Open {
            target: target.to_owned(),
            source,
        })?;
    apply_with(plan, target, &file, opts, progress)
}

/// [`apply`] with every write of the table, the vfat and the f2fs copy going through `io`
/// (`target` opened for writing; tests pass a layer that fails after the Nth write). Formats on
/// block devices go through the partition devices instead.
pub fn apply_with(
    plan: &Plan,
    target: &Path,
    io: &dyn DiskIo,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, ApplyError> {
    let file = File::open(target).map_err(|source| ApplyError::Open {
        target: target.to_owned(),
        source,
    })?;
    let current = read_current_from(&file, target)?;
    let pending = pending_on(plan, &file, &current, target)?;
    let geometry = plan.geometry().map_err(|source| ApplyError::Geometry {
        target: target.to_owned(),
        source,
    })?;
    let mut report = ApplyReport::default();
    let kernel = if current.is_block_device {
        Some(KernelDisk::of(&file, target)?)
    } else {
        None
    };
    if pending.is_empty() {
        log::info!("{}: nothing to do", target.display());
        progress("nothing to do");
    }

    // Nothing below the lowest partition (or the first usable LBA) is written, except the GPT.
    let gpt_end = geometry.min_first_usable_lba() * geometry.sector_size();
    let lowest = plan
        .table_after
        .partitions
        .iter()
        .map(|p| p.first_lba)
        .chain([plan.table_after.first_usable_lba])
        .min()
        .unwrap_or(plan.table_after.first_usable_lba);
    let guard = Guarded {
        inner: io,
        protected_start: gpt_end,
        protected_end: (lowest * geometry.sector_size()).max(gpt_end),
    };

    // (1) File systems, before the table refers to them.
    for f in &pending.format {
        let Some(action) = plan.actions.iter().find(|a| a.number == f.number) else {
            continue;
        };
        progress(&format!(
            "formatting partition {} ({}) as {} ({})",
            f.number, f.label, f.format, f.reason
        ));
        let dirs = match &kernel {
            Some(k) => format_on_device(k, plan, action, f, opts, progress)?,
            None => format_on_image(&guard, target, plan, action, f, opts, progress)?,
        };
        if let Some(outcome) = dirs {
            report
                .make_directories
                .push((f.number, action.make_directories.clone(), outcome));
        }
        report.formatted.push(f.clone());
    }
    if !pending.format.is_empty() {
        io.flush().map_err(|source| ApplyError::FlushFormats {
            target: target.to_owned(),
            source,
        })?;
    }

    // (2) The table: backup at the disk's end first, then the primary.
    if pending.table {
        progress("writing the partition table (backup at the disk's end, then primary)");
        write_table(&guard, target, &geometry, &plan.table_after)?;
        report.table_written = true;
        log::info!(
            "{}: partition table written ({} partitions)",
            target.display(),
            plan.table_after.partitions.len()
        );
    }

    // (3) The kernel's view.
    if let Some(k) = &kernel {
        report.kernel = k.sync(&plan.table_after, plan.sector_size, progress)?;
    }
    Ok(report)
}

fn write_table(
    io: &dyn DiskIo,
    target: &Path,
    geometry: &Geometry,
    table: &Table,
) -> Result<(), ApplyError> {
    let pieces = gpt::encode(geometry, table).map_err(|source| ApplyError::EncodeTable {
        target: target.to_owned(),
        source,
    })?;
    let flush = |what: &str| {
        io.flush().map_err(|source| ApplyError::WriteTable {
            target: target.to_owned(),
            what: what.to_owned(),
            source,
        })
    };
    for piece in &pieces {
        if piece.what == Structure::PrimaryEntries {
            // The new backup is durable before the primary changes.
            flush("backup GPT (flush)")?;
        }
        io.write_at(&piece.data, piece.offset)
            .map_err(|source| ApplyError::WriteTable {
                target: target.to_owned(),
                what: piece.what.to_string(),
                source,
            })?;
    }
    flush("primary GPT (flush)")
}

fn fs_uuid(action: &Action) -> Guid {
    derive_uuid(action.uuid, "file-system-uuid")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn f2fs_options(action: &Action, opts: &ApplyOptions) -> atomix_f2fs::FormatOptions {
    let mut o = atomix_f2fs::FormatOptions::new(action.label.clone());
    o.discard = false;
    o.reproducible = opts.reproducible.map(|time| atomix_f2fs::Reproducible {
        uuid: atomix_f2fs::Uuid::from_bytes(fs_uuid(action).to_bytes()),
        time,
    });
    o
}

fn vfat_options(action: &Action, opts: &ApplyOptions) -> VfatOptions {
    let id = fs_uuid(action).to_bytes();
    VfatOptions {
        volume_label: vfat::label_from_partition(&action.label),
        volume_id: u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
        fat_type: None,
        time: opts.reproducible.unwrap_or_else(now),
    }
}

/// Image file: vfat straight into the range; f2fs in a temporary file copied in.
fn format_on_image(
    io: &dyn DiskIo,
    target: &Path,
    plan: &Plan,
    action: &Action,
    f: &PendingFormat,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<MakeDirsOutcome>, ApplyError> {
    let start = action.start_lba * plan.sector_size;
    let size = action.sectors * plan.sector_size;
    match f.format {
        Format::Vfat => {
            vfat::format(io, start, size, &vfat_options(action, opts), &[]).map_err(|source| {
                ApplyError::FormatVfat {
                    number: f.number,
                    label: f.label.clone(),
                    source,
                }
            })?;
            Ok(vfat_dirs_outcome(action))
        }
        Format::F2fs => {
            let dir = scratch_dir(target, size);
            let temp = tempfile::Builder::new()
                .prefix(".atomix-repart-")
                .suffix(".f2fs")
                .tempfile_in(&dir)
                .map_err(|source| ApplyError::Temp {
                    dir: dir.clone(),
                    source,
                })?;
            temp.as_file()
                .set_len(size)
                .map_err(|source| ApplyError::Temp {
                    dir: dir.clone(),
                    source,
                })?;
            atomix_f2fs::format(temp.path(), &f2fs_options(action, opts)).map_err(|source| {
                ApplyError::FormatF2fs {
                    number: f.number,
                    label: f.label.clone(),
                    source,
                }
            })?;
            let check = if action.make_directories.is_empty() {
                None
            } else {
                progress(&format!(
                    "making {} with sload.f2fs (the host kernel cannot mount f2fs)",
                    action.make_directories.join(" ")
                ));
                Some(sload_dirs(temp.path(), action, f, opts.reproducible, &dir)?)
            };
            let copied =
                copy_extents(temp.as_file(), io, start, size).map_err(|source| ApplyError::Copy {
                    target: target.to_owned(),
                    number: f.number,
                    label: f.label.clone(),
                    source,
                });
            let copied = match (copied, check) {
                (Err(e), Some(check)) => {
                    check.abandon();
                    return Err(e);
                }
                (Err(e), None) => return Err(e),
                (Ok(n), Some(check)) => {
                    check.finish()?;
                    (n, Some(MakeDirsOutcome::Host("sload.f2fs".into())))
                }
                (Ok(n), None) => (n, None),
            };
            let (copied, outcome) = copied;
            log::info!(
                "partition {} ({}): {copied} bytes of f2fs metadata copied",
                f.number,
                f.label
            );
            Ok(outcome)
        }
    }
}

/// Where the temporary f2fs of a `size`-byte partition is made: `/dev/shm` when it is a tmpfs
/// with room for the metadata (mkfs and sload fsync repeatedly, which costs nothing there),
/// else beside the image.
// statfs field types differ between targets (a conversion is useless on some of them).
#[allow(clippy::useless_conversion)]
fn scratch_dir(target: &Path, size: u64) -> PathBuf {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let shm = Path::new("/dev/shm");
    // f2fs writes about 0.25% of the partition as metadata; keep a wide margin.
    let needed = size / 64 + (256 << 20);
    if let Ok(st) = rustix::fs::statfs(shm) {
        let free = u64::try_from(st.f_bavail)
            .unwrap_or(0)
            .saturating_mul(u64::try_from(st.f_bsize).unwrap_or(0));
        if i64::try_from(st.f_type).unwrap_or(0) == TMPFS_MAGIC && free >= needed {
            return shm.to_path_buf();
        }
    }
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn vfat_dirs_outcome(action: &Action) -> Option<MakeDirsOutcome> {
    (!action.make_directories.is_empty()).then(|| {
        MakeDirsOutcome::Skipped(
            "MakeDirectories= on vfat is not supported (fatfs writes subdirectories fsck.vfat \
             rejects)"
                .into(),
        )
    })
}

/// Copies the data extents of `src` (`size` bytes) to `io` at `start`; the f2fs superblock
/// blocks go last, so a cut leaves no superblock pointing at unwritten metadata. Returns the
/// bytes copied.
fn copy_extents(src: &File, io: &dyn DiskIo, start: u64, size: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_CHUNK as usize];
    let mut copied = 0;
    let mut pos = F2FS_SUPERBLOCKS.min(size);
    while pos < size {
        let data = match rustix::fs::seek(src, rustix::fs::SeekFrom::Data(pos)) {
            Ok(at) => at.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(src, rustix::fs::SeekFrom::Hole(data))?.min(size);
        pos = data;
        while pos < hole {
            let n = (hole - pos).min(COPY_CHUNK) as usize;
            std::os::unix::fs::FileExt::read_exact_at(src, &mut buf[..n], pos)?;
            io.write_at(&buf[..n], start + pos)?;
            pos += n as u64;
            copied += n as u64;
        }
    }
    let head = F2FS_SUPERBLOCKS.min(size) as usize;
    std::os::unix::fs::FileExt::read_exact_at(src, &mut buf[..head], 0)?;
    io.write_at(&buf[..head], start)?;
    Ok(copied + head as u64)
}

/// `sload.f2fs -f <staging dir with the directories> -t / [-T epoch] <device>`.
fn sload_dirs(
    device: &Path,
    action: &Action,
    f: &PendingFormat,
    epoch: Option<u64>,
    temp_dir: &Path,
) -> Result<SloadCheck, ApplyError> {
    let staging = tempfile::Builder::new()
        .prefix(".atomix-repart-dirs-")
        .tempdir_in(temp_dir)
        .map_err(|source| ApplyError::Temp {
            dir: temp_dir.to_owned(),
            source,
        })?;
    for d in &action.make_directories {
        let path = staging.path().join(d.trim_start_matches('/'));
        fs::create_dir_all(&path).map_err(|source| ApplyError::MakeDir {
            number: f.number,
            label: f.label.clone(),
            path: path.clone(),
            source,
        })?;
    }
    let mut last_err = None;
    for tool in ["sload.f2fs", "/usr/sbin/sload.f2fs", "/sbin/sload.f2fs"] {
        let mut cmd = Command::new(tool);
        cmd.arg("-f").arg(staging.path()).args(["-t", "/"]);
        if let Some(epoch) = epoch {
            cmd.arg("-T").arg(epoch.to_string());
        }
        match cmd.arg(device).output() {
            Ok(out) if out.status.success() => return Ok(SloadCheck::default()),
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stdout));
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
                let failed = |output: String| ApplyError::Sload {
                    number: f.number,
                    label: f.label.clone(),
                    status: out.status,
                    output,
                };
                if !only_inline_xattr_fixes(&text) {
                    return Err(failed(tail));
                }
                // The verification runs while the caller copies the metadata into free space.
                let fsck = tool.replace("sload.f2fs", "fsck.f2fs");
                let child = Command::new(fsck)
                    .arg("--dry-run")
                    .arg(device)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| failed(format!("{tail} / cannot run fsck.f2fs: {e}")))?;
                return Ok(SloadCheck {
                    fsck: Some((
                        child,
                        failed(format!("{tail} / fsck.f2fs afterwards: not clean")),
                    )),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => last_err = Some(e),
            Err(source) => {
                return Err(ApplyError::SloadSpawn {
                    number: f.number,
                    label: f.label.clone(),
                    source,
                });
            }
        }
    }
    log::debug!("sload.f2fs not found: {last_err:?}");
    Err(ApplyError::SloadMissing {
        number: f.number,
        label: f.label.clone(),
    })
}

/// sload.f2fs 1.15 creates inodes with `inline_xattr_size` 0 under `flexible_inline_xattr` (a
/// default feature), then its own closing fsck repairs them to 50 (which also redoes their inode
/// checksums) and exits 1 ("other corrupted bugs [Fail]"). Such a run is accepted when those
/// repairs are its only complaints and a separate `fsck.f2fs --dry-run` then finds the file
/// system clean.
fn only_inline_xattr_fixes(output: &str) -> bool {
    let mut asserts = output.lines().filter(|l| l.contains("[ASSERT]")).peekable();
    asserts.peek().is_some()
        && asserts.all(|l| {
            l.contains("wrong inline_xattr_size")
                || (l.contains("chksum:") && l.contains("but calculated one is"))
        })
}

/// The `fsck.f2fs --dry-run` that confirms a repaired sload.f2fs run, if one is running, with
/// the error to return when it does not come out clean.
#[derive(Debug, Default)]
#[must_use]
struct SloadCheck {
    fsck: Option<(Child, ApplyError)>,
}

impl SloadCheck {
    /// Waits for the verification.
    fn finish(self) -> Result<(), ApplyError> {
        let Some((mut child, failed)) = self.fsck else {
            return Ok(());
        };
        match child.wait() {
            Ok(status) if status.success() => {
                log::debug!("sload.f2fs repaired its own inline_xattr_size slips; fsck is clean");
                Ok(())
            }
            _ => Err(failed),
        }
    }

    /// Stops the verification (the caller failed anyway).
    fn abandon(self) {
        if let Some((mut child, _)) = self.fsck {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A whole-disk block device as the kernel names it.
struct KernelDisk<'a> {
    file: &'a File,
    target: &'a Path,
    /// `loop0`, `mmcblk0`, `vda`.
    name: String,
}

impl<'a> KernelDisk<'a> {
    fn of(file: &'a File, target: &'a Path) -> Result<Self, ApplyError> {
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
    fn part_name(&self, number: u32) -> String {
        if self.name.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{}p{number}", self.name)
        } else {
            format!("{}{number}", self.name)
        }
    }

    /// (start, size) in 512-byte sectors as sysfs shows partition `number`, if the kernel knows
    /// it.
    fn kernel_view(&self, number: u32) -> Result<Option<(u64, u64)>, ApplyError> {
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
    fn ensure(
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
    fn wait_device(&self, number: u32) -> Result<PathBuf, ApplyError> {
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

    fn remove(&self, number: u32) {
        if let Err(e) = blkdev::blkpg(self.file, BlkpgOp::Delete, number, 0, 0) {
            log::warn!(
                "cannot remove partition {number} of {} from the kernel again: {e}",
                self.target.display()
            );
        }
    }

    /// Step 3: every partition of `table` known to the kernel with its start and size.
    fn sync(
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

/// Block device: announce the partition, format through `/dev/<part>`, make the directories.
fn format_on_device(
    k: &KernelDisk<'_>,
    plan: &Plan,
    action: &Action,
    f: &PendingFormat,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<MakeDirsOutcome>, ApplyError> {
    let start = action.start_lba * plan.sector_size;
    let size = action.sectors * plan.sector_size;
    let added = k.ensure(f.number, start, size, progress)?;
    let result = (|| {
        let device = k.wait_device(f.number)?;
        match f.format {
            Format::Vfat => {
                let part = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&device)
                    .map_err(|source| ApplyError::Open {
                        target: device.clone(),
                        source,
                    })?;
                vfat::format(&part, 0, size, &vfat_options(action, opts), &[]).map_err(
                    |source| ApplyError::FormatVfat {
                        number: f.number,
                        label: f.label.clone(),
                        source,
                    },
                )?;
                part.sync_all().map_err(|source| ApplyError::FlushFormats {
                    target: device.clone(),
                    source,
                })?;
                Ok(vfat_dirs_outcome(action))
            }
            Format::F2fs => {
                atomix_f2fs::format(&device, &f2fs_options(action, opts)).map_err(|source| {
                    ApplyError::FormatF2fs {
                        number: f.number,
                        label: f.label.clone(),
                        source,
                    }
                })?;
                if action.make_directories.is_empty() {
                    return Ok(None);
                }
                make_dirs_mounted(&device, action, f, opts, progress).map(Some)
            }
        }
    })();
    if result.is_err() && added {
        k.remove(f.number);
    }
    result
}

/// Mounts the new f2fs at `opts.mount_dir`, makes and fsyncs the directories, unmounts. Where
/// the running kernel has no f2fs (ENODEV: a host test), `sload.f2fs` writes them instead.
fn make_dirs_mounted(
    device: &Path,
    action: &Action,
    f: &PendingFormat,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<MakeDirsOutcome, ApplyError> {
    let dir = &opts.mount_dir;
    let mount_failed = |source: io::Error| ApplyError::Mount {
        device: device.to_owned(),
        dir: dir.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(mount_failed)?;
    progress(&format!(
        "mounting {} on {} to make {}",
        device.display(),
        dir.display(),
        action.make_directories.join(" ")
    ));
    match rustix::mount::mount(
        device,
        dir,
        "f2fs",
        rustix::mount::MountFlags::NOATIME,
        None,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::NODEV) => {
            progress("this kernel has no f2fs: making the directories with sload.f2fs");
            let temp_dir = std::env::temp_dir();
            sload_dirs(device, action, f, opts.reproducible, &temp_dir)?.finish()?;
            return Ok(MakeDirsOutcome::Host("sload.f2fs".into()));
        }
        Err(e) => return Err(mount_failed(e.into())),
    }
    let made = make_dirs_in(dir, action, f);
    let synced = File::open(dir).and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
    let unmounted = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::empty());
    made?;
    synced.map_err(|source| ApplyError::MakeDir {
        number: f.number,
        label: f.label.clone(),
        path: dir.clone(),
        source,
    })?;
    unmounted.map_err(|e| ApplyError::Unmount {
        dir: dir.clone(),
        source: e.into(),
    })?;
    Ok(MakeDirsOutcome::Done)
}

/// `mkdir -p` each directory under `root`, fsyncing each new directory and its parent.
fn make_dirs_in(root: &Path, action: &Action, f: &PendingFormat) -> Result<(), ApplyError> {
    for d in &action.make_directories {
        let mut path = root.to_path_buf();
        for part in Path::new(d.trim_start_matches('/')).components() {
            let parent = path.clone();
            path.push(part);
            let failed = |source| ApplyError::MakeDir {
                number: f.number,
                label: f.label.clone(),
                path: path.clone(),
                source,
            };
            match fs::create_dir(&path) {
                Ok(()) => {
                    File::open(&path)
                        .and_then(|d| d.sync_all())
                        .map_err(failed)?;
                    File::open(&parent)
                        .and_then(|d| d.sync_all())
                        .map_err(failed)?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(probe_signature(&head), None);
        head[1024..1028].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        assert_eq!(probe_signature(&head), Some("f2fs"));
        head[1024..1028].fill(0);
        head[5120..5124].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        assert_eq!(probe_signature(&head), Some("f2fs"), "second superblock");
        head[5120..5124].fill(0);
        head[510] = 0x55;
        head[511] = 0xAA;
        assert_eq!(probe_signature(&head), None, "an MBR is not a FAT");
        head[54..59].copy_from_slice(b"FAT16");
        assert_eq!(probe_signature(&head), Some("vfat"));
        assert_eq!(probe_signature(&head[..100]), None, "short reads are safe");
        let mut ext = vec![0u8; 2048];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert_eq!(probe_signature(&ext), Some("ext4"));
    }

    #[test]
    fn a_disk_with_mbr_partitions_or_a_file_system_is_not_blank() {
        let mut head = vec![0u8; 4096];
        assert_eq!(not_gpt_content(&head), None);
        head[510] = 0x55;
        head[511] = 0xAA;
        assert_eq!(not_gpt_content(&head), None, "an empty MBR");
        head[446 + 16 + 4] = 0x83;
        assert!(not_gpt_content(&head).unwrap().contains("MBR"));
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert!(not_gpt_content(&ext).unwrap().contains("ext4"));
    }

    #[test]
    fn report_text() {
        let r = ApplyReport::default();
        assert!(r.to_string().contains("nothing to do"));
    }
}
