//! T1: a cut at any single write converges. Every write of the vfat, the f2fs copy and the table
//! goes through `DiskIo`; a test layer fails at write N (a clean cut before it, or a torn write
//! that lands only its first half), and every later write and flush too, as after a power
//! cut. Then a plain run (plan again, apply) must complete, and the disk must equal a clean run's
//! byte for byte (SOURCE_DATE_EPOCH fixed), with the raw region untouched. The image is a 3 GiB
//! flashed rock64 disk with the real board definitions (vfat boot-b, f2fs data with its
//! directories).

#![allow(clippy::unwrap_used)]

mod common;

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use atomix_repart::apply;
use atomix_repart::io::DiskIo;
use common::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// Write N does not happen.
    Before,
    /// Write N lands its first half (whole sectors), then the power goes.
    Torn,
}

/// Fails write number `fail_at` (1-based) and everything after it.
struct FailingIo {
    file: File,
    fail_at: usize,
    cut: Cut,
    writes: Cell<usize>,
}

impl DiskIo for FailingIo {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.writes.get() + 1;
        self.writes.set(n);
        if n < self.fail_at {
            return FileExt::write_all_at(&self.file, buf, offset);
        }
        if n == self.fail_at && self.cut == Cut::Torn {
            let half = buf.len() / 2 / 512 * 512;
            FileExt::write_all_at(&self.file, &buf[..half], offset)?;
        }
        Err(io::Error::other(format!("injected cut at write {n}")))
    }

    fn flush(&self) -> io::Result<()> {
        if self.writes.get() >= self.fail_at {
            return Err(io::Error::other("injected cut: flush"));
        }
        Ok(())
    }
}

fn fixture(path: &Path) {
    if path.exists() {
        std::fs::remove_file(path).unwrap();
    }
    flashed_image(path, 3 * GIB);
}

/// Applies with a cut at write `n`; returns whether the cut happened (false: fewer writes).
fn cut_run(image: &Path, n: usize, cut: Cut) -> bool {
    let plan = board_plan(image);
    let io = FailingIo {
        file: OpenOptions::new()
            .read(true)
            .write(true)
            .open(image)
            .unwrap(),
        fail_at: n,
        cut,
        writes: Cell::new(0),
    };
    let result = apply::apply_with(&plan, image, &io, &reproducible(), &mut |_| {});
    match result {
        Ok(_) => {
            assert!(io.writes.get() < n, "succeeded although write {n} failed");
            false
        }
        Err(e) => {
            assert!(io.writes.get() >= n, "failed before the cut: {e}");
            true
        }
    }
}

#[test]
fn a_cut_at_every_write_converges_to_the_clean_result() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("cut.img");

    fixture(&image);
    let raw = raw_region_hash(&image);
    board_apply(&image);
    let clean = sha256(&image);
    let clean_dump = sfdisk_dump(&image);
    assert_vfat_clean(&image, 3, dir.path());
    assert_f2fs_clean(&image, 5, dir.path());

    let mut cuts = 0;
    for cut in [Cut::Before, Cut::Torn] {
        for n in 1.. {
            fixture(&image);
            if !cut_run(&image, n, cut) {
                assert!(n > 10, "only {} writes: the test proves little", n - 1);
                eprintln!("{cut:?}: {} writes, each one cut", n - 1);
                break;
            }
            cuts += 1;
            // The plain re-run: plan again from whatever the cut left, apply.
            let report = board_apply(&image);
            assert!(
                !report.nothing_done(),
                "{cut:?} at write {n}: the re-run found nothing to do"
            );
            assert_eq!(
                sha256(&image),
                clean,
                "{cut:?} at write {n}: the disk differs from a clean run\n{}",
                sfdisk_dump(&image)
            );
            assert_eq!(
                raw_region_hash(&image),
                raw,
                "{cut:?} at write {n}: raw region"
            );
            // And a further run has nothing to do.
            let plan = board_plan(&image);
            assert!(apply::pending(&plan, &image).unwrap().is_empty());
        }
    }
    // The byte-identical result implies these; checked once more on the last run.
    assert_eq!(sfdisk_dump(&image), clean_dump);
    assert_vfat_clean(&image, 3, dir.path());
    assert_f2fs_clean(&image, 5, dir.path());
    assert!(cuts > 20, "{cuts} cuts");
}
