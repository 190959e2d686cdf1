//! Making file systems on an image file: vfat straight into the partition's range, f2fs in a
//! temporary sparse file whose data extents are copied in, superblocks last. Must not: touch
//! the kernel (no BLKPG, no mount).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::mkfs::{f2fs_options, vfat_dirs_outcome, vfat_options};
use super::sload::sload_dirs;
use super::{ApplyError, ApplyOptions, MakeDirsOutcome, PendingFormat};
use crate::definitions::Format;
use crate::io::DiskIo;
use crate::plan::{Action, Plan};
use crate::vfat;

/// Copy chunk for f2fs metadata.
const COPY_CHUNK: u64 = 1 << 20;
/// The f2fs superblocks live at 1024 in blocks 0 and 1: copied last.
const F2FS_SUPERBLOCKS: u64 = 8192;

/// Image file: vfat straight into the range; f2fs in a temporary file copied in.
pub(super) fn format_on_image(
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
pub(super) fn scratch_dir(target: &Path, size: u64) -> PathBuf {
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

/// Copies the data extents of `src` (`size` bytes) to `io` at `start`; the f2fs superblock
/// blocks go last, so a cut leaves no superblock pointing at unwritten metadata. Returns the
/// bytes copied.
pub(super) fn copy_extents(src: &File, io: &dyn DiskIo, start: u64, size: u64) -> io::Result<u64> {
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
