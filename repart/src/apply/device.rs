//! Making file systems on a block device: through the partition device the kernel was told
//! about, then `MakeDirectories=` on the mounted f2fs. Must not: write the partition table.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::kernel::KernelDisk;
use super::mkfs::{f2fs_options, vfat_dirs_outcome, vfat_options};
use super::sload::sload_dirs;
use super::{ApplyError, ApplyOptions, MakeDirsOutcome, PendingFormat};
use crate::definitions::Format;
use crate::plan::{Action, Plan};
use crate::vfat;

/// Block device: announce the partition, format through `/dev/<part>`, make the directories.
pub(super) fn format_on_device(
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
pub(super) fn make_dirs_mounted(
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
pub(super) fn make_dirs_in(
    root: &Path,
    action: &Action,
    f: &PendingFormat,
) -> Result<(), ApplyError> {
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
