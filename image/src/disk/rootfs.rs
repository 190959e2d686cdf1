//! The rootfs squashfs of an image: packed from a directory with `mksquashfs`, checked against
//! its slot, described from its superblock, copied into the slot.
//!
//! Must not: build or modify squashfs contents itself (that is `mksquashfs`'s).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{DiskError, DiskLayout, PartitionLayout};
use crate::squashfs::{self, Unfit};

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

/// Checks the magic and that the image fits the slot; returns its size.
pub(super) fn check_squashfs(path: &Path, slot: &PartitionLayout) -> Result<u64, DiskError> {
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

pub(super) fn copy_rootfs(
    file: &File,
    sqfs: &Path,
    slot: &PartitionLayout,
) -> Result<(), DiskError> {
    squashfs::copy_into(file, sqfs, slot.start, slot.size).map_err(|source| {
        DiskError::CopyRootfs {
            label: slot.label.clone(),
            source,
        }
    })?;
    Ok(())
}
