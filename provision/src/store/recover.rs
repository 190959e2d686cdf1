//! Recovery of an interrupted promotion (spec 3.3), run at boot, at the start of every apply
//! (under the lock) and before an export.
//!
//! Each pass applies the first matching row of the table:
//!
//! | # | marker | rollback | active `config.toml` | candidate | action |
//! |---|---|---|---|---|---|
//! | 1 | yes | yes | any | any | restore the rollback (users merged), delete candidate and marker |
//! | 2 | yes | no | yes | any | keep the active root, delete the candidate, remove the marker |
//! | 3 | yes | no | no | any | delete the active root and the candidate, remove the marker |
//! | 4 | no | any | yes | any | delete the candidate |
//! | 5 | no | any | no | yes | delete the candidate |
//! | 6 | no | yes | no | no | rename the rollback to the active root |
//!
//! Passes repeat until one has nothing to do (the original stopped after one, so a row 5
//! left row 6 to the next boot). Before the first pass the trash is emptied.

use std::fmt;

use super::error::StoreError;
use super::fs::Fs;
use super::promote::{remove_marker, swap_back};
use super::root::ConfigRoot;
use super::tree::{empty_trash, remove_tree};

/// What one recovery pass did: the row of the table that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// Row 1: a promotion was pending; the previous root was restored.
    RestoredRollback,
    /// Row 2: a pending marker without rollback over a provisioned root; kept it.
    KeptActive,
    /// Row 3: a pending marker and no provisioned root; deleted what there was.
    DiscardedIncomplete,
    /// Row 4: deleted a leftover candidate beside a provisioned root.
    RemovedCandidate,
    /// Row 5: deleted a leftover candidate with no provisioned root.
    RemovedUnpromotedCandidate,
    /// Row 6: renamed an unmarked rollback to the active root.
    RenamedRollback,
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RestoredRollback => "interrupted promotion: restored the previous config root",
            Self::KeptActive => "interrupted promotion: kept the promoted config root",
            Self::DiscardedIncomplete => {
                "interrupted promotion: removed the incomplete config root"
            }
            Self::RemovedCandidate => "removed a leftover candidate",
            Self::RemovedUnpromotedCandidate => "removed a leftover candidate (no active config)",
            Self::RenamedRollback => "renamed the rollback to the active config root",
        })
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whether the trash held a tree (an interrupted deletion) that was deleted.
    pub emptied_trash: bool,
    /// The rows applied, in order; empty if the root was consistent.
    pub actions: Vec<RecoveryAction>,
}

impl Recovery {
    /// Whether nothing had to be done.
    pub fn is_noop(&self) -> bool {
        !self.emptied_trash && self.actions.is_empty()
    }
}

/// More passes than any sequence of rows needs (5 then 6 is the longest).
const MAX_PASSES: usize = 4;

/// Finishes or undoes an interrupted promotion. Callers hold [`ConfigRoot::lock`].
pub fn recover(fs: &dyn Fs, root: &ConfigRoot) -> Result<Recovery, StoreError> {
    let mut out = Recovery {
        emptied_trash: empty_trash(fs, root)?,
        actions: Vec::new(),
    };
    for _ in 0..MAX_PASSES {
        match pass(fs, root)? {
            Some(action) => out.actions.push(action),
            None => break,
        }
    }
    Ok(out)
}

fn pass(fs: &dyn Fs, root: &ConfigRoot) -> Result<Option<RecoveryAction>, StoreError> {
    let marker = fs.exists(&root.marker())?;
    let rollback = fs.exists(&root.rollback())?;
    let provisioned = fs.exists(&root.active_config())?;
    let candidate = fs.exists(&root.candidate())?;
    let action = match (marker, rollback, provisioned, candidate) {
        (true, true, _, _) => {
            swap_back(fs, root)?;
            RecoveryAction::RestoredRollback
        }
        (true, false, true, _) => {
            fs.remove_dir_all(&root.candidate())?;
            remove_marker(fs, root)?;
            RecoveryAction::KeptActive
        }
        (true, false, false, _) => {
            remove_tree(fs, root, root.active())?;
            fs.remove_dir_all(&root.candidate())?;
            remove_marker(fs, root)?;
            RecoveryAction::DiscardedIncomplete
        }
        (false, _, true, true) => {
            remove_candidate(fs, root)?;
            RecoveryAction::RemovedCandidate
        }
        (false, _, true, false) => return Ok(None),
        (false, _, false, true) => {
            remove_candidate(fs, root)?;
            RecoveryAction::RemovedUnpromotedCandidate
        }
        (false, true, false, false) => {
            fs.rename(&root.rollback(), root.active())?;
            fs.fsync_dir(root.parent())?;
            RecoveryAction::RenamedRollback
        }
        (false, false, false, false) => return Ok(None),
    };
    Ok(Some(action))
}

fn remove_candidate(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    fs.remove_dir_all(&root.candidate())?;
    fs.fsync_dir(root.parent())?;
    Ok(())
}
