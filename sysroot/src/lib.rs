//! Slot mount, overlay root assembly and `switch_root` for the AtomixOS `/init`.
//!
//! Owns: mounting the read-only slot filesystem ([`mount_lower`]), building the writable root as
//! OverlayFS over a tmpfs ([`assemble_overlay`]), and handing the machine over to that root
//! ([`switch_root`], with the initramfs clean-up [`free_initramfs`] as its own testable step).
//! Every failed system call is one [`SysrootError`] variant carrying the paths involved.
//!
//! Must not: know about partitions, boards, device discovery or boot stages. It is given paths
//! and filesystem types and mounts them; the caller decides which.
//!
//! All system calls go through rustix's safe wrappers; this crate has no `unsafe`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Dir, Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};

/// `RAMFS_MAGIC` from `linux/magic.h`: the filesystem type of the kernel's rootfs.
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// `TMPFS_MAGIC` from `linux/magic.h`: rootfs is a tmpfs when the kernel has `CONFIG_TMPFS`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A failed step of mounting or switching the root. One variant per failed operation.
#[derive(Debug, thiserror::Error)]
pub enum SysrootError {
    /// `mkdir -p` of a mount point (or of an overlay directory) failed.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The read-only mount of the slot device failed.
    #[error("cannot mount {} ({fstype}) read-only at {}", device.display(), target.display())]
    MountLower {
        /// The block device (or image) that was mounted.
        device: PathBuf,
        /// The filesystem type asked for.
        fstype: String,
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The tmpfs that holds the overlay's upper and work directories could not be mounted.
    #[error("cannot mount tmpfs at {}", target.display())]
    MountTmpfs {
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path cannot be written into overlayfs mount options.
    #[error("path {} cannot be used in overlay options ({problem})", path.display())]
    OverlayPath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The overlay mount itself failed.
    #[error(
        "cannot mount overlay at {} (lowerdir={}, upperdir={}, workdir={})",
        target.display(),
        lower.display(),
        upper.display(),
        work.display()
    )]
    MountOverlay {
        /// The lower (read-only) directory.
        lower: PathBuf,
        /// The upper (writable) directory.
        upper: PathBuf,
        /// The overlay work directory.
        work: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Making `/` recursively private (needed for `MS_MOVE`) failed.
    #[error("cannot make / recursively private")]
    MakePrivate {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `stat`/`statfs` of a path needed for the safety checks failed.
    #[error("cannot stat {}", path.display())]
    Stat {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `/` is not a ramfs/tmpfs, so deleting its contents would destroy a real filesystem.
    #[error(
        "refusing to switch root: / is not the initramfs (filesystem magic {magic:#x}, expected ramfs or tmpfs)"
    )]
    NotInitramfs {
        /// The `f_type` that `statfs("/")` reported.
        magic: i64,
    },
    /// The new root is on the same filesystem as `/`, i.e. nothing is mounted there.
    #[error("new root {} is not a mount point", new_root.display())]
    NewRootNotMounted {
        /// The new root that was given.
        new_root: PathBuf,
    },
    /// An API filesystem (`/dev`, `/proc`, ...) could not be moved under the new root.
    #[error("cannot move mount {} to {}", from.display(), to.display())]
    MoveMount {
        /// The mount point it was at.
        from: PathBuf,
        /// The mount point under the new root.
        to: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A directory of the old root could not be listed while freeing it.
    #[error("cannot list {} while freeing the initramfs", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry of the old root could not be deleted while freeing it.
    #[error("cannot delete {} while freeing the initramfs", path.display())]
    Remove {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `chdir` failed.
    #[error("cannot change directory to {}", path.display())]
    Chdir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Moving the new root onto `/` (`mount --move . /`) failed.
    #[error("cannot move new root {} onto /", new_root.display())]
    MoveRoot {
        /// The new root.
        new_root: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `chroot(".")` into the new root failed.
    #[error("cannot chroot into {}", new_root.display())]
    Chroot {
        /// The new root.
        new_root: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn create_dir_all(path: &Path) -> Result<(), SysrootError> {
    fs::create_dir_all(path).map_err(|source| SysrootError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Mounts `device` read-only (`MS_RDONLY`) as `fstype` at `target`, creating `target` (and its
/// parents) first.
///
/// `device` is used as given; resolving `PARTLABEL=` and friends is the caller's job.
///
/// # Errors
///
/// [`SysrootError::CreateDir`] if `target` cannot be created, [`SysrootError::MountLower`] (naming
/// device, fstype and target) if the mount fails.
pub fn mount_lower(device: &Path, fstype: &str, target: &Path) -> Result<(), SysrootError> {
    create_dir_all(target)?;
    rustix::mount::mount(device, target, fstype, MountFlags::RDONLY, None).map_err(|e| {
        SysrootError::MountLower {
            device: device.to_path_buf(),
            fstype: fstype.to_owned(),
            target: target.to_path_buf(),
            source: e.into(),
        }
    })?;
    log::debug!(
        "mounted {} ({fstype}) read-only at {}",
        device.display(),
        target.display()
    );
    Ok(())
}

/// Checks that `path` can be written into an overlayfs option string unescaped.
fn overlay_option_path(path: &Path) -> Result<&str, SysrootError> {
    let bad = |problem| SysrootError::OverlayPath {
        path: path.to_path_buf(),
        problem,
    };
    let s = path.to_str().ok_or_else(|| bad("not UTF-8"))?;
    if s.contains([',', ':', '\\', '\0']) {
        return Err(bad("contains ',', ':', '\\' or NUL"));
    }
    Ok(s)
}

/// The option string for an overlay mount of `lower` with `upper` and `work`.
fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Result<CString, SysrootError> {
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        overlay_option_path(lower)?,
        overlay_option_path(upper)?,
        overlay_option_path(work)?
    );
    // The paths were checked for NUL above, so this cannot fail; map it anyway instead of
    // unwrapping.
    CString::new(data).map_err(|_| SysrootError::OverlayPath {
        path: lower.to_path_buf(),
        problem: "contains NUL",
    })
}

/// Builds the writable root: a tmpfs (mode 0755) at `overlay_root` with directories `upper` and
/// `work`, and an overlay at `target` (created if missing) with
/// `lowerdir=<lower>,upperdir=<overlay_root>/upper,workdir=<overlay_root>/work`.
///
/// # Errors
///
/// [`SysrootError::CreateDir`], [`SysrootError::MountTmpfs`], [`SysrootError::OverlayPath`] (a path
/// containing `,` `:` or `\`), or [`SysrootError::MountOverlay`].
pub fn assemble_overlay(
    lower: &Path,
    overlay_root: &Path,
    target: &Path,
) -> Result<(), SysrootError> {
    let upper = overlay_root.join("upper");
    let work = overlay_root.join("work");
    let data = overlay_options(lower, &upper, &work)?;

    create_dir_all(overlay_root)?;
    rustix::mount::mount(
        "tmpfs",
        overlay_root,
        "tmpfs",
        MountFlags::empty(),
        c"mode=0755",
    )
    .map_err(|e| SysrootError::MountTmpfs {
        target: overlay_root.to_path_buf(),
        source: e.into(),
    })?;
    create_dir_all(&upper)?;
    create_dir_all(&work)?;
    create_dir_all(target)?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| SysrootError::MountOverlay {
        lower: lower.to_path_buf(),
        upper: upper.clone(),
        work: work.clone(),
        target: target.to_path_buf(),
        source: e.into(),
    })?;
    log::debug!(
        "overlay at {} (lower {}, upper {})",
        target.display(),
        lower.display(),
        upper.display()
    );
    Ok(())
}

/// What [`free_initramfs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freed {
    /// Files, links and directories deleted.
    pub removed: u64,
    /// Entries left alone: mount points of other filesystems, the kept path, and directories that
    /// still contain one of those.
    pub kept: Vec<PathBuf>,
}

/// Deletes everything below `root` that is on the same filesystem as `root`, like busybox
/// `switch_root` does to free the initramfs memory.
///
/// It never crosses into another filesystem: an entry whose `st_dev` differs from `root`'s (a
/// mount point) is skipped with everything below it. `keep` (normally the new root) is skipped
/// too, compared by device and inode, so it is kept even if nothing is mounted on it yet.
/// Directories that still hold a skipped entry stay. Symbolic links are deleted, never followed.
/// `root` itself is not deleted.
///
/// # Errors
///
/// [`SysrootError::Stat`] if `root` cannot be inspected, [`SysrootError::ReadDir`] or
/// [`SysrootError::Remove`] for an entry that cannot be listed or deleted (a directory that is
/// not empty or busy because it holds a kept entry is not an error).
pub fn free_initramfs(root: &Path, keep: &Path) -> Result<Freed, SysrootError> {
    let stat_err = |source: rustix::io::Errno| SysrootError::Stat {
        path: root.to_path_buf(),
        source: source.into(),
    };
    let root_fd = open_dir(CWD, root).map_err(stat_err)?;
    let root_dev = rustix::fs::fstat(&root_fd).map_err(stat_err)?.st_dev;
    // The kept path may not exist (then there is nothing to protect).
    let keep_id = fs::symlink_metadata(keep).ok().map(|m| (m.dev(), m.ino()));
    let mut freed = Freed::default();
    remove_children(root_fd, root, dev_id(root_dev), keep_id, &mut freed)?;
    Ok(freed)
}

/// `st_dev` as `u64` (it is `u64` on 64-bit Linux, narrower on some 32-bit targets).
#[allow(clippy::useless_conversion)]
fn dev_id(dev: rustix::fs::Dev) -> u64 {
    u64::from(dev)
}

/// Opens the directory `name` (relative to `at`) without following a symbolic link.
fn open_dir<Fd: AsFd>(at: Fd, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Deletes what [`free_initramfs`] deletes below the open directory `dir_fd` (at `dir`).
///
/// It works on directory descriptors (`getdents`, `unlinkat`, `fstatat`) rather than paths, and
/// takes the entry type from `getdents`: a file is unlinked without a `stat` first. Unlinking
/// cannot cross into another filesystem (a file with something mounted on it is `EBUSY`, kept),
/// so only directories are checked for their device (and against `keep`) before descending.
/// Under QEMU TCG every system call costs a fraction of a millisecond, and this halves them.
fn remove_children(
    dir_fd: OwnedFd,
    dir: &Path,
    dev: u64,
    keep: Option<(u64, u64)>,
    freed: &mut Freed,
) -> Result<(), SysrootError> {
    use rustix::fs::{AtFlags, FileType};
    use rustix::io::Errno;

    let read_dir_err = |source: Errno| SysrootError::ReadDir {
        path: dir.to_path_buf(),
        source: source.into(),
    };
    let mut entries = Dir::new(dir_fd).map_err(read_dir_err)?;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(read_dir_err)?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let path = || dir.join(OsStr::from_bytes(name.to_bytes()));
        let fd = entries.fd().map_err(read_dir_err)?;
        let stat = || {
            rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|source| {
                SysrootError::Stat {
                    path: path(),
                    source: source.into(),
                }
            })
        };
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            // A filesystem that does not fill in `d_type`.
            FileType::Unknown => FileType::from_raw_mode(stat()?.st_mode) == FileType::Directory,
            _ => false,
        };
        // Only a directory is ever kept, except a file that is `keep` itself.
        if is_dir || keep.is_some_and(|(_, ino)| ino == entry.ino()) {
            let st = stat()?;
            let id = (dev_id(st.st_dev), st.st_ino);
            if id.0 != dev || Some(id) == keep {
                freed.kept.push(path());
                continue;
            }
        }
        if !is_dir {
            match rustix::fs::unlinkat(fd, name, AtFlags::empty()) {
                Ok(()) => freed.removed += 1,
                // Something is mounted on it: another filesystem, left alone.
                Err(Errno::BUSY) => freed.kept.push(path()),
                Err(source) => {
                    return Err(SysrootError::Remove {
                        path: path(),
                        source: source.into(),
                    });
                }
            }
            continue;
        }
        let sub = open_dir(fd, name).map_err(|source| SysrootError::ReadDir {
            path: path(),
            source: source.into(),
        })?;
        remove_children(sub, &path(), dev, keep, freed)?;
        match rustix::fs::unlinkat(fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => freed.removed += 1,
            // Still holds a mount point or the kept path.
            Err(Errno::NOTEMPTY | Errno::BUSY) => freed.kept.push(path()),
            Err(source) => {
                return Err(SysrootError::Remove {
                    path: path(),
                    source: source.into(),
                });
            }
        }
    }
    Ok(())
}

/// Hands the machine over to `new_root` (a mount point, normally the overlay at `/sysroot`).
///
/// In order:
/// 1. makes `/` recursively private (`MS_MOVE` is refused under shared propagation);
/// 2. checks that `/` is the initramfs (ramfs or tmpfs) and that `new_root` is a mount point, so
///    the deletion below can never hit a real filesystem;
/// 3. moves each mount in `moves` (e.g. `["/dev", "/proc", "/sys", "/run"]`) to the same path
///    under `new_root` with `MS_MOVE`, creating the mount point there if missing;
/// 4. deletes the initramfs contents with [`free_initramfs`]`("/", new_root)`, never crossing
///    into another filesystem;
/// 5. `chdir(new_root)`, `mount --move . /`, `chroot(".")`, `chdir("/")`.
///
/// It does not exec: the caller execs the real init (keeping its PID). On return the process's
/// root and working directory are the new root.
///
/// # Errors
///
/// The variant of the first step that failed; the machine is then in a partial state and the
/// caller should treat it as fatal.
pub fn switch_root(new_root: &Path, moves: &[&str]) -> Result<(), SysrootError> {
    let root = Path::new("/");
    rustix::mount::mount_change(
        root,
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| SysrootError::MakePrivate { source: e.into() })?;

    let fs = rustix::fs::statfs(root).map_err(|e| SysrootError::Stat {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    // `f_type` is `c_long` on 64-bit targets but narrower on some 32-bit ones.
    #[allow(clippy::useless_conversion)]
    let magic = i64::from(fs.f_type);
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return Err(SysrootError::NotInitramfs { magic });
    }
    let stat = |path: &Path| {
        fs::metadata(path).map_err(|source| SysrootError::Stat {
            path: path.to_path_buf(),
            source,
        })
    };
    if stat(new_root)?.dev() == stat(root)?.dev() {
        return Err(SysrootError::NewRootNotMounted {
            new_root: new_root.to_path_buf(),
        });
    }

    for m in moves {
        let from = Path::new(m);
        let to = new_root.join(m.trim_start_matches('/'));
        create_dir_all(&to)?;
        rustix::mount::mount_move(from, &to).map_err(|e| SysrootError::MoveMount {
            from: from.to_path_buf(),
            to: to.clone(),
            source: e.into(),
        })?;
        log::debug!("moved {} to {}", from.display(), to.display());
    }

    let freed = free_initramfs(root, new_root)?;
    log::debug!(
        "freed the initramfs: {} entries deleted, {} kept",
        freed.removed,
        freed.kept.len()
    );

    let chdir = |path: &Path| {
        rustix::process::chdir(path).map_err(|e| SysrootError::Chdir {
            path: path.to_path_buf(),
            source: e.into(),
        })
    };
    chdir(new_root)?;
    rustix::mount::mount_move(".", "/").map_err(|e| SysrootError::MoveRoot {
        new_root: new_root.to_path_buf(),
        source: e.into(),
    })?;
    rustix::process::chroot(".").map_err(|e| SysrootError::Chroot {
        new_root: new_root.to_path_buf(),
        source: e.into(),
    })?;
    chdir(root)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn free_initramfs_deletes_all_but_keep() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        touch(&root.join("init"));
        touch(&root.join("etc/atomix/modules.load"));
        touch(&root.join("lib/modules/x/a.ko"));
        touch(&root.join("sysroot/must-stay"));
        fs::create_dir_all(root.join("empty/dir")).unwrap();
        // A symlink pointing outside: deleted, its target untouched.
        let outside = t.path().join("outside");
        touch(&outside.join("precious"));
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let freed = free_initramfs(&root, &root.join("sysroot")).unwrap();

        let left: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["sysroot".to_string()]);
        assert!(root.join("sysroot/must-stay").exists());
        assert!(outside.join("precious").exists());
        assert!(root.exists());
        // init, etc, etc/atomix, modules.load, lib, lib/modules, lib/modules/x, a.ko, empty,
        // empty/dir, link
        assert_eq!(freed.removed, 11);
        assert_eq!(freed.kept, vec![root.join("sysroot")]);
    }

    #[test]
    fn free_initramfs_keeps_parents_of_keep() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        touch(&root.join("a/b/keep/file"));
        touch(&root.join("a/gone"));
        let freed = free_initramfs(root, &root.join("a/b/keep")).unwrap();
        assert!(root.join("a/b/keep/file").exists());
        assert!(!root.join("a/gone").exists());
        assert!(freed.kept.contains(&root.join("a")));
    }

    #[test]
    fn free_initramfs_missing_root_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let err = free_initramfs(&t.path().join("nope"), Path::new("/sysroot")).unwrap_err();
        assert!(matches!(err, SysrootError::Stat { .. }), "{err}");
    }

    #[test]
    fn mount_lower_error_names_device_fstype_target() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("run/rootfs-base");
        let err =
            mount_lower(Path::new("/dev/atomix-no-such-device"), "squashfs", &target).unwrap_err();
        assert!(target.is_dir(), "target created");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot mount /dev/atomix-no-such-device (squashfs) read-only at {}",
                target.display()
            )
        );
        assert!(err.source().is_some());
    }

    #[test]
    fn overlay_options_reject_separators() {
        let ok =
            overlay_options(Path::new("/l"), Path::new("/o/upper"), Path::new("/o/work")).unwrap();
        assert_eq!(
            ok.to_str().unwrap(),
            "lowerdir=/l,upperdir=/o/upper,workdir=/o/work"
        );
        for bad in ["/a,b", "/a:b", "/a\\b"] {
            let err =
                overlay_options(Path::new(bad), Path::new("/u"), Path::new("/w")).unwrap_err();
            assert!(matches!(err, SysrootError::OverlayPath { .. }), "{bad}");
        }
    }
}
