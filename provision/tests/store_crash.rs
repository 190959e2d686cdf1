//! T0 crash-safety proof: every operation of the store is run under a [`FaultFs`] that stops
//! after N operations, for every N until the operation completes; then [`recover`] runs on the
//! real filesystem, and the active root must be exactly the old tree or exactly the new tree
//! (paths, modes, contents, symlinks), with no candidate, marker or trash left, and a second
//! recovery must have nothing to do.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use atomix_provision::store::{
    ConfigRoot, FaultFs, Fs, Payload, Promotion, RealFs, StoreError, cleanup, discard_initial,
    promote, recover, restore,
};
use common::*;

type Setup<'a> = &'a dyn Fn(&ConfigRoot);
type Op<'a> = &'a dyn Fn(&dyn Fs, &ConfigRoot) -> Result<(), StoreError>;

/// How often each outcome was seen.
#[derive(Debug, Default)]
struct Outcomes {
    old: usize,
    new: usize,
    crash_points: usize,
}

/// Runs `op` crashed after every N; returns the outcomes. `final_tree` is what the completed
/// operation (followed by recovery) must leave.
fn crash_matrix(
    setup: Setup<'_>,
    op: Op<'_>,
    old: &Tree,
    new: &Tree,
    final_tree: &Tree,
) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for n in 0.. {
        assert!(n < 20_000, "the operation never completed");
        let dir = tempfile::tempdir().unwrap();
        let root = root_in(dir.path());
        setup(&root);
        let fault = FaultFs::new(RealFs, n);
        let result = op(&fault, &root);
        assert_eq!(result.is_ok(), !fault.tripped(), "n={n}: {result:?}");
        recover(&RealFs, &root).unwrap_or_else(|e| panic!("n={n}: recovery failed: {e}"));
        let got = snapshot(root.active());
        assert_settled(&root, &format!("n={n}"));
        assert!(
            !root.rollback().exists(),
            "n={n}: rollback left over after recovery"
        );
        let again = recover(&RealFs, &root).unwrap();
        assert!(again.is_noop(), "n={n}: second recovery did {again:?}");
        if got == *old {
            outcomes.old += 1;
        } else if got == *new {
            outcomes.new += 1;
        } else {
            panic!("n={n}: the root is neither the old nor the new tree: {got:#?}");
        }
        if result.is_ok() {
            assert_eq!(got, *final_tree, "n={n}: the completed operation");
            break;
        }
        outcomes.crash_points += 1;
    }
    outcomes
}

/// The tree `setup` then `op` leave on the real filesystem (then recovery).
fn reference(setup: Setup<'_>, op: Op<'_>) -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    setup(&root);
    op(&RealFs, &root).unwrap();
    recover(&RealFs, &root).unwrap();
    snapshot(root.active())
}

fn before(setup: Setup<'_>) -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    setup(&root);
    snapshot(root.active())
}

fn new_payload() -> Payload {
    payload(&[("app/config.yaml", "new: 2\n"), ("top.txt", "t\n")])
}

fn reapply_commit(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    candidate(fs, root, &new_rendered(), &new_payload())?;
    promote(fs, root, Promotion::Reapply)?;
    cleanup(fs, root)
}

fn initial_commit(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    candidate(fs, root, &new_rendered(), &new_payload())?;
    promote(fs, root, Promotion::Initial)?;
    cleanup(fs, root)
}

#[test]
fn a_reapply_crashed_anywhere_is_the_old_or_the_new_root() {
    let setup: Setup<'_> = &|root| provision_old(root);
    let old = before(setup);
    let new = reference(setup, &reapply_commit);
    assert_ne!(old, new);
    let seen = crash_matrix(setup, &reapply_commit, &old, &new, &new);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

#[test]
fn an_initial_import_on_an_empty_data_is_nothing_or_the_new_root() {
    let setup: Setup<'_> = &|_| {};
    let old = before(setup);
    assert_eq!(old, None);
    let new = reference(setup, &initial_commit);
    let seen = crash_matrix(setup, &initial_commit, &old, &new, &new);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

/// The image's skeleton (`quadlet/`, `ssh-authorized-keys/`) plus hand-placed files: a crash
/// must never lose them (the original's initial promotion deleted the root after writing the
/// marker, and recovery row 3 then deleted it).
fn skeleton(root: &ConfigRoot) {
    let fs = RealFs;
    fs.create_dir(root.active(), 0o755).unwrap();
    fs.create_dir(&root.active().join("quadlet"), 0o755)
        .unwrap();
    fs.create_dir(&root.active().join("ssh-authorized-keys"), 0o755)
        .unwrap();
    hand_place(root.active());
}

#[test]
fn an_initial_import_over_the_skeleton_is_the_skeleton_or_the_new_root() {
    let setup: Setup<'_> = &skeleton;
    let old = before(setup);
    let new = reference(setup, &initial_commit);
    let new_map = new.as_ref().unwrap();
    assert!(
        new_map.contains_key("openvpn/client.conf"),
        "carried forward"
    );
    let seen = crash_matrix(setup, &initial_commit, &old, &new, &new);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

/// A promoted re-apply whose activation ran `apply-users`, which added `carol` to the managed
/// set of the new root.
fn promoted_reapply(root: &ConfigRoot) {
    provision_old(root);
    candidate(&RealFs, root, &new_rendered(), &new_payload()).unwrap();
    promote(&RealFs, root, Promotion::Reapply).unwrap();
    RealFs
        .write_file(
            &root.active().join("managed-users.json"),
            0o600,
            b"[\"admin\", \"bob\", \"carol\"]",
        )
        .unwrap();
}

#[test]
fn a_cleanup_crashed_anywhere_is_the_old_or_the_new_root() {
    let setup: Setup<'_> = &promoted_reapply;
    let op: Op<'_> = &|fs, root| cleanup(fs, root);
    let new = before(setup);
    // A crash before the rollback is gone restores it, with carol merged in.
    let old = reference(setup, &|fs, root| restore(fs, root).map(|_| ()));
    let seen = crash_matrix(setup, op, &old, &new, &new);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

#[test]
fn a_restore_crashed_anywhere_is_the_old_root_with_the_merged_users() {
    let setup: Setup<'_> = &promoted_reapply;
    let op: Op<'_> = &|fs, root| restore(fs, root).map(|_| ());
    let old = reference(setup, op);
    let map = old.as_ref().unwrap();
    assert_eq!(
        map["managed-users.json"],
        Entry::File(
            0o600,
            b"[\n  \"admin\",\n  \"bob\",\n  \"carol\"\n]\n".to_vec()
        )
    );
    assert_eq!(
        map["config.toml"],
        Entry::File(0o600, b"version = 1 # old\n".to_vec())
    );
    let seen = crash_matrix(setup, op, &old, &old, &old);
    assert!(seen.crash_points > 5, "{seen:?}");
}

#[test]
fn a_failed_reapply_crashed_anywhere_is_the_old_root() {
    let setup: Setup<'_> = &|root| provision_old(root);
    let op: Op<'_> = &|fs, root| {
        candidate(fs, root, &new_rendered(), &new_payload())?;
        promote(fs, root, Promotion::Reapply)?;
        restore(fs, root).map(|_| ())
    };
    let old = before(setup);
    crash_matrix(setup, op, &old, &old, &old);
}

/// A partial update: the new rendered set, the active root's payload kept.
fn partial_commit(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    candidate(fs, root, &new_rendered(), &Payload::KeepActive)?;
    promote(fs, root, Promotion::Reapply)?;
    cleanup(fs, root)
}

#[test]
fn a_partial_reapply_crashed_anywhere_is_the_old_or_the_new_root_with_the_old_payload() {
    let setup: Setup<'_> = &|root| provision_old(root);
    let old = before(setup);
    let new = reference(setup, &partial_commit);
    let (old_map, new_map) = (old.as_ref().unwrap(), new.as_ref().unwrap());
    for kept in ["files", "files/app", "files/app/config.yaml"] {
        assert_eq!(new_map[kept], old_map[kept], "{kept}");
    }
    assert_ne!(new_map["config.toml"], old_map["config.toml"]);
    let seen = crash_matrix(setup, &partial_commit, &old, &new, &new);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

/// Confirm-or-revert: a re-apply promoted and held (marker and rollback kept) until it is
/// confirmed. A reboot then, or a crash anywhere before, leaves the old root once recovery ran
/// (row 1 restores the rollback): nothing commits a held promotion but its confirmation.
#[test]
fn a_held_reapply_is_the_old_root_after_recovery_wherever_it_stopped() {
    let setup: Setup<'_> = &|root| provision_old(root);
    let op: Op<'_> = &|fs, root| {
        candidate(fs, root, &new_rendered(), &Payload::KeepActive)?;
        promote(fs, root, Promotion::Reapply)
    };
    let old = before(setup);
    let seen = crash_matrix(setup, op, &old, &old, &old);
    assert!(seen.crash_points > 5, "{seen:?}");
}

fn initial_discard(fs: &dyn Fs, root: &ConfigRoot) -> Result<(), StoreError> {
    candidate(fs, root, &new_rendered(), &new_payload())?;
    promote(fs, root, Promotion::Initial)?;
    discard_initial(fs, root)
}

#[test]
fn a_discarded_initial_import_over_the_skeleton_crashed_anywhere_is_the_skeleton() {
    let setup: Setup<'_> = &skeleton;
    let old = before(setup);
    let seen = crash_matrix(setup, &initial_discard, &old, &old, &old);
    assert!(seen.crash_points > 5, "{seen:?}");
}

/// With nothing to roll back to, a pending initial promotion is kept by recovery (row 2, as in
/// the original), so a crash before the discard deleted the root leaves the new root.
#[test]
fn a_discarded_initial_import_on_an_empty_data_is_nothing_or_the_new_root() {
    let setup: Setup<'_> = &|_| {};
    let new = reference(setup, &initial_commit);
    let seen = crash_matrix(setup, &initial_discard, &None, &new, &None);
    assert!(seen.old > 0 && seen.new > 0, "{seen:?}");
}

#[test]
fn the_fault_points_cover_every_step() {
    // Guard against a vacuous matrix: a re-apply takes many operations.
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    provision_old(&root);
    let fault = FaultFs::new(RealFs, usize::MAX);
    reapply_commit(&fault, &root).unwrap();
    assert!(fault.performed() > 30, "{}", fault.performed());
    assert!(!Path::new(&root.rollback()).exists());
}
