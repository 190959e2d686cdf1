//! Promotion of a candidate to the active root (spec 3.3) and what follows it: cleanup after a
//! successful activation, restore after a failed re-apply, discard after a failed initial
//! import. Every step goes through [`Fs`] and is fsynced, and every crash point is recovered
//! by [`super::recover()`] to exactly the old or exactly the new root.
//!
//! Differences from the original, each needed for that guarantee:
//! - Trees are deleted by a rename to the trash first ([`super::tree::remove_tree`]). The
//!   original's in-place `rm -rf` of the rollback in cleanup, if interrupted, left the marker
//!   and half a rollback, which recovery then restored.
//! - The initial promotion moves an existing active root (the image's skeleton, hand-placed
//!   files) to the rollback *before* writing the marker, instead of deleting it after: with the
//!   marker written and no rollback, recovery row 3 would delete that root.
//! - A failed initial import is discarded back to exactly that previous root when there was
//!   one (the original deleted everything); with none, the active root is deleted as before.
//! - Restore (and recovery row 1) write the merged `managed-users.json` into the rollback
//!   before swapping, so the merge is never lost to a crash, and remove the marker once the
//!   active root is gone but before the rollback is renamed into place (see `swap_back`).
//!
//! Callers hold [`ConfigRoot::lock`] and have run [`super::recover()`] before promoting.

use super::error::StoreError;
use super::fs::Fs;
use super::managed::merge_into;
use super::root::{CONFIG_TOML, ConfigRoot, MARKER_CONTENTS};
use super::tree::remove_tree;

/// The marker's mode.
const MARKER_MODE: u32 = 0o644;

/// Which promotion: decides the order of steps and what a failure later does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The first import: the active root has no `config.toml` (it may be missing). Failure:
    /// [`discard_initial`].
    Initial,
    /// A re-apply over a provisioned root. Failure: [`restore`].
    Reapply,
}

/// Promotes the candidate (which must hold `config.toml`) and leaves the marker and the
/// rollback in place until [`cleanup`], [`restore`] or [`discard_initial`].
///
/// The candidate must be durable already: [`super::write_candidate`], its only writer, fsyncs
/// every file and directory it makes (syncing the tree again here doubled an import's fsyncs).
///
/// Re-apply: delete a stale rollback, write the marker (fsync), rename the active root to the
/// rollback (fsync), rename the candidate to the active root (fsync). Initial: the same, but the
/// active root, if any, is renamed to the rollback before the marker is written.
pub fn promote(fs: &dyn Fs, root: &ConfigRoot, kind: Promotion) -> Result<(), StoreError> {
    let candidate = root.candidate();
    if !fs.exists(&candidate.join(CONFIG_TOML))? {
        return Err(StoreError::NoCandidate(candidate));
    }
    let active_exists = fs.exists(root.active())?;
    if kind == Promotion::Reapply && !active_exists {
        return Err(StoreError::NoActiveRoot(root.active().to_owned()));
    }
    let parent = root.parent();
    remove_tree(fs, root, &root.rollback())?;
    if kind == Promotion::Initial && active_exists {
        fs.rename(root.active(), &root.rollback())?;
        fs.fsync_dir(parent)?;
    }
    fs.write_file(&root.marker(), MARKER_MODE, MARKER_CONTENTS)?;
    fs.fsync_dir(parent)?;
    if kind == Promotion::Reapply {
        fs.rename(root.active(), &root.rollback())?;
        fs.fsync_dir(parent)?;
    }
    fs.rename(&candidate, root.active())?;
    fs.fsync_dir(parent)?;
    Ok(())
}

/// After a successful activation: deletes the rollback, then the marker (fsynced).
pub fn cleanup(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    remove_tree(fs, root, &root.rollback())?;
    remove_marker(fs, root)
}

/// After a failed re-apply: puts the rollback back as the active root, its
/// `managed-users.json` the union of both roots' sets, and removes the marker. `false` (and
/// the marker removed) if there is no rollback.
pub fn restore(fs: &dyn Fs, root: &ConfigRoot) -> Result<bool, StoreError> {
    if !fs.exists(&root.rollback())? {
        remove_marker(fs, root)?;
        return Ok(false);
    }
    swap_back(fs, root)?;
    Ok(true)
}

/// After a failed initial import: back to the root as it was before it (restored from the
/// rollback like [`restore`]), or to no active root if there was none. The candidate and the
/// marker are removed. With no previous root, a crash before the deletion leaves the new root
/// (recovery row 2 keeps a pending root that has nothing to roll back to, as the original).
pub fn discard_initial(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    if fs.exists(&root.rollback())? {
        return swap_back(fs, root);
    }
    fs.remove_dir_all(&root.candidate())?;
    remove_tree(fs, root, root.active())?;
    remove_marker(fs, root)
}

/// Merges the managed users into the rollback, deletes the candidate and the active root,
/// removes the marker and renames the rollback into place (each fsynced). The marker goes only
/// once the active root is gone: before, a crash lands in recovery row 1 (which does this
/// again); after, in row 6 (which does the rename). Removing it after the rename would let
/// row 3 delete a restored root that has no `config.toml` (the skeleton before an initial
/// import).
pub(super) fn swap_back(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    merge_into(fs, root.active(), &root.rollback())?;
    fs.remove_dir_all(&root.candidate())?;
    remove_tree(fs, root, root.active())?;
    remove_marker(fs, root)?;
    fs.rename(&root.rollback(), root.active())?;
    fs.fsync_dir(root.parent())?;
    Ok(())
}

/// Removes the marker if present and fsyncs the parent.
pub(super) fn remove_marker(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    if fs.exists(&root.marker())? {
        fs.remove_file(&root.marker())?;
    }
    fs.fsync_dir(root.parent())?;
    Ok(())
}
