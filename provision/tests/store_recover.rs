//! The recovery table of spec 3.3, one test per row, on hand-made states.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use atomix_provision::store::{ConfigRoot, RealFs, Recovery, RecoveryAction, recover};
use common::*;

fn tree(path: &Path, config: Option<&str>) {
    fs::create_dir_all(path.join("quadlet")).unwrap();
    fs::write(path.join("quadlet/a.container"), "[Container]\n").unwrap();
    if let Some(text) = config {
        fs::write(path.join("config.toml"), text).unwrap();
    }
}

fn marker(root: &ConfigRoot) {
    fs::write(root.marker(), "pending\n").unwrap();
}

fn config_of(root: &ConfigRoot) -> Option<String> {
    fs::read_to_string(root.active_config()).ok()
}

fn actions(root: &ConfigRoot) -> Recovery {
    let out = recover(&RealFs, root).unwrap();
    assert_settled(root, "after recovery");
    assert!(recover(&RealFs, root).unwrap().is_noop(), "not idempotent");
    out
}

#[test]
fn row1_marker_and_rollback_restore_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), Some("new"));
    tree(&root.rollback(), Some("old"));
    tree(&root.candidate(), Some("next"));
    fs::write(root.active().join("managed-users.json"), r#"["a","z"]"#).unwrap();
    fs::write(root.rollback().join("managed-users.json"), r#"["a"]"#).unwrap();
    marker(&root);
    let out = actions(&root);
    assert_eq!(out.actions, [RecoveryAction::RestoredRollback]);
    assert_eq!(config_of(&root).as_deref(), Some("old"));
    assert!(!root.rollback().exists());
    // The failed root's managed users are kept, so apply-users still locks them.
    assert_eq!(
        fs::read_to_string(root.active().join("managed-users.json")).unwrap(),
        "[\n  \"a\",\n  \"z\"\n]\n"
    );
}

#[test]
fn row1_also_without_an_active_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(&root.rollback(), Some("old"));
    marker(&root);
    assert_eq!(actions(&root).actions, [RecoveryAction::RestoredRollback]);
    assert_eq!(config_of(&root).as_deref(), Some("old"));
}

#[test]
fn row2_marker_without_rollback_keeps_a_provisioned_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), Some("new"));
    tree(&root.candidate(), Some("next"));
    marker(&root);
    assert_eq!(actions(&root).actions, [RecoveryAction::KeptActive]);
    assert_eq!(config_of(&root).as_deref(), Some("new"));
}

#[test]
fn row3_marker_without_rollback_or_config_deletes_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), None);
    tree(&root.candidate(), Some("next"));
    marker(&root);
    assert_eq!(
        actions(&root).actions,
        [RecoveryAction::DiscardedIncomplete]
    );
    assert!(!root.active().exists());
}

#[test]
fn row4_no_marker_and_a_provisioned_root_delete_the_candidate_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), Some("cur"));
    tree(&root.candidate(), Some("next"));
    tree(&root.rollback(), Some("stale"));
    assert_eq!(actions(&root).actions, [RecoveryAction::RemovedCandidate]);
    assert_eq!(config_of(&root).as_deref(), Some("cur"));
    // As in the original, a stale rollback beside a provisioned root is left alone (the next
    // promotion deletes it).
    assert!(root.rollback().exists());
}

#[test]
fn row5_no_marker_and_no_config_delete_the_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), None);
    tree(&root.candidate(), Some("next"));
    assert_eq!(
        actions(&root).actions,
        [RecoveryAction::RemovedUnpromotedCandidate]
    );
    assert!(root.active().join("quadlet/a.container").exists());
    assert!(!root.active_config().exists());
}

#[test]
fn row5_then_row6_in_the_same_call() {
    // The original stopped after row 5 and left the rollback for the next pass.
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(&root.candidate(), Some("next"));
    tree(&root.rollback(), Some("old"));
    assert_eq!(
        actions(&root).actions,
        [
            RecoveryAction::RemovedUnpromotedCandidate,
            RecoveryAction::RenamedRollback
        ]
    );
    assert_eq!(config_of(&root).as_deref(), Some("old"));
}

#[test]
fn row6_an_unmarked_rollback_becomes_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(&root.rollback(), Some("old"));
    assert_eq!(actions(&root).actions, [RecoveryAction::RenamedRollback]);
    assert_eq!(config_of(&root).as_deref(), Some("old"));
    assert!(!root.rollback().exists());
}

#[test]
fn a_consistent_root_needs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    assert!(actions(&root).is_noop());
    tree(root.active(), Some("cur"));
    assert!(actions(&root).is_noop());
    assert_eq!(config_of(&root).as_deref(), Some("cur"));
}

#[test]
fn an_interrupted_deletion_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    tree(root.active(), Some("cur"));
    tree(&root.trash(), Some("half"));
    let out = actions(&root);
    assert!(out.emptied_trash);
    assert!(out.actions.is_empty());
    assert_eq!(config_of(&root).as_deref(), Some("cur"));
}

#[test]
fn actions_read_well_in_a_log() {
    assert_eq!(
        RecoveryAction::RestoredRollback.to_string(),
        "interrupted promotion: restored the previous config root"
    );
}
