//! A fault-injecting [`Fs`]: it performs the first `n` mutating operations on the wrapped
//! filesystem and fails every later one, as if the machine had stopped at that point. The
//! operation that hits the limit is torn where a crash could tear it: a [`Fs::write_file`]
//! leaves the first half of its contents, unsynced. Reads always go through.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fs::{Fs, FsError, FsOp, Metadata};

/// Wraps an [`Fs`] and fails every mutating operation after the first `limit`.
#[derive(Debug)]
pub struct FaultFs<F> {
    inner: F,
    limit: usize,
    done: AtomicUsize,
}

impl<F: Fs> FaultFs<F> {
    /// Lets `limit` mutating operations through, then fails.
    pub fn new(inner: F, limit: usize) -> Self {
        Self {
            inner,
            limit,
            done: AtomicUsize::new(0),
        }
    }

    /// How many mutating operations were performed (at most the limit).
    pub fn performed(&self) -> usize {
        self.done.load(Ordering::SeqCst).min(self.limit)
    }

    /// Whether some operation was refused.
    pub fn tripped(&self) -> bool {
        self.done.load(Ordering::SeqCst) > self.limit
    }

    /// Counts one operation: `Ok(true)` to perform it, `Ok(false)` for the one that hits the
    /// limit (the crash point), `Err` after that.
    fn step(&self, op: FsOp, path: &Path) -> Result<bool, FsError> {
        let n = self.done.fetch_add(1, Ordering::SeqCst);
        match n.cmp(&self.limit) {
            std::cmp::Ordering::Less => Ok(true),
            std::cmp::Ordering::Equal => Ok(false),
            std::cmp::Ordering::Greater => Err(injected(op, path)),
        }
    }
}

fn injected(op: FsOp, path: &Path) -> FsError {
    FsError::new(op, path, io::Error::other("injected fault"))
}

impl<F: Fs> Fs for FaultFs<F> {
    fn create_dir(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        if self.step(FsOp::CreateDir, path)? {
            self.inner.create_dir(path, mode)
        } else {
            Err(injected(FsOp::CreateDir, path))
        }
    }

    fn write_file(&self, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError> {
        if self.step(FsOp::WriteFile, path)? {
            self.inner.write_file(path, mode, contents)
        } else {
            // Torn: the file exists with part of its contents.
            let _ = self
                .inner
                .write_file(path, mode, &contents[..contents.len() / 2]);
            Err(injected(FsOp::WriteFile, path))
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        if self.step(FsOp::Rename, from)? {
            self.inner.rename(from, to)
        } else {
            Err(injected(FsOp::Rename, from))
        }
    }

    fn remove_file(&self, path: &Path) -> Result<(), FsError> {
        if self.step(FsOp::RemoveFile, path)? {
            self.inner.remove_file(path)
        } else {
            Err(injected(FsOp::RemoveFile, path))
        }
    }

    fn remove_dir(&self, path: &Path) -> Result<(), FsError> {
        if self.step(FsOp::RemoveDir, path)? {
            self.inner.remove_dir(path)
        } else {
            Err(injected(FsOp::RemoveDir, path))
        }
    }

    fn fsync_dir(&self, path: &Path) -> Result<(), FsError> {
        if self.step(FsOp::FsyncDir, path)? {
            self.inner.fsync_dir(path)
        } else {
            Err(injected(FsOp::FsyncDir, path))
        }
    }

    fn fsync_file(&self, path: &Path) -> Result<(), FsError> {
        if self.step(FsOp::FsyncFile, path)? {
            self.inner.fsync_file(path)
        } else {
            Err(injected(FsOp::FsyncFile, path))
        }
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FsError> {
        if self.step(FsOp::Chown, path)? {
            self.inner.chown(path, uid, gid)
        } else {
            Err(injected(FsOp::Chown, path))
        }
    }

    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        if self.step(FsOp::SetMode, path)? {
            self.inner.set_mode(path, mode)
        } else {
            Err(injected(FsOp::SetMode, path))
        }
    }

    fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError> {
        if self.step(FsOp::Symlink, path)? {
            self.inner.symlink(target, path)
        } else {
            Err(injected(FsOp::Symlink, path))
        }
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>, FsError> {
        self.inner.read_dir(path)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        self.inner.read(path)
    }

    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        self.inner.read_link(path)
    }

    fn metadata(&self, path: &Path) -> Result<Option<Metadata>, FsError> {
        self.inner.metadata(path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fs::RealFs;
    use super::*;

    #[test]
    fn performs_the_first_n_then_tears_one_then_fails_all() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new(RealFs, 1);
        fs.write_file(&dir.path().join("a"), 0o600, b"aaaa")
            .unwrap();
        assert!(!fs.tripped());
        fs.write_file(&dir.path().join("b"), 0o600, b"bbbb")
            .unwrap_err();
        assert_eq!(RealFs.read(&dir.path().join("b")).unwrap(), b"bb");
        let err = fs.create_dir(&dir.path().join("c"), 0o700).unwrap_err();
        assert_eq!(err.op, FsOp::CreateDir);
        assert!(!dir.path().join("c").exists());
        assert!(fs.tripped());
        assert_eq!(fs.performed(), 1);
        assert_eq!(fs.read(&dir.path().join("a")).unwrap(), b"aaaa");
    }
}
