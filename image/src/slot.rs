//! Filling one slot pair of an image file or block device (what an update does): the squashfs
//! raw into the slot's rootfs partition, then the slot's boot partition formatted as FAT with a
//! directory's files in its root.
//!
//! Everything is checked before the first write: the GPT has the slot's partitions with the
//! expected labels (slot B's exist only after first boot), the squashfs magic and size, the boot
//! files `boot.scr` needs (`Image`, `initrd`, the board's DTB; `boot.scr` itself on the
//! partition U-Boot's distro boot scans). Then the rootfs is written and fsynced first and the
//! boot file system last, so the slot's kernel only becomes loadable once its rootfs is
//! complete. The FAT is made by `atomix_repart::vfat::format`, the one formatter the image
//! builder and the repartitioner use too.
//!
//! A board that keeps its A/B state file on this boot partition (qemu-virt: `abstate.txt` on
//! partition 1) gets the file back after the reformat, so updating slot A keeps the counters.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use atomix_board::{AbStore, Board, Slot};
use atomix_repart::gpt::{ATTR_LEGACY_BIOS_BOOTABLE, Partition};
use atomix_repart::plan::derive_uuid;
use atomix_repart::vfat::{self, VfatError, VfatOptions};
use serde::Serialize;

use crate::flashable::BOOT_SCRIPT;
use crate::squashfs::{self, Unfit};
use crate::target::{Target, TargetError};

/// What to write.
#[derive(Debug, Clone)]
pub struct SlotSpec<'a> {
    /// The board (its DTB and where it keeps the A/B state).
    pub board: &'a Board,
    /// The slot pair to fill.
    pub slot: Slot,
    /// Directory whose regular files go into the boot partition's FAT root.
    pub boot_dir: PathBuf,
    /// The rootfs squashfs image.
    pub rootfs: PathBuf,
    /// Timestamp of the FAT entries (SOURCE_DATE_EPOCH, or now), seconds since 1970.
    pub time: u64,
}

/// A partition written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionWritten {
    /// GPT entry number.
    pub number: u32,
    /// PARTLABEL.
    pub label: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A file put into the boot partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootFile {
    /// Name in the FAT root.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// The A/B state file kept across the reformat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptState {
    /// Its name in the FAT root.
    pub file: String,
    /// Its size.
    pub bytes: u64,
}

/// What [`write_slot`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotReport {
    /// The image file or device.
    pub target: PathBuf,
    /// The slot filled.
    pub slot: Slot,
    /// The rootfs partition.
    pub rootfs: PartitionWritten,
    /// Bytes of squashfs written into it.
    pub rootfs_bytes: u64,
    /// The boot partition.
    pub boot: PartitionWritten,
    /// Its FAT volume label.
    pub volume_label: String,
    /// The files in its root directory (state file included).
    pub boot_files: Vec<BootFile>,
    /// The A/B state file carried over from the old file system, if the board keeps one there
    /// and it existed.
    pub kept_state: Option<KeptState>,
}

/// Failures filling a slot. The checks fail before any write; the write errors say what state
/// the slot is left in.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The image file or block device cannot be opened or sized.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The target has no partition table.
    #[error("{} has no partition table", target.display())]
    NoTable {
        /// The image file or block device.
        target: PathBuf,
    },
    /// The target has no partition for the slot's boot or rootfs.
    #[error("{} has no partition {number} ({label}) for slot {slot}: {hint}", target.display())]
    MissingPartition {
        /// The image file or block device.
        target: PathBuf,
        /// The slot.
        slot: Slot,
        /// GPT entry number of the partition.
        number: u32,
        /// The PARTLABEL it should have.
        label: &'static str,
        /// What to do about it.
        hint: String,
    },
    /// A slot partition has another label than the layout's: not an AtomixOS disk.
    #[error(
        "partition {number} of {} is labelled {found:?}, not {expected:?}: not the AtomixOS layout",
        target.display()
    )]
    WrongLabel {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition.
        number: u32,
        /// The label the layout has there.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// The boot files directory cannot be read.
    #[error("cannot read the boot files directory {}", dir.display())]
    BootDir {
        /// The boot files directory.
        dir: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An entry of the boot files directory cannot go into the FAT root (a name that is not
    /// UTF-8 or clashes with another but for case, a directory, not a regular file, unreadable).
    #[error("{}: {problem}", path.display())]
    BootEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file boot.scr needs is not in the boot files directory.
    #[error("{} has no {name}: {why}", dir.display())]
    MissingBootFile {
        /// The boot files directory.
        dir: PathBuf,
        /// The file's name.
        name: String,
        /// Why there is none.
        why: String,
    },
    /// The boot files do not fit the slot's boot partition.
    #[error(
        "the boot files in {} take {bytes} bytes, more than partition {number} ({label}) holds \
         ({size} bytes)",
        dir.display()
    )]
    BootTooLarge {
        /// The boot files directory.
        dir: PathBuf,
        /// Their size in bytes.
        bytes: u64,
        /// GPT entry number of the partition.
        number: u32,
        /// The partition's PARTLABEL.
        label: String,
        /// The partition's size in bytes.
        size: u64,
    },
    /// The rootfs squashfs cannot be read.
    #[error("cannot read the rootfs image {}", path.display())]
    RootfsRead {
        /// The squashfs.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The rootfs image does not start with the squashfs magic.
    #[error("rootfs image {} is not a squashfs (no \"hsqs\" magic)", path.display())]
    NotSquashfs {
        /// The file given.
        path: PathBuf,
    },
    /// The rootfs squashfs is larger than the slot's rootfs partition.
    #[error(
        "rootfs image {} is {bytes} bytes, larger than partition {number} ({label}, {size} bytes)",
        path.display()
    )]
    RootfsTooLarge {
        /// The squashfs.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
        /// GPT entry number of the partition.
        number: u32,
        /// The partition's PARTLABEL.
        label: String,
        /// The partition's size in bytes.
        size: u64,
    },
    /// The A/B state file cannot be read before the boot partition is formatted.
    #[error(
        "cannot read the A/B state file {file} from partition {number} of {} (nothing written)",
        target.display()
    )]
    ReadState {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition.
        number: u32,
        /// The state file's name in the FAT root.
        file: String,
        /// What the FAT code said.
        #[source]
        source: VfatError,
    },
    /// Writing the rootfs failed part way.
    #[error(
        "writing the rootfs into partition {number} ({label}) of {} failed: it holds a partial \
         squashfs and slot {slot} must not boot until write-slot succeeds (its boot partition \
         is unchanged)",
        target.display()
    )]
    WriteRootfs {
        /// The image file or block device.
        target: PathBuf,
        /// The slot.
        slot: Slot,
        /// GPT entry number of the partition.
        number: u32,
        /// The partition's PARTLABEL.
        label: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Formatting the boot partition failed after the rootfs was written.
    #[error(
        "the rootfs of slot {slot} is written, but formatting partition {number} ({label}) of {} \
         failed: its file system is incomplete, so U-Boot cannot load slot {slot}'s kernel; run \
         write-slot again",
        target.display()
    )]
    FormatBoot {
        /// The image file or block device.
        target: PathBuf,
        /// The slot.
        slot: Slot,
        /// GPT entry number of the partition.
        number: u32,
        /// The partition's PARTLABEL.
        label: String,
        /// What the FAT code said.
        #[source]
        source: VfatError,
    },
    /// Putting the A/B state file back failed after the slot was written.
    #[error(
        "slot {slot} is written, but putting the A/B state file {file} back into partition \
         {number} of {} failed: boot.scr starts from its default counters; it held {text:?}",
        target.display()
    )]
    WriteState {
        /// The image file or block device.
        target: PathBuf,
        /// The slot.
        slot: Slot,
        /// GPT entry number of the partition.
        number: u32,
        /// The state file's name in the FAT root.
        file: String,
        /// The state file's contents before the write (to put back by hand).
        text: String,
        /// What the FAT code said.
        #[source]
        source: Box<VfatError>,
    },
    /// A write cannot be flushed to the disk.
    #[error("cannot flush {} after writing {what}", target.display())]
    Sync {
        /// The image file or block device.
        target: PathBuf,
        /// What was written.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Fills slot `spec.slot` of `target`; `progress` hears about the long steps.
pub fn write_slot(
    target: &Path,
    spec: &SlotSpec<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<SlotReport, SlotError> {
    let t = Target::open(target, true)?;
    let slot = spec.slot;
    let boot_part = slot_partition(&t, spec.board, slot, slot.boot_partition())?.clone();
    let rootfs_part = slot_partition(&t, spec.board, slot, slot.rootfs_partition())?.clone();
    let (boot_start, boot_size) = t.range(&boot_part);
    let (rootfs_start, rootfs_size) = t.range(&rootfs_part);

    let rootfs_bytes = check_squashfs(&spec.rootfs, &rootfs_part, rootfs_size)?;
    let state_file = match &spec.board.ab.store {
        AbStore::VfatFile { partition, file } if *partition == boot_part.number => Some(file),
        _ => None,
    };
    let mut files = boot_files(&spec.boot_dir)?;
    let distro_boot = boot_part.attributes & ATTR_LEGACY_BIOS_BOOTABLE != 0;
    require_boot_files(spec, &files, distro_boot, &boot_part)?;

    // The old state file, read before anything is written.
    let kept = match state_file {
        Some(file) => match vfat::read_file(&t.file, boot_start, boot_size, file) {
            Ok(found) => found.map(|data| (file.clone(), data)),
            // No FAT there (a fresh partition): nothing to keep.
            Err(VfatError::Open { .. }) => None,
            Err(source) => {
                return Err(SlotError::ReadState {
                    target: t.path.clone(),
                    number: boot_part.number,
                    file: file.clone(),
                    source,
                });
            }
        },
        None => None,
    };
    if let Some((name, _)) = &kept {
        // The target's counters win over a copy in the boot files.
        files.retain(|(n, _, _)| !n.eq_ignore_ascii_case(name));
    }
    let bytes: u64 = files.iter().map(|(_, _, size)| size).sum::<u64>()
        + kept.as_ref().map_or(0, |(_, d)| d.len() as u64);
    if bytes >= boot_size {
        return Err(SlotError::BootTooLarge {
            dir: spec.boot_dir.clone(),
            bytes,
            number: boot_part.number,
            label: boot_part.name.clone(),
            size: boot_size,
        });
    }

    // 1. The rootfs, durable before the boot partition changes.
    progress(&format!(
        "writing the rootfs ({rootfs_bytes} bytes) into partition {} ({})",
        rootfs_part.number, rootfs_part.name
    ));
    let rootfs_failed = |source| SlotError::WriteRootfs {
        target: t.path.clone(),
        slot,
        number: rootfs_part.number,
        label: rootfs_part.name.clone(),
        source,
    };
    squashfs::copy_into(&t.file, &spec.rootfs, rootfs_start, rootfs_size).map_err(rootfs_failed)?;
    t.file.sync_all().map_err(rootfs_failed)?;

    // 2. The boot file system, which makes the slot loadable.
    let volume_label = vfat::label_from_partition(&boot_part.name);
    let id = derive_uuid(boot_part.uuid, "file-system-uuid").to_bytes();
    let options = VfatOptions {
        volume_label,
        volume_id: u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
        fat_type: Some(fatfs::FatType::Fat16),
        time: spec.time,
    };
    progress(&format!(
        "formatting partition {} ({}) as FAT16 with {} files",
        boot_part.number,
        boot_part.name,
        files.len()
    ));
    let sources: Vec<(String, PathBuf)> = files
        .iter()
        .map(|(name, path, _)| (name.clone(), path.clone()))
        .collect();
    vfat::format(&t.file, boot_start, boot_size, &options, &sources).map_err(|source| {
        SlotError::FormatBoot {
            target: t.path.clone(),
            slot,
            number: boot_part.number,
            label: boot_part.name.clone(),
            source,
        }
    })?;
    let mut boot_report: Vec<BootFile> = files
        .iter()
        .map(|(name, _, size)| BootFile {
            name: name.clone(),
            size: *size,
        })
        .collect();
    let kept_state = match &kept {
        Some((file, data)) => {
            progress(&format!("putting {file} back (the A/B counters)"));
            vfat::write_file(&t.file, boot_start, boot_size, file, data, spec.time).map_err(
                |source| SlotError::WriteState {
                    target: t.path.clone(),
                    slot,
                    number: boot_part.number,
                    file: file.clone(),
                    text: String::from_utf8_lossy(data).into_owned(),
                    source: Box::new(source),
                },
            )?;
            boot_report.push(BootFile {
                name: file.clone(),
                size: data.len() as u64,
            });
            Some(KeptState {
                file: file.clone(),
                bytes: data.len() as u64,
            })
        }
        None => None,
    };
    t.file.sync_all().map_err(|source| SlotError::Sync {
        target: t.path.clone(),
        what: "the boot partition",
        source,
    })?;
    log::info!(
        "{}: slot {slot} written (partitions {} and {})",
        t.path.display(),
        boot_part.number,
        rootfs_part.number
    );
    let written = |p: &Partition, (start, size): (u64, u64)| PartitionWritten {
        number: p.number,
        label: p.name.clone(),
        start,
        size,
    };
    Ok(SlotReport {
        target: t.path.clone(),
        slot,
        rootfs: written(&rootfs_part, (rootfs_start, rootfs_size)),
        rootfs_bytes,
        boot: written(&boot_part, (boot_start, boot_size)),
        volume_label: String::from_utf8_lossy(&volume_label).trim_end().to_owned(),
        boot_files: boot_report,
        kept_state,
    })
}

/// Partition `number` of the slot, with the slot's label.
fn slot_partition<'t>(
    t: &'t Target,
    board: &Board,
    slot: Slot,
    number: u32,
) -> Result<&'t Partition, SlotError> {
    let Some(table) = t.table() else {
        return Err(SlotError::NoTable {
            target: t.path.clone(),
        });
    };
    let label = if number == slot.boot_partition() {
        slot.boot_label()
    } else {
        slot.rootfs_label()
    };
    let Some(p) = table.partition(number) else {
        let hint = if table.by_name("boot-b").is_none() && slot == Slot::B {
            format!(
                "slot B's partitions are made on first boot; create them with `atomix repart \
                 --board {} --dry-run=no {}`",
                board.name,
                t.path.display()
            )
        } else {
            "the table does not have the AtomixOS layout".to_owned()
        };
        return Err(SlotError::MissingPartition {
            target: t.path.clone(),
            slot,
            number,
            label,
            hint,
        });
    };
    if p.name != label {
        return Err(SlotError::WrongLabel {
            target: t.path.clone(),
            number,
            expected: label,
            found: p.name.clone(),
        });
    }
    Ok(p)
}

/// Checks the magic and that the image fits; returns its size.
fn check_squashfs(path: &Path, part: &Partition, size: u64) -> Result<u64, SlotError> {
    squashfs::check(path, size).map_err(|unfit| match unfit {
        Unfit::Read(source) => SlotError::RootfsRead {
            path: path.to_owned(),
            source,
        },
        Unfit::NotSquashfs => SlotError::NotSquashfs {
            path: path.to_owned(),
        },
        Unfit::TooLarge { size: bytes } => SlotError::RootfsTooLarge {
            path: path.to_owned(),
            bytes,
            number: part.number,
            label: part.name.clone(),
            size,
        },
    })
}

/// The regular files of `dir` (symlinks followed), sorted by name: (name, path, size).
/// Subdirectories and other file types are refused: only the FAT root is written.
fn boot_files(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>, SlotError> {
    let failed = |source| SlotError::BootDir {
        dir: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        let bad = |problem: &str| SlotError::BootEntry {
            path: path.clone(),
            problem: problem.to_owned(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("the name is not UTF-8"))?
            .to_owned();
        let meta = fs::metadata(&path).map_err(|e| bad(&format!("cannot read it: {e}")))?;
        if meta.is_dir() {
            return Err(bad(
                "is a directory: only files go into the boot partition's FAT root",
            ));
        }
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(bad(
                "another file has the same name but for case (FAT names ignore case)",
            ));
        }
        out.push((name, path, meta.len()));
    }
    out.sort();
    Ok(out)
}

/// What boot.scr loads from the slot's boot partition, and the script itself where distro boot
/// looks for it.
fn require_boot_files(
    spec: &SlotSpec<'_>,
    files: &[(String, PathBuf, u64)],
    distro_boot: bool,
    part: &Partition,
) -> Result<(), SlotError> {
    let mut needed = vec![
        ("Image", "boot.scr loads the kernel as Image".to_owned()),
        (
            "initrd",
            "boot.scr loads the initramfs as initrd".to_owned(),
        ),
    ];
    if let Some(dtb) = spec.board.boot.dtb_file_name() {
        needed.push((
            dtb,
            format!("board {} boots with this device tree", spec.board.name),
        ));
    }
    if distro_boot {
        needed.push((
            BOOT_SCRIPT,
            format!(
                "partition {} ({}) is the one U-Boot's distro boot runs boot.scr from (legacy \
                 BIOS bootable), so without it the disk would not boot",
                part.number, part.name
            ),
        ));
    }
    for (name, why) in needed {
        if !files.iter().any(|(n, _, _)| n == name) {
            return Err(SlotError::MissingBootFile {
                dir: spec.boot_dir.clone(),
                name: name.to_owned(),
                why,
            });
        }
    }
    Ok(())
}
