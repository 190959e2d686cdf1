//! The run behind [`run`]: building our initramfs (with and without modules), the baseline's
//! from the same module closure, the probe rootfs and the disk image, then booting each side
//! in QEMU in turn and reading every boot's sample.
//!
//! Must not: parse a console or shape the result's table (that is `sample.rs` and `result.rs`).

use std::fs;
use std::path::Path;

use atomix_board::Board;
use atomix_image::disk::{self, DiskError, DiskLayout, DiskSpec, RootfsSource};
use atomix_image::initramfs::{self, InitramfsSpec};
use atomix_image::modules::{Module, ModuleIndex};
use atomix_qemu::Ending;

use super::{
    BOARD, BOOT_TIMEOUT, BenchError, BenchResult, BootSample, SLOT_PARTLABEL, Side, Sizes,
    baseline_archive, baseline_init_script, sample_from_console,
};
use crate::{Artifacts, KERNEL_CONSOLE_ARGS, Probe, build_test_rootfs};

/// Builds both initramfs, one disk image, and boots each side `boots` times (alternating),
/// reporting progress through `progress`. Scratch files live under the target directory and
/// are removed at the end; console logs stay in `<target>/qemu-logs/bench-*.log`.
///
/// # Errors
/// The first build step that fails, or the first boot that does not end in a power-off after
/// `ROOTFS-DONE` (naming its console log).
pub fn run(boots: usize, progress: &mut dyn FnMut(&str)) -> Result<BenchResult, BenchError> {
    let artifacts = Artifacts::locate()?;
    let board = Board::builtin(BOARD).map_err(BenchError::Board)?;
    let scratch = artifacts.scratch_dir("bench-")?;
    let dir = scratch.path();

    progress("building our initramfs (with and without modules)");
    let ours_img = dir.join("initramfs-ours.img");
    let spec = InitramfsSpec {
        modules_root: Some(artifacts.modules_root.clone()),
        modules: board.modules.clone(),
        ..InitramfsSpec::new(&artifacts.init_binary)
    };
    let ours = build_initramfs(&spec, &ours_img)?;
    let bare = build_initramfs(
        &InitramfsSpec::new(&artifacts.init_binary),
        &dir.join("initramfs-ours-bare.img"),
    )?;

    progress("building the baseline initramfs (busybox sh /init)");
    let root = &artifacts.modules_root;
    let module_err = |source| BenchError::Modules {
        root: root.clone(),
        source,
    };
    let index = ModuleIndex::open(root, None).map_err(module_err)?;
    let closure = index.closure(&board.modules).map_err(module_err)?;
    let names: Vec<String> = closure.iter().map(|m| m.name.clone()).collect();
    if names != ours.modules {
        return Err(BenchError::ModuleMismatch {
            ours: ours.modules,
            baseline: names,
        });
    }
    let modules = read_modules(&closure, index.version())?;
    let paths: Vec<String> = modules.iter().map(|(p, _)| p.clone()).collect();
    let busybox = read(&artifacts.busybox_aarch64)?;
    let script = baseline_init_script(&paths, SLOT_PARTLABEL);
    let base_img = dir.join("initramfs-baseline.img");
    let base_bytes = baseline_archive(&script, &busybox, &modules)?;
    fs::write(&base_img, &base_bytes).map_err(|source| BenchError::Write {
        path: base_img.clone(),
        source,
    })?;
    let base_bare = baseline_archive(&baseline_init_script(&[], SLOT_PARTLABEL), &busybox, &[])?;

    progress("building the probe rootfs and the disk image");
    let rootfs = dir.join("rootfs");
    build_test_rootfs(&rootfs, &artifacts.busybox_aarch64)?;
    let disk_img = dir.join("disk.img");
    let disk_spec = DiskSpec {
        layout: DiskLayout::atomix().map_err(|source| BenchError::Disk {
            path: disk_img.clone(),
            source: DiskError::Layout { source },
        })?,
        loader: Vec::new(),
        boot_files: Vec::new(),
        rootfs: RootfsSource::Dir(rootfs),
        epoch: 0,
        seed: "atomix-bench".to_owned(),
        size: None,
    };
    disk::build(&disk_spec, &disk_img, progress).map_err(|source| BenchError::Disk {
        path: disk_img.clone(),
        source,
    })?;

    let sizes = Sizes {
        ours_with_modules: ours.compressed_bytes,
        ours_without_modules: bare.compressed_bytes,
        baseline_with_modules: base_bytes.len() as u64,
        baseline_without_modules: base_bare.len() as u64,
        init: file_size(&artifacts.init_binary)?,
        baseline_init: busybox.len() as u64 + script.len() as u64,
    };

    let mut result = BenchResult {
        ours: Vec::new(),
        baseline: Vec::new(),
        sizes,
        modules: names,
    };
    for boot in 1..=boots {
        for (side, img) in [(Side::Ours, &ours_img), (Side::Baseline, &base_img)] {
            progress(&format!("boot {boot}/{boots}: {side}"));
            let sample = boot_once(&artifacts, side, boot, img, &disk_img)?;
            progress(&format!(
                "boot {boot}/{boots}: {side}: initrd {:.1} ms",
                sample.initrd_ms
            ));
            match side {
                Side::Ours => result.ours.push(sample),
                Side::Baseline => result.baseline.push(sample),
            }
        }
    }
    Ok(result)
}

fn build_initramfs(
    spec: &InitramfsSpec,
    out: &Path,
) -> Result<initramfs::InitramfsReport, BenchError> {
    initramfs::build(spec, out).map_err(|source| BenchError::Initramfs {
        path: out.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, BenchError> {
    fs::read(path).map_err(|source| BenchError::ReadInput {
        path: path.to_owned(),
        source,
    })
}

fn file_size(path: &Path) -> Result<u64, BenchError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| BenchError::Stat {
            path: path.to_owned(),
            source,
        })
}

/// Each module as (`/lib/modules/<version>/<relative path>`, contents): the layout of ours.
fn read_modules(closure: &[Module], version: &str) -> Result<Vec<(String, Vec<u8>)>, BenchError> {
    closure
        .iter()
        .map(|m| {
            let rel = m
                .relative_path
                .to_str()
                .ok_or_else(|| BenchError::NonUtf8Path {
                    path: m.path.clone(),
                })?;
            Ok((format!("/lib/modules/{version}/{rel}"), read(&m.path)?))
        })
        .collect()
}

/// One QEMU boot of `initramfs` with `disk` (under `-snapshot`), judged and measured.
fn boot_once(
    artifacts: &Artifacts,
    side: Side,
    boot: usize,
    initramfs: &Path,
    disk: &Path,
) -> Result<BootSample, BenchError> {
    let append = format!(
        "{KERNEL_CONSOLE_ARGS} atomixos.lowerdev=PARTLABEL={SLOT_PARTLABEL} rauc.slot=boot.0"
    );
    let mut cfg = crate::qemu_config_for(
        &artifacts.kernel_image,
        initramfs,
        Some(disk),
        &append,
        BOOT_TIMEOUT,
        &format!("bench-{side}-{boot}"),
    );
    cfg.extra_args.push("-snapshot".to_owned());
    let log = cfg.console_log.clone().unwrap_or_default();
    let outcome = atomix_qemu::run(&cfg, &mut |_| {}).map_err(|source| BenchError::Qemu {
        side,
        boot,
        source,
    })?;
    let done = Probe::parse(&outcome.console).done;
    if outcome.ending != Ending::PowerOff || !done {
        return Err(BenchError::BootFailed {
            side,
            boot,
            ending: outcome.ending,
            done,
            log,
        });
    }
    sample_from_console(&outcome.console, side, outcome.wall, &log).map_err(|mark| {
        BenchError::MissingMark {
            side,
            boot,
            mark,
            log: log.clone(),
        }
    })
}
