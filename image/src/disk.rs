//! Disk image assembly: raw loader files, GPT, boot vfat and rootfs squashfs in one sparse,
//! reproducible file.
//!
//! The partition layout comes from a [`DiskLayout`] value ([`DiskLayout::atomix`] is DESIGN
//! section 3's image-time part: `boot-a` and `rootfs-a` after a 16 MiB raw region). The raw
//! region below the first partition holds [`DiskSpec::loader`] files at their byte offsets, each
//! checked to lie between the primary GPT and the first usable byte and to overlap neither
//! another loader file nor a [`DiskLayout::reserved`] range (such as a U-Boot environment, left
//! as zeros). All of this is plain data: which board wants which files is `crate::flashable`'s
//! business. The GPT is written by `atomix_repart::gpt`; the vfat by `atomix_repart::vfat` (the
//! `fatfs` crate inside a partition-sized window of the image; files in its root directory
//! only); the squashfs by `mksquashfs` (or taken ready-made) and copied into its slot.
//!
//! Reproducibility: GUIDs and the vfat volume id derive from [`DiskSpec::seed`], every timestamp
//! from [`DiskSpec::epoch`]; unused space is left as holes (never written). The image is built
//! in a temporary file beside the output and renamed into place only when complete
//! ([`build`], or [`build_pending`] + [`PendingImage::persist`] for a caller that writes a
//! companion file first).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_repart::gpt::{self, Geometry, GptError, Guid, Partition, Table};
use atomix_repart::vfat::{self, VfatError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::squashfs::{self, Unfit};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
/// The primary GPT (protective MBR, header, 128 entries of 128 bytes) ends here: the raw region
/// starts after it.
pub const PRIMARY_GPT_END: u64 = 34 * SECTOR;

/// What a partition of the layout is filled with at image time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A FAT16 filesystem holding [`DiskSpec::boot_files`] in its root directory.
    BootVfat {
        /// Volume label, at most 11 characters of `A-Z 0-9 - _`.
        volume_label: String,
    },
    /// The rootfs squashfs ([`DiskSpec::rootfs`]).
    Rootfs,
}

/// One partition of a [`DiskLayout`]; offsets and sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    /// Entry number in the GPT (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// GPT partition name (PARTLABEL).
    pub label: String,
    /// GPT partition type.
    pub type_guid: Guid,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT attribute bits.
    pub attributes: u64,
    /// What the image puts there.
    pub content: Content,
}

/// The part of a disk layout an image carries; offsets and sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// GPT first usable byte: nothing below it is ever allocated (the raw loader region).
    pub first_usable: u64,
    /// The partitions the image creates.
    pub partitions: Vec<PartitionLayout>,
    /// Space after the last partition up to the image end; holds the backup GPT.
    pub tail: u64,
    /// Ranges of the raw region no loader file may touch (left as zeros in a new image).
    pub reserved: Vec<Reserved>,
}

/// A byte range of the raw region that belongs to someone else, e.g. U-Boot's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// What it is, for error messages.
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A file written as is into the raw region below the first partition (a boot loader stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFile {
    /// Its name, for the report and error messages (e.g. `idbloader.img`).
    pub name: String,
    /// Byte offset on the disk, a multiple of 512.
    pub offset: u64,
    /// The file to copy.
    pub source: PathBuf,
}

impl DiskLayout {
    /// DESIGN section 3, image-time part: `boot-a` (xbootldr, legacy-BIOS-bootable, vfat
    /// `BOOT-A`) at 16 MiB, 128 MiB; `rootfs-a` (root-arm64, squashfs) at 144 MiB, 1024 MiB;
    /// first usable LBA 32768; the image ends 1 MiB after `rootfs-a`.
    pub fn atomix() -> Self {
        DiskLayout {
            first_usable: 16 * MIB,
            partitions: vec![
                PartitionLayout {
                    number: 1,
                    label: "boot-a".into(),
                    type_guid: gpt::types::XBOOTLDR,
                    start: 16 * MIB,
                    size: 128 * MIB,
                    attributes: gpt::ATTR_LEGACY_BIOS_BOOTABLE,
                    content: Content::BootVfat {
                        volume_label: "BOOT-A".into(),
                    },
                },
                PartitionLayout {
                    number: 2,
                    label: "rootfs-a".into(),
                    type_guid: gpt::types::ROOT_ARM64,
                    start: 144 * MIB,
                    size: 1024 * MIB,
                    attributes: 0,
                    content: Content::Rootfs,
                },
            ],
            tail: MIB,
            reserved: Vec::new(),
        }
    }

    /// The smallest image size: the end of the last partition plus [`DiskLayout::tail`].
    pub fn end(&self) -> u64 {
        let last = self.partitions.iter().map(|p| p.start + p.size).max();
        last.unwrap_or(self.first_usable) + self.tail
    }

    /// The GPT for an image of `size` bytes, GUIDs derived from `seed`.
    pub fn table(&self, size: u64, seed: &str) -> Result<Table, DiskError> {
        for p in &self.partitions {
            if !p.start.is_multiple_of(SECTOR) || !p.size.is_multiple_of(SECTOR) || p.size == 0 {
                return Err(DiskError::Unaligned {
                    label: p.label.clone(),
                    start: p.start,
                    size: p.size,
                });
            }
        }
        if !self.first_usable.is_multiple_of(SECTOR) {
            return Err(DiskError::UnalignedFirstUsable {
                first_usable: self.first_usable,
            });
        }
        let geometry = Geometry::new(size, SECTOR).map_err(|source| DiskError::Table { source })?;
        let mut table = Table::spanning(&geometry, disk_guid(seed));
        table.first_usable_lba = self.first_usable / SECTOR;
        table.partitions = self
            .partitions
            .iter()
            .map(|p| Partition {
                number: p.number,
                type_guid: p.type_guid,
                uuid: partition_uuid(seed, &p.label),
                first_lba: p.start / SECTOR,
                last_lba: (p.start + p.size) / SECTOR - 1,
                attributes: p.attributes,
                name: p.label.clone(),
            })
            .collect();
        table
            .validate(&geometry)
            .map_err(|source| DiskError::Table { source })?;
        Ok(table)
    }

    /// The partition that holds the rootfs squashfs.
    pub fn rootfs_slot(&self) -> Result<&PartitionLayout, DiskError> {
        self.role(|c| matches!(c, Content::Rootfs), "rootfs")
    }

    /// The partition that holds the boot vfat.
    pub fn boot_partition(&self) -> Result<&PartitionLayout, DiskError> {
        self.role(|c| matches!(c, Content::BootVfat { .. }), "boot vfat")
    }

    fn role(
        &self,
        pick: fn(&Content) -> bool,
        role: &'static str,
    ) -> Result<&PartitionLayout, DiskError> {
        let mut found = self.partitions.iter().filter(|p| pick(&p.content));
        match (found.next(), found.next()) {
            (Some(p), None) => Ok(p),
            (None, _) => Err(DiskError::MissingRole { role }),
            (Some(_), Some(_)) => Err(DiskError::DuplicateRole { role }),
        }
    }
}

impl Default for DiskLayout {
    fn default() -> Self {
        DiskLayout::atomix()
    }
}

/// Disk GUID for `seed`.
pub fn disk_guid(seed: &str) -> Guid {
    Guid::from_seed(format!("atomix-image/{seed}/disk").as_bytes())
}

/// Partition GUID (PARTUUID) of the partition labelled `label` for `seed`.
pub fn partition_uuid(seed: &str, label: &str) -> Guid {
    Guid::from_seed(format!("atomix-image/{seed}/partition/{label}").as_bytes())
}

fn volume_id(seed: &str, label: &str) -> u32 {
    let b = Guid::from_seed(format!("atomix-image/{seed}/vfat/{label}").as_bytes()).to_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Where the rootfs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsSource {
    /// A directory, packed with mksquashfs (zstd, 1 MiB blocks, owners kept, no xattrs,
    /// all times set to the epoch).
    Dir(PathBuf),
    /// A ready squashfs image, copied as is.
    Squashfs(PathBuf),
}

/// The contents of a file for the boot vfat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// Copied from a file.
    File(PathBuf),
    /// Generated (e.g. `boot.scr`, the A/B state file).
    Bytes(Vec<u8>),
}

/// Everything a disk image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Partition layout.
    pub layout: DiskLayout,
    /// Raw files below the first partition (boot loader stages).
    pub loader: Vec<RawFile>,
    /// Files for the boot vfat: (name in the FAT root directory, contents). The root directory
    /// lists the file-backed ones first, then the generated ones, each in this order.
    pub boot_files: Vec<(String, BootSource)>,
    /// The rootfs.
    pub rootfs: RootfsSource,
    /// SOURCE_DATE_EPOCH: every timestamp in the image (clamped to FAT's 1980..=2107 on the vfat).
    pub epoch: u64,
    /// Seed of the disk and partition GUIDs and the vfat volume id.
    pub seed: String,
    /// Image size in bytes (sparse); `None` = [`DiskLayout::end`]. The backup GPT goes at its end.
    pub size: Option<u64>,
}

/// One partition of a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// Entry number.
    pub number: u32,
    /// PARTLABEL.
    pub label: String,
    /// Type GUID.
    pub type_guid: String,
    /// PARTUUID.
    pub uuid: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT attribute bits.
    pub attributes: u64,
}

/// What [`build`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskReport {
    /// Apparent size of the image in bytes.
    pub size: u64,
    /// Bytes the (sparse) image occupies on the file system.
    pub allocated: u64,
    /// Disk GUID.
    pub disk_guid: String,
    /// The partitions.
    pub partitions: Vec<PartitionReport>,
    /// The raw loader files, in the order written.
    pub loader: Vec<RawReport>,
    /// Total size of the boot files.
    pub boot_bytes: u64,
    /// Size of the squashfs in the rootfs slot.
    pub rootfs_bytes: u64,
    /// SHA-256 of the whole image, lowercase hex.
    pub sha256: String,
}

/// A raw loader file of a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawReport {
    /// Its name.
    pub name: String,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Failures building a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("the layout has no {role} partition")]
    MissingRole { role: &'static str },
    #[error("the layout has more than one {role} partition")]
    DuplicateRole { role: &'static str },
    #[error("partition {label}: start {start} or size {size} is not a positive multiple of 512")]
    Unaligned {
        label: String,
        start: u64,
        size: u64,
    },
    #[error("first usable byte {first_usable} is not a multiple of 512")]
    UnalignedFirstUsable { first_usable: u64 },
    #[error("volume label {label:?} is not 1-11 characters of A-Z 0-9 - _")]
    VolumeLabel { label: String },
    #[error("image size {size} is smaller than the layout's end {needed} or not a multiple of 512")]
    Size { size: u64, needed: u64 },
    #[error("invalid partition table for the image")]
    Table {
        #[source]
        source: GptError,
    },
    #[error("boot file name {name:?} is not a valid name in the FAT root directory")]
    BootFileName { name: String },
    #[error("boot file name {name:?} is given twice (FAT names are case-insensitive)")]
    DuplicateBootFile { name: String },
    #[error("cannot read boot file {name} from {path}")]
    BootFile {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read loader file {name} from {path}")]
    LoaderFile {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "loader file {name} at bytes {start}..{end} must be sector aligned and lie between the \
         primary GPT (byte {PRIMARY_GPT_END}) and the first usable byte {first_usable}"
    )]
    LoaderPlacement {
        name: String,
        start: u64,
        end: u64,
        first_usable: u64,
    },
    #[error(
        "loader file {name} at bytes {start}..{end} overlaps {other} at {other_start}..{other_end}"
    )]
    LoaderOverlap {
        name: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },
    #[error("cannot write loader file {name} at byte {offset}")]
    WriteLoader {
        name: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the vfat of partition {label}")]
    Vfat {
        label: String,
        #[source]
        source: VfatError,
    },
    #[error("epoch {epoch} does not fit squashfs's 32-bit timestamps")]
    Epoch { epoch: u64 },
    #[error("cannot run mksquashfs on {dir}")]
    MksquashfsSpawn {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mksquashfs on {dir} failed ({status}): {stderr}")]
    Mksquashfs {
        dir: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot read rootfs image {path}")]
    RootfsRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rootfs image {path} is not a squashfs (no \"hsqs\" magic)")]
    NotSquashfs { path: PathBuf },
    #[error("rootfs image {path} is {size} bytes, larger than the {slot}-byte slot {label}")]
    RootfsTooLarge {
        path: PathBuf,
        size: u64,
        slot: u64,
        label: String,
    },
    #[error("cannot create a temporary file in {dir}")]
    TempFile {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot size {path} to {size} bytes")]
    Resize {
        path: PathBuf,
        size: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the partition table of {path}")]
    WriteTable {
        path: PathBuf,
        #[source]
        source: GptError,
    },
    #[error("cannot format partition {label} as vfat")]
    FormatVfat {
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {name} into the vfat of partition {label}")]
    VfatFile {
        name: String,
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy the rootfs into partition {label}")]
    CopyRootfs {
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot finish {path}")]
    Finish {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Builds the disk image described by `spec` at `out`, reporting steps through `progress`.
///
/// On failure `out` is left as it was (no partial image appears there).
pub fn build(
    spec: &DiskSpec,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<DiskReport, DiskError> {
    build_pending(spec, out, progress)?.persist(out)
}

/// A complete image in a temporary file beside its output path, not yet in place: dropping it
/// removes it; [`PendingImage::persist`] renames it into place.
#[derive(Debug)]
pub struct PendingImage {
    file: NamedTempFile,
    report: DiskReport,
}

impl PendingImage {
    /// What was built.
    pub fn report(&self) -> &DiskReport {
        &self.report
    }

    /// Renames the image to `out` (in the directory it was built in, see [`build_pending`]).
    pub fn persist(self, out: &Path) -> Result<DiskReport, DiskError> {
        self.file.persist(out).map_err(|e| DiskError::Finish {
            path: out.to_path_buf(),
            source: e.error,
        })?;
        log::info!(
            "built {} ({} bytes, sha256 {})",
            out.display(),
            self.report.size,
            self.report.sha256
        );
        Ok(self.report)
    }
}

/// Builds the disk image described by `spec` into a temporary file in `out`'s directory,
/// reporting steps through `progress`; nothing appears at `out` until
/// [`PendingImage::persist`].
pub fn build_pending(
    spec: &DiskSpec,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<PendingImage, DiskError> {
    let layout = &spec.layout;
    let boot = layout.boot_partition()?;
    let rootfs = layout.rootfs_slot()?;
    let needed = layout.end();
    let size = spec.size.unwrap_or(needed);
    if size < needed || !size.is_multiple_of(SECTOR) {
        return Err(DiskError::Size { size, needed });
    }
    let table = layout.table(size, &spec.seed)?;
    let (volume_name, volume_label) = match &boot.content {
        Content::BootVfat { volume_label } => (volume_label, fat_label(volume_label)?),
        Content::Rootfs => return Err(DiskError::MissingRole { role: "boot vfat" }),
    };
    let boot_bytes = check_boot_files(&spec.boot_files)?;
    let loader = read_loader(layout, &spec.loader)?;

    let (dir, stem) = temp_place(out);
    let temp = |suffix: &str| {
        tempfile::Builder::new()
            .prefix(&format!(".{stem}."))
            .suffix(suffix)
            .tempfile_in(&dir)
            .map_err(|source| DiskError::TempFile {
                dir: dir.clone(),
                source,
            })
    };

    // The squashfs first: it is the slow part and may not fit.
    let packed;
    let sqfs_path = match &spec.rootfs {
        RootfsSource::Squashfs(p) => p.clone(),
        RootfsSource::Dir(d) => {
            progress(&format!("packing {} with mksquashfs", d.display()));
            packed = temp(".sqfs")?;
            pack_rootfs(d, packed.path(), spec.epoch)?;
            packed.path().to_path_buf()
        }
    };
    let rootfs_bytes = check_squashfs(&sqfs_path, rootfs)?;

    let image = temp(".img")?;
    let path = out.to_path_buf();
    let file = image.as_file();
    file.set_len(size).map_err(|source| DiskError::Resize {
        path: path.clone(),
        size,
        source,
    })?;
    for (raw, data) in spec.loader.iter().zip(&loader) {
        progress(&format!(
            "writing {} ({} bytes) at byte {}",
            raw.name,
            data.len(),
            raw.offset
        ));
        file.write_all_at(data, raw.offset)
            .map_err(|source| DiskError::WriteLoader {
                name: raw.name.clone(),
                offset: raw.offset,
                source,
            })?;
    }
    progress(&format!(
        "writing GPT ({} partitions, {size} bytes)",
        table.partitions.len()
    ));
    gpt::write(&mut &*file, size, &table).map_err(|source| DiskError::WriteTable {
        path: path.clone(),
        source,
    })?;

    progress(&format!(
        "formatting {} as FAT16 {volume_name:?} ({boot_bytes} bytes of files)",
        boot.label
    ));
    write_vfat(file, boot, volume_label, spec)?;

    progress(&format!(
        "copying rootfs ({rootfs_bytes} bytes) into {}",
        rootfs.label
    ));
    copy_rootfs(file, &sqfs_path, rootfs)?;

    progress(&format!("hashing the image ({size} bytes, holes included)"));
    let finish = |source| DiskError::Finish {
        path: path.clone(),
        source,
    };
    file.sync_all().map_err(finish)?;
    let sha256 = sha256_of(file, size).map_err(finish)?;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(finish)?;
    let allocated = file.metadata().map_err(finish)?.blocks() * 512;

    let report = DiskReport {
        size,
        allocated,
        disk_guid: table.disk_guid.to_string(),
        partitions: table
            .partitions
            .iter()
            .map(|p| PartitionReport {
                number: p.number,
                label: p.name.clone(),
                type_guid: p.type_guid.to_string(),
                uuid: p.uuid.to_string(),
                start: p.first_lba * SECTOR,
                size: p.sectors() * SECTOR,
                attributes: p.attributes,
            })
            .collect(),
        loader: spec
            .loader
            .iter()
            .zip(&loader)
            .map(|(raw, data)| RawReport {
                name: raw.name.clone(),
                offset: raw.offset,
                size: data.len() as u64,
            })
            .collect(),
        boot_bytes,
        rootfs_bytes,
        sha256,
    };
    Ok(PendingImage {
        file: image,
        report,
    })
}

/// The directory temporary files for `out` go in, and the stem of their names.
fn temp_place(out: &Path) -> (PathBuf, String) {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = out
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    (dir, stem)
}

/// Reads the loader files after checking where they go: each sector aligned, inside the raw
/// region, clear of the reserved ranges and of each other.
fn read_loader(layout: &DiskLayout, files: &[RawFile]) -> Result<Vec<Vec<u8>>, DiskError> {
    let mut taken: Vec<(String, u64, u64)> = layout
        .reserved
        .iter()
        .map(|r| (r.name.clone(), r.start, r.start + r.size))
        .collect();
    let mut out = Vec::with_capacity(files.len());
    for raw in files {
        let failed = |source| DiskError::LoaderFile {
            name: raw.name.clone(),
            path: raw.source.clone(),
            source,
        };
        let data = fs::read(&raw.source).map_err(failed)?;
        if data.is_empty() {
            return Err(failed(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is empty",
            )));
        }
        let (start, end) = (raw.offset, raw.offset + data.len() as u64);
        if !start.is_multiple_of(SECTOR) || start < PRIMARY_GPT_END || end > layout.first_usable {
            return Err(DiskError::LoaderPlacement {
                name: raw.name.clone(),
                start,
                end,
                first_usable: layout.first_usable,
            });
        }
        if let Some((other, s, e)) = taken.iter().find(|(_, s, e)| start < *e && *s < end) {
            return Err(DiskError::LoaderOverlap {
                name: raw.name.clone(),
                start,
                end,
                other: other.clone(),
                other_start: *s,
                other_end: *e,
            });
        }
        taken.push((raw.name.clone(), start, end));
        out.push(data);
    }
    Ok(out)
}

/// The 11-byte, space-padded FAT volume label.
fn fat_label(label: &str) -> Result<[u8; 11], DiskError> {
    vfat::fat_label(label).map_err(|_| DiskError::VolumeLabel {
        label: label.to_owned(),
    })
}

/// Checks names and that every source is a readable regular file; returns the total size.
fn check_boot_files(files: &[(String, BootSource)]) -> Result<u64, DiskError> {
    let mut total = 0;
    for (i, (name, source)) in files.iter().enumerate() {
        let bad = |c: char| c.is_control() || "/\\:*?\"<>|".contains(c);
        if name.is_empty()
            || name.len() > 255
            || name.starts_with('.')
            || name.ends_with(' ')
            || name.chars().any(bad)
        {
            return Err(DiskError::BootFileName { name: name.clone() });
        }
        if files[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(DiskError::DuplicateBootFile { name: name.clone() });
        }
        let path = match source {
            BootSource::Bytes(data) => {
                total += data.len() as u64;
                continue;
            }
            BootSource::File(path) => path,
        };
        let failed = |source| DiskError::BootFile {
            name: name.clone(),
            path: path.clone(),
            source,
        };
        let meta = fs::metadata(path).map_err(failed)?;
        if !meta.is_file() {
            return Err(failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        File::open(path).map_err(failed)?;
        total += meta.len();
    }
    Ok(total)
}

/// Packs `dir` into the squashfs `out` as every image's rootfs is packed: zstd, 1 MiB blocks,
/// owners and modes as in `dir` (a real root has files of `_chrony`, `systemd-network`,
/// `messagebus`, group `shadow`...), no xattrs, every time (and the superblock's) set to
/// `epoch`.
pub fn pack_rootfs(dir: &Path, out: &Path, epoch: u64) -> Result<(), DiskError> {
    mksquashfs(dir, out, epoch)
}

fn mksquashfs(dir: &Path, out: &Path, epoch: u64) -> Result<(), DiskError> {
    if u32::try_from(epoch).is_err() {
        return Err(DiskError::Epoch { epoch });
    }
    let epoch = epoch.to_string();
    let output = Command::new("mksquashfs")
        // mksquashfs 4.5 refuses -mkfs-time/-all-time when SOURCE_DATE_EPOCH is set too (as it
        // is for a reproducible `atomix image build`); the options say the same.
        .env_remove("SOURCE_DATE_EPOCH")
        .arg(dir)
        .arg(out)
        .args(["-comp", "zstd", "-b", "1M", "-noappend", "-no-xattrs"])
        .args([
            "-mkfs-time",
            &epoch,
            "-all-time",
            &epoch,
            "-quiet",
            "-no-progress",
        ])
        .output()
        .map_err(|source| DiskError::MksquashfsSpawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(DiskError::Mksquashfs {
            dir: dir.to_path_buf(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Checks that `path` is a squashfs that fits `layout`'s rootfs slot; returns its size.
pub fn check_rootfs(layout: &DiskLayout, path: &Path) -> Result<u64, DiskError> {
    check_squashfs(path, layout.rootfs_slot()?)
}

/// What a squashfs superblock says about how the image was packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquashfsInfo {
    /// Compressor name as `unsquashfs -s` prints it (`zstd`, `gzip`, ...).
    pub compression: String,
    /// Data block size in bytes.
    pub block_size: u32,
}

/// Reads the compressor and block size from the squashfs superblock of `path`.
pub fn squashfs_info(path: &Path) -> Result<SquashfsInfo, DiskError> {
    let failed = |source| DiskError::RootfsRead {
        path: path.to_path_buf(),
        source,
    };
    let mut sb = [0u8; 32];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut sb))
        .map_err(failed)?;
    if sb[..4] != squashfs::MAGIC {
        return Err(DiskError::NotSquashfs {
            path: path.to_path_buf(),
        });
    }
    let block_size = u32::from_le_bytes([sb[12], sb[13], sb[14], sb[15]]);
    let compression = match u16::from_le_bytes([sb[20], sb[21]]) {
        1 => "gzip".to_owned(),
        2 => "lzma".to_owned(),
        3 => "lzo".to_owned(),
        4 => "xz".to_owned(),
        5 => "lz4".to_owned(),
        6 => "zstd".to_owned(),
        other => format!("unknown ({other})"),
    };
    Ok(SquashfsInfo {
        compression,
        block_size,
    })
}

/// Size and SHA-256 (lowercase hex) of the file at `path`; holes are hashed without being read.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((meta.len(), sha256_of(&file, meta.len())?))
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the magic and that the image fits the slot; returns its size.
fn check_squashfs(path: &Path, slot: &PartitionLayout) -> Result<u64, DiskError> {
    squashfs::check(path, slot.size).map_err(|unfit| match unfit {
        Unfit::Read(source) => DiskError::RootfsRead {
            path: path.to_path_buf(),
            source,
        },
        Unfit::NotSquashfs => DiskError::NotSquashfs {
            path: path.to_path_buf(),
        },
        Unfit::TooLarge { size } => DiskError::RootfsTooLarge {
            path: path.to_path_buf(),
            size,
            slot: slot.size,
            label: slot.label.clone(),
        },
    })
}

/// Formats the boot vfat and writes the boot files into its root directory: the file-backed
/// ones in their order, then the generated ones in theirs.
fn write_vfat(
    file: &File,
    part: &PartitionLayout,
    volume_label: [u8; 11],
    spec: &DiskSpec,
) -> Result<(), DiskError> {
    let options = vfat::VfatOptions {
        volume_label,
        volume_id: volume_id(&spec.seed, &part.label),
        fat_type: Some(fatfs::FatType::Fat16),
        time: spec.epoch,
    };
    let copied: Vec<(String, PathBuf)> = spec
        .boot_files
        .iter()
        .filter_map(|(name, source)| match source {
            BootSource::File(path) => Some((name.clone(), path.clone())),
            BootSource::Bytes(_) => None,
        })
        .collect();
    let label = || part.label.clone();
    let mapped = |e| match e {
        VfatError::OpenFile { name, path, source } => DiskError::BootFile { name, path, source },
        VfatError::WriteFile { name, source } => DiskError::VfatFile {
            name,
            label: label(),
            source,
        },
        VfatError::Format { source, .. } => DiskError::FormatVfat {
            label: label(),
            source,
        },
        VfatError::Label { label } => DiskError::VolumeLabel { label },
        other => DiskError::Vfat {
            label: label(),
            source: other,
        },
    };
    vfat::format(file, part.start, part.size, &options, &copied).map_err(mapped)?;
    for (name, source) in &spec.boot_files {
        if let BootSource::Bytes(data) = source {
            vfat::write_file(file, part.start, part.size, name, data, spec.epoch)
                .map_err(mapped)?;
        }
    }
    Ok(())
}

fn copy_rootfs(file: &File, sqfs: &Path, slot: &PartitionLayout) -> Result<(), DiskError> {
    squashfs::copy_into(file, sqfs, slot.start, slot.size).map_err(|source| {
        DiskError::CopyRootfs {
            label: slot.label.clone(),
            source,
        }
    })?;
    Ok(())
}

/// SHA-256 of the first `size` bytes of `file`, reading only its data extents: holes are hashed
/// as the zeros they read as, without reading them (a 1.2 GiB image is mostly holes).
fn sha256_of(file: &File, size: u64) -> io::Result<String> {
    const CHUNK: u64 = 4 * MIB;
    let zeros = vec![0u8; CHUNK as usize];
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hasher = Sha256::new();
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
            Ok(at) => at.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        while pos < data {
            let n = (data - pos).min(CHUNK);
            hasher.update(&zeros[..n as usize]);
            pos += n;
        }
        if pos == size {
            break;
        }
        let hole = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(pos))?.min(size);
        while pos < hole {
            let n = (hole - pos).min(CHUNK);
            file.read_exact_at(&mut buf[..n as usize], pos)?;
            hasher.update(&buf[..n as usize]);
            pos += n;
        }
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_end_and_table() {
        let layout = DiskLayout::atomix();
        assert_eq!(layout.end(), 1169 * MIB);
        let t = layout.table(layout.end(), "s").unwrap();
        assert_eq!(t.first_usable_lba, 32768);
        assert_eq!(t.partitions[0].first_lba, 32768);
        assert_eq!(t.partitions[0].last_lba, 294_911);
        assert_eq!(t.partitions[1].first_lba, 294_912);
        assert_eq!(t.partitions[1].last_lba, 2_392_063);
        assert_eq!(t.last_usable_lba, 1169 * MIB / 512 - 34);
    }

    #[test]
    fn overlapping_layout_is_refused_naming_the_partition() {
        let mut layout = DiskLayout::atomix();
        layout.partitions[1].start -= MIB;
        let err = layout.table(layout.end(), "s").unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("rootfs-a") && chain.contains("boot-a"),
            "{chain}"
        );
    }

    #[test]
    fn fat_labels() {
        assert_eq!(&fat_label("BOOT-A").unwrap(), b"BOOT-A     ");
        assert!(fat_label("boot-a").is_err());
        assert!(fat_label("TWELVE-CHARS").is_err());
        assert!(fat_label("").is_err());
    }
}
