//! Candidate writing: modes, the payload, the carry-forward rule; and a re-apply end to end.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use atomix_provision::store::candidate::{KNOWN_CARRIED, is_owned};
use atomix_provision::store::{
    CandidateSpec, DirModes, Owner, Payload, Promotion, RealFs, StoreError, cleanup, promote,
    write_candidate,
};
use common::*;

fn spec<'a>(
    files: &'a atomix_config::files::FileSet,
    modes: &'a DirModes,
    payload: &'a Payload,
) -> CandidateSpec<'a> {
    CandidateSpec {
        files,
        dir_modes: modes,
        payload,
        payload_owner: None,
    }
}

#[test]
fn files_and_directories_get_exactly_their_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let files = set(&[
        ("config.toml", 0o600, "v\n"),
        ("quadlet/a.container", 0o644, "[Container]\n"),
        ("deep/er/x", 0o640, "x"),
    ]);
    let modes = DirModes::standard();
    write_candidate(&RealFs, &root, &spec(&files, &modes, &Payload::None)).unwrap();
    let t = snapshot(&root.candidate()).unwrap();
    assert_eq!(t[""], Entry::Dir(0o755));
    assert_eq!(t["quadlet"], Entry::Dir(0o755));
    assert_eq!(t["deep"], Entry::Dir(0o700));
    assert_eq!(t["deep/er"], Entry::Dir(0o700));
    assert_eq!(t["deep/er/x"], Entry::File(0o640, b"x".to_vec()));
    assert_eq!(t["config.toml"], Entry::File(0o600, b"v\n".to_vec()));
    assert_eq!(t.len(), 7);

    let mut custom = DirModes::standard();
    custom.root = 0o700;
    custom.by_path.insert("deep/er".to_owned(), 0o750);
    write_candidate(&RealFs, &root, &spec(&files, &custom, &Payload::None)).unwrap();
    let t = snapshot(&root.candidate()).unwrap();
    assert_eq!(t[""], Entry::Dir(0o700));
    assert_eq!(t["deep/er"], Entry::Dir(0o750));
}

#[test]
fn the_payload_is_0700_and_0600_whatever_the_bundle_says() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let files = set(&[("config.toml", 0o600, "v\n")]);
    let modes = DirModes::standard();
    let p = payload(&[("app/config.yaml", "a: 1\n"), ("top", "t")]);
    let me = std::fs::metadata(dir.path()).unwrap();
    let owner = Owner {
        uid: me.uid(),
        gid: me.gid(),
    };
    let mut s = spec(&files, &modes, &p);
    s.payload_owner = Some(owner);
    let report = write_candidate(&RealFs, &root, &s).unwrap();
    let t = snapshot(&root.candidate()).unwrap();
    assert_eq!(t["files"], Entry::Dir(0o700));
    assert_eq!(t["files/app"], Entry::Dir(0o700));
    assert_eq!(
        t["files/app/config.yaml"],
        Entry::File(0o600, b"a: 1\n".to_vec())
    );
    assert_eq!(t["files/top"], Entry::File(0o600, b"t".to_vec()));
    let c = root.candidate();
    assert_eq!(
        report.payload,
        [
            c.join("files"),
            c.join("files/app"),
            c.join("files/app/config.yaml"),
            c.join("files/top")
        ]
    );
}

#[test]
fn a_rendered_file_under_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let files = set(&[("config.toml", 0o600, "v\n"), ("files/x", 0o600, "x")]);
    let modes = DirModes::standard();
    let err = write_candidate(&RealFs, &root, &spec(&files, &modes, &Payload::None)).unwrap_err();
    assert!(matches!(err, StoreError::RenderedPayload(_)), "{err}");
    assert!(!root.candidate().exists());
}

#[test]
fn hand_placed_entries_are_carried_forward_and_owned_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    provision_old(&root);
    std::fs::write(root.active().join(".managed-users.json.atomixos-tmp"), "x").unwrap();
    let modes = DirModes::standard();
    let files = new_rendered();
    let report = write_candidate(&RealFs, &root, &spec(&files, &modes, &Payload::None)).unwrap();
    assert_eq!(
        report.carried,
        [
            "local.env",
            "managed-users.json",
            "openvpn",
            "ssh-wan-enabled",
            "vpn.conf"
        ]
    );
    let t = snapshot(&root.candidate()).unwrap();
    let old = snapshot(root.active()).unwrap();
    for carried in [
        "local.env",
        "managed-users.json",
        "openvpn",
        "openvpn/client.conf",
        "ssh-wan-enabled",
        "vpn.conf",
    ] {
        assert_eq!(t[carried], old[carried], "{carried}");
    }
    // Owned names come only from the rendered set: no os-upgrade.json, no bob, no old payload.
    for gone in [
        "os-upgrade.json",
        "ssh-authorized-keys/bob",
        "files",
        "quadlet/web.container",
    ] {
        assert!(!t.contains_key(gone), "{gone}");
    }
    assert!(!t.contains_key(".managed-users.json.atomixos-tmp"));
    for name in KNOWN_CARRIED {
        assert!(!is_owned(name));
    }
}

#[test]
fn a_partial_update_keeps_the_active_payload() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    provision_old(&root);
    let modes = DirModes::standard();
    let files = new_rendered();
    write_candidate(&RealFs, &root, &spec(&files, &modes, &Payload::KeepActive)).unwrap();
    let t = snapshot(&root.candidate()).unwrap();
    assert_eq!(
        t["files/app/config.yaml"],
        Entry::File(0o600, b"old: 1\n".to_vec())
    );
}

#[test]
fn a_stale_candidate_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    std::fs::create_dir_all(root.candidate().join("junk")).unwrap();
    let modes = DirModes::standard();
    let files = set(&[("config.toml", 0o600, "v\n")]);
    write_candidate(&RealFs, &root, &spec(&files, &modes, &Payload::None)).unwrap();
    assert!(!root.candidate().join("junk").exists());
}

#[test]
fn a_reapply_leaves_the_rendered_set_plus_the_carried_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    provision_old(&root);
    let old = snapshot(root.active()).unwrap();
    let p = payload(&[("app/config.yaml", "new: 2\n")]);
    candidate(&RealFs, &root, &new_rendered(), &p).unwrap();
    promote(&RealFs, &root, Promotion::Reapply).unwrap();
    assert_eq!(std::fs::read(root.marker()).unwrap(), b"pending\n");
    assert_eq!(snapshot(&root.rollback()).unwrap(), old);
    cleanup(&RealFs, &root).unwrap();
    assert_settled(&root, "after cleanup");
    assert!(!root.rollback().exists());

    let got = snapshot(root.active()).unwrap();
    let mut want = std::collections::BTreeMap::new();
    want.insert(String::new(), Entry::Dir(0o755));
    for (path, file) in new_rendered().iter() {
        want.insert(
            path.to_string(),
            Entry::File(file.mode, file.contents.clone()),
        );
    }
    want.insert("quadlet".into(), Entry::Dir(0o755));
    want.insert("ssh-authorized-keys".into(), Entry::Dir(0o755));
    want.insert("files".into(), Entry::Dir(0o700));
    want.insert("files/app".into(), Entry::Dir(0o700));
    want.insert(
        "files/app/config.yaml".into(),
        Entry::File(0o600, b"new: 2\n".to_vec()),
    );
    for carried in [
        "local.env",
        "managed-users.json",
        "openvpn",
        "openvpn/client.conf",
        "ssh-wan-enabled",
        "vpn.conf",
    ] {
        want.insert(carried.into(), old[carried].clone());
    }
    assert_eq!(got, want);
}

#[test]
fn promotion_needs_a_candidate_and_a_reapply_an_active_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let err = promote(&RealFs, &root, Promotion::Initial).unwrap_err();
    assert!(matches!(err, StoreError::NoCandidate(_)), "{err}");
    candidate(&RealFs, &root, &new_rendered(), &Payload::None).unwrap();
    let err = promote(&RealFs, &root, Promotion::Reapply).unwrap_err();
    assert!(matches!(err, StoreError::NoActiveRoot(_)), "{err}");
    assert!(!root.marker().exists());
}
