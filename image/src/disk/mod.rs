//! Disk image assembly: raw loader files, GPT, boot vfat and rootfs squashfs in one sparse,
//! reproducible file.
//!
//! The partition layout comes from a [`DiskLayout`] value, made from the board's repart.d
//! definitions ([`DiskLayout::for_board`]: `boot-a` and `rootfs-a` after the raw region;
//! `crate::flashable::layout` adds the board's reserved ranges). The raw region below the first partition holds [`DiskSpec::loader`] files at their
//! byte offsets, each checked to lie between the primary GPT and the first usable byte and to
//! overlap neither another loader file nor a [`DiskLayout::reserved`] range (such as a U-Boot
//! environment, left as zeros). All of this is plain data: which board wants which files is
//! `crate::flashable`'s business. The GPT is written by `atomix_repart::gpt`; the vfat by
//! `atomix_repart::vfat` (the `fatfs` crate inside a partition-sized window of the image; files
//! in its root directory only); the squashfs by `mksquashfs` (or taken ready-made) and copied
//! into its slot.
//!
//! Files: this one builds the image from a [`DiskSpec`]; `layout` owns the layout and its
//! derivation from the definitions; `rootfs` packs, checks and copies the squashfs; `hash`
//! hashes sparse files; `error` holds the error types.
//!
//! Reproducibility: GUIDs and the vfat volume id derive from [`DiskSpec::seed`], every timestamp
//! from [`DiskSpec::epoch`]; unused space is left as holes (never written). The image is built
//! in a temporary file beside the output and renamed into place only when complete
//! ([`build`], or [`build_pending`] + [`PendingImage::persist`] for a caller that writes a
//! companion file first).

mod error;
mod hash;
pub mod layout;
mod rootfs;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use atomix_repart::gpt;
use atomix_repart::vfat::{self, VfatError};
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

pub use error::{DiskError, LayoutError};
pub use hash::{sha256_file, sha256_hex};
pub use layout::{
    Carried, Content, DiskLayout, IMAGE_TAIL, PartitionLayout, Reserved, disk_guid,
    from_definitions, image_partitions, partition_uuid,
};
pub use rootfs::{SquashfsInfo, check_rootfs, pack_rootfs, squashfs_info};

use hash::sha256_of;
use layout::volume_id;
use rootfs::{check_squashfs, copy_rootfs};

const SECTOR: u64 = 512;
/// The primary GPT (protective MBR, header, 128 entries of 128 bytes) ends here: the raw region
/// starts after it.
pub const PRIMARY_GPT_END: u64 = 34 * SECTOR;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_labels() {
        assert_eq!(&fat_label("BOOT-A").unwrap(), b"BOOT-A     ");
        assert!(fat_label("boot-a").is_err());
        assert!(fat_label("TWELVE-CHARS").is_err());
        assert!(fat_label("").is_err());
    }
}
