//! The I/O layer of the store: every filesystem operation the config root store performs goes
//! through [`Fs`], so tests can stop a promotion after any operation ([`super::FaultFs`]) and
//! check what recovery makes of the remains. [`RealFs`] is the implementation on `std`.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The operation that failed, for [`FsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOp {
    /// `mkdir`.
    CreateDir,
    /// Create, write and fsync a file.
    WriteFile,
    /// `rename`.
    Rename,
    /// `unlink`.
    RemoveFile,
    /// `rmdir`.
    RemoveDir,
    /// fsync of a directory.
    FsyncDir,
    /// fsync of a file.
    FsyncFile,
    /// `chown`.
    Chown,
    /// `chmod`.
    SetMode,
    /// `symlink`.
    Symlink,
    /// `readdir`.
    ReadDir,
    /// Reading a file.
    Read,
    /// `readlink`.
    ReadLink,
    /// `lstat`.
    Metadata,
}

impl fmt::Display for FsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateDir => "create directory",
            Self::WriteFile => "write",
            Self::Rename => "rename",
            Self::RemoveFile => "remove",
            Self::RemoveDir => "remove directory",
            Self::FsyncDir => "fsync directory",
            Self::FsyncFile => "fsync",
            Self::Chown => "chown",
            Self::SetMode => "chmod",
            Self::Symlink => "create symlink",
            Self::ReadDir => "read directory",
            Self::Read => "read",
            Self::ReadLink => "read symlink",
            Self::Metadata => "stat",
        })
    }
}

/// A failed filesystem operation: what, on which path (and, for a rename or symlink, the
/// second path), and the OS error as the source.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}{}", path.display(), ToSuffix(to.as_deref()))]
pub struct FsError {
    /// The operation.
    pub op: FsOp,
    /// The path it acted on.
    pub path: PathBuf,
    /// The target of a rename or symlink.
    pub to: Option<PathBuf>,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Formats the second path of an [`FsError`] (` to <path>`), if any.
struct ToSuffix<'a>(Option<&'a Path>);

impl fmt::Display for ToSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(to) => write!(f, " to {}", to.display()),
            None => Ok(()),
        }
    }
}

impl FsError {
    /// An error of `op` on `path`.
    pub fn new(op: FsOp, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_owned(),
            to: None,
            source,
        }
    }

    /// An error of `op` from `path` to `to` (rename, symlink).
    pub fn new2(op: FsOp, path: &Path, to: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_owned(),
            to: Some(to.to_owned()),
            source,
        }
    }
}

/// What kind of entry a path is (without following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// The facts the store needs about an entry (`lstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The kind of entry.
    pub kind: Kind,
    /// The permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The group.
    pub gid: u32,
}

/// The filesystem operations of the store. Mutating operations are the ones a crash can fall
/// between; reads never change anything.
///
/// `remove_dir_all` is provided on top of the primitives so that a fault-injecting
/// implementation can stop a recursive removal half-way, as a crash would.
pub trait Fs {
    /// Creates one directory with exactly `mode` (not masked by the umask). Fails if it exists.
    fn create_dir(&self, path: &Path, mode: u32) -> Result<(), FsError>;
    /// Creates (or truncates) `path` with exactly `mode`, writes `contents` and fsyncs the file.
    /// Not atomic: a crash can leave a short file (see [`super::tree::write_atomic`]).
    fn write_file(&self, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError>;
    /// `rename(2)`: atomic replacement of a file or an empty directory.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError>;
    /// Removes a file or symlink.
    fn remove_file(&self, path: &Path) -> Result<(), FsError>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> Result<(), FsError>;
    /// fsyncs a directory, making the entries created, renamed or removed in it durable.
    fn fsync_dir(&self, path: &Path) -> Result<(), FsError>;
    /// fsyncs a file's contents.
    fn fsync_file(&self, path: &Path) -> Result<(), FsError>;
    /// Sets the owner of `path` (not following a final symlink).
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FsError>;
    /// Sets the permission bits of `path`.
    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), FsError>;
    /// Creates a symlink at `path` pointing to `target`.
    fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError>;
    /// The names in a directory, sorted.
    fn read_dir(&self, path: &Path) -> Result<Vec<String>, FsError>;
    /// A whole file.
    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError>;
    /// The target of a symlink.
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError>;
    /// `lstat`, or `None` if nothing is there.
    fn metadata(&self, path: &Path) -> Result<Option<Metadata>, FsError>;

    /// Whether anything (even a dangling symlink) is at `path`.
    fn exists(&self, path: &Path) -> Result<bool, FsError> {
        Ok(self.metadata(path)?.is_some())
    }

    /// Removes `path` and everything below it, one entry at a time; nothing there is fine.
    /// Symlinks are removed, never followed.
    fn remove_dir_all(&self, path: &Path) -> Result<(), FsError> {
        let Some(meta) = self.metadata(path)? else {
            return Ok(());
        };
        if meta.kind != Kind::Dir {
            return self.remove_file(path);
        }
        for name in self.read_dir(path)? {
            self.remove_dir_all(&path.join(name))?;
        }
        self.remove_dir(path)
    }
}

/// [`Fs`] on the real filesystem through `std`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn create_dir(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        let err = |e| FsError::new(FsOp::CreateDir, path, e);
        DirBuilder::new().mode(mode).create(path).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
    }

    fn write_file(&self, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError> {
        let err = |e| FsError::new(FsOp::WriteFile, path, e);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(err)?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        fs::rename(from, to).map_err(|e| FsError::new2(FsOp::Rename, from, to, e))
    }

    fn remove_file(&self, path: &Path) -> Result<(), FsError> {
        fs::remove_file(path).map_err(|e| FsError::new(FsOp::RemoveFile, path, e))
    }

    fn remove_dir(&self, path: &Path) -> Result<(), FsError> {
        fs::remove_dir(path).map_err(|e| FsError::new(FsOp::RemoveDir, path, e))
    }

    fn fsync_dir(&self, path: &Path) -> Result<(), FsError> {
        let err = |e| FsError::new(FsOp::FsyncDir, path, e);
        fs::File::open(path).map_err(err)?.sync_all().map_err(err)
    }

    fn fsync_file(&self, path: &Path) -> Result<(), FsError> {
        let err = |e| FsError::new(FsOp::FsyncFile, path, e);
        fs::File::open(path).map_err(err)?.sync_all().map_err(err)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FsError> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| FsError::new(FsOp::Chown, path, e))
    }

    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| FsError::new(FsOp::SetMode, path, e))
    }

    fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError> {
        std::os::unix::fs::symlink(target, path)
            .map_err(|e| FsError::new2(FsOp::Symlink, path, target, e))
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>, FsError> {
        let err = |e| FsError::new(FsOp::ReadDir, path, e);
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(err)? {
            let name = entry.map_err(err)?.file_name();
            let name = name.into_string().map_err(|name| {
                err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry name {name:?} is not UTF-8"),
                ))
            })?;
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        fs::read(path).map_err(|e| FsError::new(FsOp::Read, path, e))
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        fs::read_link(path).map_err(|e| FsError::new(FsOp::ReadLink, path, e))
    }

    fn metadata(&self, path: &Path) -> Result<Option<Metadata>, FsError> {
        match fs::symlink_metadata(path) {
            Ok(meta) => {
                let ft = meta.file_type();
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else if ft.is_symlink() {
                    Kind::Symlink
                } else {
                    Kind::Other
                };
                Ok(Some(Metadata {
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::new(FsOp::Metadata, path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let d = dir.path().join("d");
        fs.create_dir(&d, 0o777).unwrap();
        assert_eq!(fs.metadata(&d).unwrap().unwrap().mode, 0o777);
        let f = d.join("f");
        fs.write_file(&f, 0o666, b"x").unwrap();
        let meta = fs.metadata(&f).unwrap().unwrap();
        assert_eq!((meta.kind, meta.mode), (Kind::File, 0o666));
        fs.write_file(&f, 0o600, b"yz").unwrap();
        assert_eq!(fs.metadata(&f).unwrap().unwrap().mode, 0o600);
        assert_eq!(fs.read(&f).unwrap(), b"yz");
        fs.fsync_dir(&d).unwrap();
        fs.fsync_file(&f).unwrap();
    }

    #[test]
    fn remove_dir_all_removes_links_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let keep = dir.path().join("keep");
        fs.create_dir(&keep, 0o755).unwrap();
        fs.write_file(&keep.join("f"), 0o600, b"k").unwrap();
        let tree = dir.path().join("tree");
        fs.create_dir(&tree, 0o700).unwrap();
        fs.create_dir(&tree.join("sub"), 0o700).unwrap();
        fs.write_file(&tree.join("sub/f"), 0o600, b"x").unwrap();
        fs.symlink(&keep, &tree.join("link")).unwrap();
        fs.remove_dir_all(&tree).unwrap();
        assert!(!fs.exists(&tree).unwrap());
        assert_eq!(fs.read(&keep.join("f")).unwrap(), b"k");
        fs.remove_dir_all(&tree).unwrap();
        let err = fs.read(&tree.join("nope")).unwrap_err();
        assert_eq!(err.op, FsOp::Read);
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }
}
