//! A ready squashfs going into a rootfs partition: the check that it is one and fits, and the
//! bounded copy. Shared by the image builder ([`crate::disk`]) and `write-slot`
//! ([`crate::slot`]), which map [`Unfit`] to their own errors.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The first bytes of every squashfs superblock.
pub(crate) const MAGIC: [u8; 4] = *b"hsqs";

/// Why a file cannot go into a rootfs partition.
#[derive(Debug)]
pub(crate) enum Unfit {
    /// It cannot be opened or read, or is not a regular file.
    Read(io::Error),
    /// It does not start with [`MAGIC`].
    NotSquashfs,
    /// It is `size` bytes, more than the room.
    TooLarge { size: u64 },
}

/// Checks that `path` is a regular file holding a squashfs of at most `room` bytes; returns
/// its size.
pub(crate) fn check(path: &Path, room: u64) -> Result<u64, Unfit> {
    let mut f = File::open(path).map_err(Unfit::Read)?;
    let meta = f.metadata().map_err(Unfit::Read)?;
    if !meta.is_file() {
        return Err(Unfit::Read(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) if magic == MAGIC => {}
        Ok(()) => return Err(Unfit::NotSquashfs),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Unfit::NotSquashfs),
        Err(e) => return Err(Unfit::Read(e)),
    }
    if meta.len() > room {
        return Err(Unfit::TooLarge { size: meta.len() });
    }
    Ok(meta.len())
}

/// Copies `src` to byte `start` of `dst`, never writing past `start + room` (an error when the
/// source has grown beyond it since [`check`]); returns the bytes copied.
pub(crate) fn copy_into(dst: &File, src: &Path, start: u64, room: u64) -> io::Result<u64> {
    let mut src = File::open(src)?;
    let mut dst = dst;
    dst.seek(SeekFrom::Start(start))?;
    let copied = io::copy(&mut (&mut src).take(room), &mut dst)?;
    if src.read(&mut [0u8; 1])? != 0 {
        return Err(io::Error::other(
            "the squashfs grew past the partition while being copied",
        ));
    }
    Ok(copied)
}
