//! Writing and verifying file targets: every byte, progress, interruptions and what they leave,
//! and the plan's refusals.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::*;
use crate::{FlashError, Found, Host, Options, Plan, Refusal, plan};

const MIB: u64 = 1 << 20;

/// A sparse image of `bytes`: patterned data, a hole in the middle, data at the end.
fn sparse_image(path: &Path, bytes: u64) -> Vec<u8> {
    let f = File::create(path).unwrap();
    f.set_len(bytes).unwrap();
    let head: Vec<u8> = (0..3 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    f.write_all_at(&head, 0).unwrap();
    let tail: Vec<u8> = (0..MIB + 123).map(|i| (i % 13) as u8 + 1).collect();
    f.write_all_at(&tail, bytes - tail.len() as u64).unwrap();
    fs::read(path).unwrap()
}

fn file_plan(dir: &Path, bytes: u64) -> (Plan, Vec<u8>) {
    let image = dir.join("disk.img");
    let content = sparse_image(&image, bytes);
    // Stale data that must not survive (the file is longer than the image, too).
    let out = dir.join("out.img");
    fs::write(&out, vec![0xEE; (bytes + 3 * MIB) as usize]).unwrap();
    let opts = Options {
        to_file: true,
        host: Host::under(dir),
    };
    (plan(&image, &out, &opts).unwrap(), content)
}

#[test]
fn writes_every_byte_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // Not a multiple of 4 KiB: the tail goes through the buffered descriptor.
    let bytes = 13 * MIB + 4096 + 123;
    let (plan, content) = file_plan(dir.path(), bytes);
    let mut seen = Vec::new();
    let report = write(
        &plan,
        &WriteOptions::default(),
        &mut |p| seen.push(*p),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(fs::read(dir.path().join("out.img")).unwrap(), content);
    assert!(report.verified);
    assert_eq!(report.bytes, bytes);
    assert_eq!(report.sha256, Some(hex(&Sha256::digest(&content))));
    assert!(report.verify_seconds.is_some());
    // Progress: a start and the chunks of each phase, ending at the total.
    let writes: Vec<u64> = seen
        .iter()
        .filter(|p| p.phase == Phase::Write)
        .map(|p| p.done)
        .collect();
    assert_eq!(writes, [0, 4 * MIB, 8 * MIB, 12 * MIB, bytes]);
    let last = seen.last().unwrap();
    assert_eq!(
        (last.phase, last.done, last.total),
        (Phase::Verify, bytes, bytes)
    );
}

#[test]
fn no_verify_still_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, content) = file_plan(dir.path(), 6 * MIB);
    let opts = WriteOptions { verify: false };
    let report = write(&plan, &opts, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(!report.verified);
    assert_eq!((report.verify_seconds, report.sha256), (None, None));
    assert_eq!(fs::read(dir.path().join("out.img")).unwrap(), content);
}

#[test]
fn an_interruption_stops_after_the_chunk_and_says_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, content) = file_plan(dir.path(), 16 * MIB);
    let cancel = AtomicBool::new(false);
    let err = write(
        &plan,
        &WriteOptions::default(),
        &mut |p| {
            if p.done >= 4 * MIB {
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    )
    .unwrap_err();
    let FlashError::Interrupted {
        phase, done, state, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*phase, *done), (Phase::Write, 4 * MIB));
    assert_eq!(
        *state,
        TargetState::Partial {
            written: 4 * MIB,
            total: 16 * MIB,
            synced: true,
            file: true
        }
    );
    assert_eq!(
        err.to_string(),
        "interrupted after writing 4 MiB of 16 MiB: the file holds only the first 4 MiB \
         of the image's 16 MiB; run flash again"
    );
    let out = fs::read(dir.path().join("out.img")).unwrap();
    assert_eq!(out, content[..4 * MIB as usize]);
}

#[test]
fn an_interruption_while_verifying_leaves_a_complete_unverified_image() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, content) = file_plan(dir.path(), 9 * MIB);
    let cancel = AtomicBool::new(false);
    let err = write(
        &plan,
        &WriteOptions::default(),
        &mut |p| {
            if p.phase == Phase::Verify {
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Interrupted {
                phase: Phase::Verify,
                state: TargetState::Written { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("written and flushed, but not verified")
    );
    assert_eq!(fs::read(dir.path().join("out.img")).unwrap(), content);
}

#[test]
fn states_read_as_sentences() {
    assert_eq!(
        TargetState::partial(0, 10, true, false).to_string(),
        "the target is unchanged"
    );
    assert_eq!(
        TargetState::partial(512 * MIB, 1169 * MIB, true, false).to_string(),
        "the target holds the first 512 MiB of the image (1169 MiB in all) and its old \
         data after that; it will not boot correctly; run flash again"
    );
    assert!(
        TargetState::partial(MIB, 2 * MIB, false, false)
            .to_string()
            .contains("fsync failed")
    );
    assert!(
        TargetState::Unsynced { total: MIB }
            .to_string()
            .contains("partly written")
    );
}

#[test]
fn plans_refuse_files_and_missing_targets_without_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    sparse_image(&image, 3 * MIB);
    let out = dir.path().join("out.img");
    fs::write(&out, b"x").unwrap();
    let opts = Options {
        to_file: false,
        host: Host::under(dir.path()),
    };
    let err = plan(&image, &out, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Refused(Refusal::NotBlockDevice {
                what: Found::RegularFile,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"x");
    let err = plan(&image, &dir.path().join("nope"), &opts).unwrap_err();
    assert!(matches!(err, FlashError::TargetMissing { .. }), "{err}");
    let err = plan(
        &image,
        &image,
        &Options {
            to_file: true,
            ..opts
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, FlashError::Refused(Refusal::SameAsImage { .. })),
        "{err}"
    );
}
