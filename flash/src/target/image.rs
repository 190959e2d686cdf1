//! The image to write ([`Image::open`]), and what file a path is ([`Identity`]: the same file
//! must never be both the image and the target).

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::FlashError;
use crate::host::DevNum;

/// What a file is, for comparing the image with the target (the same file must never be both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A file in a file system: its device and inode.
    Inode {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
    /// A block device: its device number.
    Device(DevNum),
}

pub(super) fn identity(meta: &fs::Metadata) -> Identity {
    if meta.file_type().is_block_device() {
        Identity::Device(DevNum::from_raw(meta.rdev()))
    } else {
        Identity::Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The image to write: a regular file (or a block device, to copy one disk to another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// As given.
    pub path: PathBuf,
    /// Size in bytes: everything is written, holes of a sparse file as zeros.
    pub bytes: u64,
    /// What file it is.
    #[serde(skip)]
    pub identity: Identity,
}

impl Image {
    /// Looks at the image (nothing is read yet).
    ///
    /// # Errors
    /// [`FlashError::Image`] when it cannot be opened or sized (`NotFound` when it does not
    /// exist), [`FlashError::ImageKind`] when it is neither a regular file nor a block device.
    pub fn open(path: &Path) -> Result<Self, FlashError> {
        let err = |source| FlashError::Image {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(err)?;
        let kind = meta.file_type();
        let bytes = if kind.is_file() {
            meta.len()
        } else if kind.is_block_device() {
            device_bytes(path).map_err(err)?
        } else {
            return Err(FlashError::ImageKind {
                path: path.to_owned(),
                what: kind_name(&meta),
            });
        };
        Ok(Self {
            path: path.to_owned(),
            bytes,
            identity: identity(&meta),
        })
    }
}

/// The size of a block device: the end offset of a seek to its end (what `BLKGETSIZE64` says,
/// without an ioctl).
fn device_bytes(path: &Path) -> io::Result<u64> {
    File::open(path)?.seek(SeekFrom::End(0))
}

pub(super) fn kind_name(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}
