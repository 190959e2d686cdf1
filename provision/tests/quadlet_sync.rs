//! Quadlet sync on temporary directories.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use atomix_provision::store::RealFs;
use atomix_provision::store::quadlet_sync::{MANIFEST, Mode, SyncError, SyncReport, Targets, sync};

fn config_root(dir: &Path, units: &[(&str, &str)]) -> std::path::PathBuf {
    let root = dir.join("config");
    fs::create_dir_all(root.join("quadlet")).unwrap();
    let list: Vec<_> = units
        .iter()
        .map(|(file, mode)| {
            let name = file.split('.').next().unwrap();
            fs::write(root.join("quadlet").join(file), format!("[X]\n{file}\n")).unwrap();
            serde_json::json!({"name": name, "filename": file, "service": "ignored", "mode": mode})
        })
        .collect();
    let meta =
        serde_json::json!({"app_user": "appsvc", "rootless_network": "pasta", "units": list});
    fs::write(root.join("quadlet-runtime.json"), meta.to_string()).unwrap();
    root
}

fn manifest(dir: &Path) -> String {
    fs::read_to_string(dir.join(MANIFEST)).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn units_go_to_their_mode_with_a_manifest_and_foreign_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = config_root(
        dir.path(),
        &[
            ("web.container", "rootful"),
            ("app.container", "rootless"),
            ("net.network", "rootful"),
            ("data.volume", "rootless"),
        ],
    );
    let rootful = dir.path().join("etc/containers/systemd");
    let rootless = dir.path().join("home/appsvc/.config/containers/systemd");
    fs::create_dir_all(&rootful).unwrap();
    fs::write(rootful.join("mine.container"), "by hand").unwrap();
    let report = sync(
        &RealFs,
        &root,
        Targets {
            rootful: &rootful,
            rootless: Some(&rootless),
        },
    )
    .unwrap();
    assert_eq!(
        report,
        SyncReport {
            changed_rootful: vec!["net.network".into(), "web.container".into()],
            changed_rootless: vec!["app.container".into(), "data.volume".into()],
            ..SyncReport::default()
        }
    );
    assert_eq!(
        names(&rootful),
        [MANIFEST, "mine.container", "net.network", "web.container"]
    );
    assert_eq!(names(&rootless), [MANIFEST, "app.container", "data.volume"]);
    assert_eq!(
        manifest(&rootful),
        "[\n  \"net.network\",\n  \"web.container\"\n]\n"
    );
    assert_eq!(
        fs::read_to_string(rootful.join("web.container")).unwrap(),
        "[X]\nweb.container\n"
    );
    for file in ["web.container", MANIFEST] {
        let mode = fs::metadata(rootful.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{file}");
    }
    assert_eq!(
        fs::read_to_string(rootful.join("mine.container")).unwrap(),
        "by hand"
    );
}

#[test]
fn units_no_longer_wanted_are_removed_and_their_services_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rootful = dir.path().join("rootful");
    let rootless = dir.path().join("rootless");
    let targets = Targets {
        rootful: &rootful,
        rootless: Some(&rootless),
    };
    let first = config_root(
        &dir.path().join("a"),
        &[
            ("web.container", "rootful"),
            ("old.network", "rootful"),
            ("img.build", "rootful"),
            ("app.container", "rootless"),
            ("cache.volume", "rootless"),
        ],
    );
    sync(&RealFs, &first, targets).unwrap();
    fs::write(rootful.join("foreign.container"), "x").unwrap();
    let second = config_root(&dir.path().join("b"), &[("web.container", "rootful")]);
    let report = sync(&RealFs, &second, targets).unwrap();
    assert_eq!(
        report.stale_rootful,
        ["img-build.service", "old-network.service"]
    );
    assert_eq!(
        report.stale_rootless,
        ["app.service", "cache-volume.service"]
    );
    assert_eq!(
        names(&rootful),
        [MANIFEST, "foreign.container", "web.container"]
    );
    assert_eq!(names(&rootless), [MANIFEST]);
    assert_eq!(manifest(&rootless), "[]\n");
}

#[test]
fn rootless_units_need_a_rootless_target_and_nothing_is_written_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = config_root(
        dir.path(),
        &[("web.container", "rootful"), ("app.container", "rootless")],
    );
    let rootful = dir.path().join("rootful");
    let err = sync(
        &RealFs,
        &root,
        Targets {
            rootful: &rootful,
            rootless: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, SyncError::RootlessTargetRequired), "{err}");
    assert!(!rootful.exists());
    let only_rootful = config_root(&dir.path().join("b"), &[("web.container", "rootful")]);
    sync(
        &RealFs,
        &only_rootful,
        Targets {
            rootful: &rootful,
            rootless: None,
        },
    )
    .unwrap();
    assert_eq!(names(&rootful), [MANIFEST, "web.container"]);
}

fn with_metadata(dir: &Path, text: &str) -> Result<SyncReport, SyncError> {
    let root = dir.join("config");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("quadlet-runtime.json"), text).unwrap();
    let rootful = dir.join("rootful");
    let rootless = dir.join("rootless");
    sync(
        &RealFs,
        &root,
        Targets {
            rootful: &rootful,
            rootless: Some(&rootless),
        },
    )
}

#[test]
fn bad_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = sync(
        &RealFs,
        dir.path(),
        Targets {
            rootful: dir.path(),
            rootless: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, SyncError::MissingMetadata(_)), "{err}");
    type Check = fn(&SyncError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("{", |e| matches!(e, SyncError::MetadataJson { .. })),
        ("[]", |e| matches!(e, SyncError::MetadataShape { .. })),
        (r#"{"units": {}}"#, |e| {
            matches!(e, SyncError::MetadataShape { .. })
        }),
        (r#"{"units": [1]}"#, |e| {
            matches!(e, SyncError::MetadataShape { .. })
        }),
        (r#"{"units": [{"mode": "rootful"}]}"#, |e| {
            matches!(e, SyncError::MetadataShape { .. })
        }),
        (
            r#"{"units": [{"filename": "a.container", "mode": "root"}]}"#,
            |e| matches!(e, SyncError::MetadataShape { .. }),
        ),
        (
            r#"{"units": [{"filename": "../a.container", "mode": "rootful"}]}"#,
            |e| matches!(e, SyncError::Filename(_)),
        ),
        (
            r#"{"units": [{"filename": "a.service", "mode": "rootful"}]}"#,
            |e| matches!(e, SyncError::Filename(_)),
        ),
    ];
    for (i, (text, check)) in cases.iter().enumerate() {
        let case = dir.path().join(format!("c{i}"));
        let err = with_metadata(&case, text).unwrap_err();
        assert!(check(&err), "{text}: {err}");
        assert!(
            !case.join("rootful").exists(),
            "{text}: wrote before refusing"
        );
    }
    let ok = dir.path().join("ok");
    assert_eq!(
        with_metadata(&ok, r#"{"units": []}"#).unwrap(),
        SyncReport::default()
    );
}

#[test]
fn a_bad_manifest_or_a_missing_unit_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = config_root(dir.path(), &[("web.container", "rootful")]);
    let rootful = dir.path().join("rootful");
    let targets = Targets {
        rootful: &rootful,
        rootless: None,
    };
    fs::create_dir_all(&rootful).unwrap();
    for bad in ["{}", "[1]", r#"["../x.container"]"#] {
        fs::write(rootful.join(MANIFEST), bad).unwrap();
        let err = sync(&RealFs, &root, targets).unwrap_err();
        assert!(
            matches!(err, SyncError::Manifest(_) | SyncError::Filename(_)),
            "{bad}: {err}"
        );
    }
    fs::remove_file(rootful.join(MANIFEST)).unwrap();
    fs::remove_file(root.join("quadlet/web.container")).unwrap();
    let err = sync(&RealFs, &root, targets).unwrap_err();
    assert!(matches!(err, SyncError::Fs(_)), "{err}");
    assert!(err.to_string().contains("web.container"), "{err}");
}

#[test]
fn a_sync_crashed_anywhere_is_finished_by_the_next_one() {
    use atomix_provision::store::FaultFs;
    let dir = tempfile::tempdir().unwrap();
    let first = config_root(
        &dir.path().join("a"),
        &[("web.container", "rootful"), ("app.container", "rootless")],
    );
    let second = config_root(
        &dir.path().join("b"),
        &[("web.container", "rootful"), ("db.container", "rootful")],
    );
    let mut crash_points = 0;
    for n in 0.. {
        assert!(n < 1000);
        let case = dir.path().join(format!("n{n}"));
        let (rootful, rootless) = (case.join("rootful"), case.join("rootless"));
        let targets = Targets {
            rootful: &rootful,
            rootless: Some(&rootless),
        };
        sync(&RealFs, &first, targets).unwrap();
        let fault = FaultFs::new(RealFs, n);
        let crashed = sync(&fault, &second, targets).is_err();
        let report = sync(&RealFs, &second, targets).unwrap();
        assert_eq!(
            names(&rootful),
            [MANIFEST, "db.container", "web.container"],
            "n={n}"
        );
        assert_eq!(names(&rootless), [MANIFEST], "n={n}");
        if !crashed {
            assert!(report.stale_rootless.is_empty());
            break;
        }
        crash_points += 1;
    }
    assert!(crash_points > 5);
}

#[test]
fn only_new_or_different_units_are_written_and_reported_changed() {
    let dir = tempfile::tempdir().unwrap();
    let rootful = dir.path().join("rootful");
    let targets = Targets {
        rootful: &rootful,
        rootless: None,
    };
    let units = [("web.container", "rootful"), ("db.container", "rootful")];
    let root = config_root(&dir.path().join("a"), &units);
    sync(&RealFs, &root, targets).unwrap();
    let inode = |name: &str| fs::metadata(rootful.join(name)).unwrap().ino();
    let (web, db) = (inode("web.container"), inode("db.container"));

    // The same units again: nothing written, nothing changed.
    let report = sync(&RealFs, &root, targets).unwrap();
    assert!(report.changed_rootful.is_empty(), "{report:?}");
    assert_eq!((inode("web.container"), inode("db.container")), (web, db));

    // One unit's text changes, one unit is added, and a synced file's mode was altered.
    let more = [
        ("web.container", "rootful"),
        ("db.container", "rootful"),
        ("new.volume", "rootful"),
    ];
    let root = config_root(&dir.path().join("b"), &more);
    fs::write(root.join("quadlet/db.container"), "[X]\nother\n").unwrap();
    fs::set_permissions(
        rootful.join("web.container"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let report = sync(&RealFs, &root, targets).unwrap();
    assert_eq!(
        report.changed_rootful,
        ["db.container", "new.volume", "web.container"]
    );
    assert!(report.changed(Mode::Rootful, "db.container"));
    assert!(!report.changed(Mode::Rootless, "db.container"));
    assert_eq!(
        fs::read_to_string(rootful.join("db.container")).unwrap(),
        "[X]\nother\n"
    );
}
