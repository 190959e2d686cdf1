//! Durability order: every change to an entry of the config root's parent (the rename of a
//! root, the marker written or removed, the trash removed) is followed by an fsync of that
//! parent before the next such change, and the last one is fsynced too; and nothing in a
//! written candidate (a file's contents, owner or mode, a directory's entries) changes after
//! its last fsync. Together with the crash matrix this is what makes a power cut (not just a
//! process stop) land in a state the recovery table handles.

#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use atomix_provision::store::{
    ConfigRoot, Fs, FsError, Metadata, Promotion, RealFs, StoreError, cleanup, discard_initial,
    promote, recover, restore,
};
use common::*;

/// Records the mutating operations that touch an entry of `parent`, and its fsyncs.
struct Recorder<'a> {
    parent: &'a Path,
    log: RefCell<Vec<String>>,
}

impl Recorder<'_> {
    fn touch(&self, what: &str, path: &Path) {
        if path.parent() == Some(self.parent) {
            self.log
                .borrow_mut()
                .push(format!("{what} {}", path.display()));
        }
    }
}

impl Fs for Recorder<'_> {
    fn create_dir(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        self.touch("mkdir", path);
        RealFs.create_dir(path, mode)
    }
    fn write_file(&self, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError> {
        self.touch("write", path);
        RealFs.write_file(path, mode, contents)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        self.touch("rename", from);
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> Result<(), FsError> {
        self.touch("unlink", path);
        RealFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> Result<(), FsError> {
        self.touch("rmdir", path);
        RealFs.remove_dir(path)
    }
    fn fsync_dir(&self, path: &Path) -> Result<(), FsError> {
        if path == self.parent {
            self.log.borrow_mut().push("fsync".to_owned());
        }
        RealFs.fsync_dir(path)
    }
    fn fsync_file(&self, path: &Path) -> Result<(), FsError> {
        RealFs.fsync_file(path)
    }
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FsError> {
        RealFs.chown(path, uid, gid)
    }
    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        RealFs.set_mode(path, mode)
    }
    fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError> {
        self.touch("symlink", path);
        RealFs.symlink(target, path)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<String>, FsError> {
        RealFs.read_dir(path)
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        RealFs.read(path)
    }
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        RealFs.read_link(path)
    }
    fn metadata(&self, path: &Path) -> Result<Option<Metadata>, FsError> {
        RealFs.metadata(path)
    }
}

/// Runs `op` and checks the order; the candidate's own creation is exempt (it is not
/// visible to recovery until promoted, and `write_candidate` fsyncs it all).
fn check(setup: &dyn Fn(&ConfigRoot), op: &dyn Fn(&dyn Fs, &ConfigRoot) -> Result<(), StoreError>) {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    setup(&root);
    let rec = Recorder {
        parent: root.parent(),
        log: RefCell::new(Vec::new()),
    };
    op(&rec, &root).unwrap();
    let candidate = format!("mkdir {}", root.candidate().display());
    let log: Vec<_> = rec
        .log
        .into_inner()
        .into_iter()
        .filter(|e| *e != candidate)
        .collect();
    assert!(log.len() > 3, "{log:#?}");
    let mut pending: Option<&String> = None;
    for entry in &log {
        if entry == "fsync" {
            pending = None;
        } else if let Some(prev) = pending {
            panic!("{entry} follows {prev} without an fsync of the parent: {log:#?}");
        } else {
            pending = Some(entry);
        }
    }
    assert!(pending.is_none(), "{pending:?} never fsynced: {log:#?}");
}

#[test]
fn every_promotion_step_is_fsynced_before_the_next() {
    check(&|r| provision_old(r), &|fs, root| {
        candidate(fs, root, &new_rendered(), &Payload::None)?;
        promote(fs, root, Promotion::Reapply)?;
        cleanup(fs, root)
    });
    check(&|r| provision_old(r), &|fs, root| {
        candidate(fs, root, &new_rendered(), &Payload::None)?;
        promote(fs, root, Promotion::Reapply)?;
        RealFs.write_file(&root.active().join("managed-users.json"), 0o600, b"[\"z\"]")?;
        restore(fs, root).map(|_| ())
    });
    check(
        &|r| {
            RealFs.create_dir(r.active(), 0o755).unwrap();
        },
        &|fs, root| {
            candidate(fs, root, &new_rendered(), &Payload::None)?;
            promote(fs, root, Promotion::Initial)?;
            discard_initial(fs, root)
        },
    );
}

#[test]
fn every_recovery_step_is_fsynced_before_the_next() {
    check(
        &|r| {
            provision_old(r);
            candidate(&RealFs, r, &new_rendered(), &Payload::None).unwrap();
            promote(&RealFs, r, Promotion::Reapply).unwrap();
            RealFs.create_dir(&r.trash(), 0o700).unwrap();
        },
        &|fs, root| recover(fs, root).map(|_| ()),
    );
}

use atomix_provision::store::Payload;

/// Records every change to an entry (its contents, owner, mode, or an entry made or removed in
/// a directory) and every fsync, in order, as `(synced, path)`.
struct Changes {
    log: RefCell<Vec<(bool, PathBuf)>>,
}

impl Changes {
    fn change(&self, path: &Path) {
        self.log.borrow_mut().push((false, path.to_owned()));
    }
    fn sync(&self, path: &Path) {
        self.log.borrow_mut().push((true, path.to_owned()));
    }
    fn parent(&self, path: &Path) {
        self.change(path.parent().unwrap());
    }
}

impl Fs for Changes {
    fn create_dir(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        self.parent(path);
        self.change(path);
        RealFs.create_dir(path, mode)
    }
    fn write_file(&self, path: &Path, mode: u32, contents: &[u8]) -> Result<(), FsError> {
        self.parent(path);
        self.change(path);
        RealFs.write_file(path, mode, contents)?;
        self.sync(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<(), FsError> {
        self.parent(from);
        self.parent(to);
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> Result<(), FsError> {
        self.parent(path);
        RealFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> Result<(), FsError> {
        self.parent(path);
        RealFs.remove_dir(path)
    }
    fn fsync_dir(&self, path: &Path) -> Result<(), FsError> {
        self.sync(path);
        RealFs.fsync_dir(path)
    }
    fn fsync_file(&self, path: &Path) -> Result<(), FsError> {
        self.sync(path);
        RealFs.fsync_file(path)
    }
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FsError> {
        // A symlink cannot be opened to be fsynced: its directory's fsync is all there is.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
            self.parent(path);
        } else {
            self.change(path);
        }
        RealFs.chown(path, uid, gid)
    }
    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), FsError> {
        self.change(path);
        RealFs.set_mode(path, mode)
    }
    fn symlink(&self, target: &Path, path: &Path) -> Result<(), FsError> {
        self.parent(path);
        RealFs.symlink(target, path)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<String>, FsError> {
        RealFs.read_dir(path)
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>, FsError> {
        RealFs.read(path)
    }
    fn read_link(&self, path: &Path) -> Result<PathBuf, FsError> {
        RealFs.read_link(path)
    }
    fn metadata(&self, path: &Path) -> Result<Option<Metadata>, FsError> {
        RealFs.metadata(path)
    }
}

/// A written candidate is durable as a whole before promotion can expose it: no entry in it (a
/// file, the payload chowned to its owner, a carried entry copied with its owner, a directory
/// that got entries) changes after its last fsync.
#[test]
fn nothing_in_a_candidate_changes_after_its_last_fsync() {
    use std::os::unix::fs::MetadataExt;

    use atomix_provision::store::{CandidateSpec, DirModes, Owner, write_candidate};

    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    provision_old(&root); // hand-placed entries to carry forward (files, a directory)
    let me = std::fs::metadata(dir.path()).unwrap();
    let files = new_rendered();
    let modes = DirModes::standard();
    let p = payload(&[("app/config.yaml", "a: 1\n"), ("top", "t")]);
    let spec = CandidateSpec {
        files: &files,
        dir_modes: &modes,
        payload: &p,
        payload_owner: Some(Owner {
            uid: me.uid(),
            gid: me.gid(),
        }),
    };
    let rec = Changes {
        log: RefCell::new(Vec::new()),
    };
    let report = write_candidate(&rec, &root, &spec).unwrap();
    assert!(!report.carried.is_empty() && !report.payload.is_empty());
    let log = rec.log.into_inner();
    let candidate = root.candidate();
    let mut checked = 0;
    for (i, (synced, path)) in log.iter().enumerate() {
        if *synced || !path.starts_with(&candidate) {
            continue;
        }
        checked += 1;
        assert!(
            log[i + 1..].iter().any(|(s, p)| *s && p == path),
            "{} changes (step {i}) and is not fsynced after it: {log:#?}",
            path.display()
        );
    }
    assert!(checked > 20, "{checked} changes seen");
}
