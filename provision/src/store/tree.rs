//! Whole-tree operations on top of [`Fs`]: copy one keeping modes and owners, compare two,
//! delete one in a single visible step, and replace a file atomically.

use std::path::{Path, PathBuf};

use super::fs::{Fs, FsError, Kind};
use super::root::ConfigRoot;

/// The directory that holds `path` (for the fsync after a change to `path`'s entry).
pub fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Deletes the tree at `path` (nothing there is fine) so that no crash leaves part of it at
/// `path`: it is renamed to the root's trash (fsynced) and only then deleted. Whatever a crash
/// leaves in the trash, [`super::recover()`] deletes.
pub fn remove_tree(fs: &dyn Fs, root: &ConfigRoot, path: &Path) -> Result<(), FsError> {
    if !fs.exists(path)? {
        return Ok(());
    }
    let trash = root.trash();
    fs.remove_dir_all(&trash)?;
    fs.rename(path, &trash)?;
    fs.fsync_dir(parent_of(path))?;
    fs.remove_dir_all(&trash)?;
    fs.fsync_dir(root.parent())
}

/// Deletes whatever is in the trash; whether there was anything.
pub fn empty_trash(fs: &dyn Fs, root: &ConfigRoot) -> Result<bool, FsError> {
    let trash = root.trash();
    if !fs.exists(&trash)? {
        return Ok(false);
    }
    fs.remove_dir_all(&trash)?;
    fs.fsync_dir(root.parent())?;
    Ok(true)
}

/// Whether the entries at `a` and `b` are the same tree: the same names, kinds and modes, file
/// contents and symlink targets (owners are not compared). Two missing entries are the same.
pub fn same_tree(fs: &dyn Fs, a: &Path, b: &Path) -> Result<bool, FsError> {
    let kind = match (fs.metadata(a)?, fs.metadata(b)?) {
        (None, None) => return Ok(true),
        (Some(ma), Some(mb)) if ma.kind == mb.kind && ma.mode == mb.mode => ma.kind,
        _ => return Ok(false),
    };
    match kind {
        Kind::File => Ok(fs.read(a)? == fs.read(b)?),
        Kind::Symlink => Ok(fs.read_link(a)? == fs.read_link(b)?),
        Kind::Other => Ok(false),
        Kind::Dir => {
            let names = fs.read_dir(a)?;
            if names != fs.read_dir(b)? {
                return Ok(false);
            }
            for name in names {
                if !same_tree(fs, &a.join(&name), &b.join(&name))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

/// Copies the entry at `from` to `to` (which must not exist): files with their contents,
/// directories recursively, symlinks as symlinks, each with its mode and owner. Devices, FIFOs
/// and sockets are not copied; their paths are returned. Files are fsynced once their owner and
/// mode are set; the directories are the caller's to fsync.
pub fn copy_tree(fs: &dyn Fs, from: &Path, to: &Path) -> Result<Vec<PathBuf>, FsError> {
    let mut skipped = Vec::new();
    copy_entry(fs, from, to, &mut skipped)?;
    Ok(skipped)
}

fn copy_entry(
    fs: &dyn Fs,
    from: &Path,
    to: &Path,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), FsError> {
    let Some(meta) = fs.metadata(from)? else {
        return Ok(());
    };
    match meta.kind {
        Kind::File => {
            let contents = fs.read(from)?;
            fs.write_file(to, meta.mode, &contents)?;
        }
        Kind::Dir => {
            fs.create_dir(to, meta.mode)?;
            for name in fs.read_dir(from)? {
                copy_entry(fs, &from.join(&name), &to.join(&name), skipped)?;
            }
        }
        Kind::Symlink => {
            let target = fs.read_link(from)?;
            fs.symlink(&target, to)?;
        }
        Kind::Other => {
            skipped.push(from.to_owned());
            return Ok(());
        }
    }
    fs.chown(to, meta.uid, meta.gid)?;
    if meta.kind != Kind::Symlink && meta.mode & 0o7000 != 0 {
        // chown clears set-id bits; put them back.
        fs.set_mode(to, meta.mode)?;
    }
    if meta.kind == Kind::File {
        // The owner (and mode) changed after the write's fsync: sync the file again.
        // Directories are synced by the caller once the tree is complete.
        fs.fsync_file(to)?;
    }
    Ok(())
}

/// The suffix of [`write_atomic`]'s temporary files (`.<name>.atomixos-tmp`).
pub const TEMP_SUFFIX: &str = ".atomixos-tmp";

/// Replaces `path` atomically: a temporary file `.<name>.atomixos-tmp` beside it (written and
/// fsynced), renamed over it, then the directory fsynced. A crash leaves either the old or the
/// new file (and maybe the temporary one).
pub fn write_atomic(fs: &dyn Fs, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
    let result = fs
        .write_file(&temp, mode, contents)
        .and_then(|()| fs.rename(&temp, path))
        .and_then(|()| fs.fsync_dir(dir));
    if result.is_err() {
        let _ = fs.remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::fs::RealFs;
    use super::*;

    #[test]
    fn copies_keep_modes_links_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let a = dir.path().join("a");
        fs.create_dir(&a, 0o750).unwrap();
        fs.create_dir(&a.join("sub"), 0o711).unwrap();
        fs.write_file(&a.join("sub/f"), 0o640, b"hello").unwrap();
        fs.symlink(Path::new("sub/f"), &a.join("l")).unwrap();
        let b = dir.path().join("b");
        assert!(copy_tree(&fs, &a, &b).unwrap().is_empty());
        assert_eq!(fs.metadata(&b).unwrap().unwrap().mode, 0o750);
        assert_eq!(fs.metadata(&b.join("sub")).unwrap().unwrap().mode, 0o711);
        assert_eq!(fs.metadata(&b.join("sub/f")).unwrap().unwrap().mode, 0o640);
        assert_eq!(fs.read(&b.join("l")).unwrap(), b"hello");
        assert_eq!(fs.read_link(&b.join("l")).unwrap(), Path::new("sub/f"));
    }

    #[test]
    fn atomic_writes_and_removals_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let root = ConfigRoot::unchecked(&dir.path().join("config")).unwrap();
        fs.create_dir(root.active(), 0o755).unwrap();
        let f = root.active().join("f");
        write_atomic(&fs, &f, 0o600, b"1").unwrap();
        write_atomic(&fs, &f, 0o644, b"2").unwrap();
        assert_eq!(fs.read(&f).unwrap(), b"2");
        assert_eq!(fs.read_dir(root.active()).unwrap(), ["f"]);
        remove_tree(&fs, &root, root.active()).unwrap();
        remove_tree(&fs, &root, root.active()).unwrap();
        assert!(fs.read_dir(dir.path()).unwrap().is_empty());
        assert!(!empty_trash(&fs, &root).unwrap());
    }
}
