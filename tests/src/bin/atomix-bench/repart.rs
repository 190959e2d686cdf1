//! `atomix-bench repart`: first-boot repartitioning of a flashed 16 GiB image file, ours
//! against systemd-repart + mkfs.f2fs + sload.f2fs (DESIGN section 8), and in QEMU our first
//! boot against the steady-state boot.
//!
//! Owns: the flashed image, the anchor's definitions and steps, the runs, their checks and the
//! two tables. Must not: repartition by any other path than the `atomix` binary it is given.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, types};
use atomix_repart::vfat;
use atomix_systests::bench_table::{JsonStyle, Table, Target, json_text};
use atomix_systests::{median, run_checked};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Target: our time at most this fraction of the anchor's.
const TARGET_RATIO: f64 = 0.5;
const DIRS: [&str; 5] = [
    "config",
    "config/quadlet",
    "config/ssh-authorized-keys",
    "containers",
    "logs",
];

/// First-boot repartitioning of a flashed 16 GiB image file, ours against the anchor (needs
/// root: loop devices).
///
/// Side by side in one run (DESIGN section 8):
///
/// - ours: `atomix repart --board rock64 --dry-run=no IMAGE` (boot-b vfat, rootfs-b, data f2fs
///   with its five directories, backup GPT moved);
/// - anchor: `systemd-repart --dry-run=no --empty=allow --discard=no --seed=<disk GUID>` with the
///   same definitions minus Format=f2fs and MakeDirectories= (v252 cannot make f2fs; it does
///   make the vfat, with mkfs.vfat through a loop device), then, as systemd-repart itself formats,
///   through a loop device over the data partition (`losetup -o --sizelimit`): `mkfs.f2fs -f -t 0
///   -l data` and `sload.f2fs` of a directory holding the five directories.
///
/// Each run starts from a fresh sparse copy of the same flashed image; the order alternates;
/// the median of N runs is reported. Both results are checked to have the same partition table
/// (starts, sizes, types, labels and, with the same seed, UUIDs).
///
/// Then, in QEMU (the real arm64 kernel and our /init), the initrd time of a first boot of a
/// flashed 16 GiB disk against the steady-state boot that follows it (initrd.json, median of
/// N), as a second table. Run it through scripts/bench-repart.sh.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The release `atomix` binary to measure.
    #[arg(long, value_name = "PATH")]
    pub atomix: PathBuf,
    /// Runs of each side (and first/steady boot pairs in QEMU).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = crate::at_least_one)]
    pub runs: usize,
    /// Where the images go (default: a temporary directory under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the results as JSON (one line for each table) instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// The flashed rock64 image: raw region bytes, boot-a FAT16, rootfs-a data, backup after
/// rootfs-a; extended to 16 GiB.
fn flashed(path: &Path) -> Result<Guid> {
    let size = 1169 * MIB;
    let g = Geometry::new(size, 512)?;
    let disk_guid = Guid::from_seed(b"bench/disk");
    let mut t = gpt::Table::spanning(&g, disk_guid);
    t.first_usable_lba = 32768;
    t.partitions = vec![
        Partition {
            number: 1,
            type_guid: types::XBOOTLDR,
            uuid: Guid::from_seed(b"bench/boot-a"),
            first_lba: 32768,
            last_lba: 294_911,
            attributes: gpt::ATTR_LEGACY_BIOS_BOOTABLE,
            name: "boot-a".into(),
        },
        Partition {
            number: 2,
            type_guid: types::ROOT_ARM64,
            uuid: Guid::from_seed(b"bench/rootfs-a"),
            first_lba: 294_912,
            last_lba: 2_392_063,
            attributes: 0,
            name: "rootfs-a".into(),
        },
    ];
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_len(size)?;
    gpt::write(&mut f, size, &t)?;
    f.write_all_at(&vec![0xA5; MIB as usize], 64 * 512)?;
    let opts = vfat::VfatOptions {
        volume_label: *b"BOOT-A     ",
        volume_id: 1,
        fat_type: None,
        time: 1_700_000_000,
    };
    vfat::format(&f, 16 * MIB, 128 * MIB, &opts, &[])?;
    f.write_all_at(b"hsqs", 144 * MIB)?;
    f.write_all_at(&vec![0x5A; 64 * MIB as usize], 144 * MIB + 4096)?;
    f.set_len(16 * GIB)?;
    f.sync_all()?;
    Ok(disk_guid)
}

fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    run_checked(Command::new("cp").arg("--sparse=always").arg(from).arg(to))?;
    run_checked(&mut Command::new("sync"))?;
    Ok(())
}

fn ours(atomix: &Path, image: &Path) -> Result<Duration> {
    let started = Instant::now();
    run_checked(
        Command::new(atomix)
            .args(["repart", "--board", "rock64", "--dry-run=no"])
            .arg(image),
    )?;
    Ok(started.elapsed())
}

struct AnchorTimes {
    total: Duration,
    repart: Duration,
}

fn anchor(defs: &Path, staging: &Path, seed: Guid, image: &Path) -> Result<AnchorTimes> {
    let started = Instant::now();
    run_checked(
        Command::new("systemd-repart")
            .args([
                "--dry-run=no",
                "--empty=allow",
                "--discard=no",
                "--json=short",
            ])
            .arg(format!("--seed={seed}"))
            .arg(format!("--definitions={}", defs.display()))
            .arg(image),
    )?;
    let repart = started.elapsed();
    // The data partition (5) as systemd-repart placed it.
    let t = gpt::read(&mut fs::File::open(image)?, 16 * GIB)?;
    let data = t
        .partition(5)
        .context("systemd-repart made no partition 5")?;
    let dev = run_checked(
        Command::new("losetup")
            .args(["--find", "--show", "-o"])
            .arg((data.first_lba * 512).to_string())
            .arg("--sizelimit")
            .arg((data.sectors() * 512).to_string())
            .arg(image),
    )?;
    let dev = dev.trim().to_owned();
    let result = (|| -> Result<()> {
        run_checked(Command::new("mkfs.f2fs").args(["-q", "-f", "-t", "0", "-l", "data", &dev]))?;
        // sload.f2fs 1.15 exits 1 after repairing the inline_xattr_size of the inodes it made
        // (flexible_inline_xattr); the file system is clean afterwards. Accept that one case.
        let out = Command::new("sload.f2fs")
            .arg("-f")
            .arg(staging)
            .args(["-t", "/", &dev])
            .output()?;
        if !out.status.success() {
            run_checked(Command::new("fsck.f2fs").args(["--dry-run", &dev]))?;
        }
        Ok(())
    })();
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    result?;
    Ok(AnchorTimes {
        total: started.elapsed(),
        repart,
    })
}

/// Every partition (start, size, type, UUID, label, attributes) and the usable range.
fn layout(image: &Path) -> Result<gpt::Table> {
    let mut t = gpt::read(&mut fs::File::open(image)?, 16 * GIB)?;
    // The disk GUID is the flashed image's on both sides; compare the partitions and range.
    t.disk_guid = Guid::NIL;
    Ok(t)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the host benchmark and prints its table (or JSON line), then the guest's.
///
/// # Errors
/// Not root, a tool or a boot fails, or the two sides made different partition tables.
pub fn run(args: &Args) -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "the anchor needs root (systemd-repart formats vfat through a loop device; mkfs.f2fs \
         uses one too)"
    );
    let scratch = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let dir = scratch.path();
    let flashed_image = dir.join("flashed.img");
    let seed = flashed(&flashed_image)?;

    let defs = dir.join("defs");
    fs::create_dir(&defs)?;
    let board = atomix_board::Board::builtin("rock64")?;
    for (file, text) in board.repart.definitions {
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| *l != "Format=f2fs" && !l.starts_with("MakeDirectories="))
            .collect();
        fs::write(defs.join(file), kept.join("\n") + "\n")?;
    }
    let staging = dir.join("dirs");
    for d in DIRS {
        fs::create_dir_all(staging.join(d))?;
    }

    let (mut ours_t, mut anchor_t, mut repart_t) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.runs {
        let a = dir.join("ours.img");
        let b = dir.join("anchor.img");
        copy_sparse(&flashed_image, &a)?;
        copy_sparse(&flashed_image, &b)?;
        let do_ours = || ours(&args.atomix, &a);
        let do_anchor = || anchor(&defs, &staging, seed, &b);
        let (o, t) = if i % 2 == 0 {
            let o = do_ours()?;
            (o, do_anchor()?)
        } else {
            let t = do_anchor()?;
            (do_ours()?, t)
        };
        ensure!(
            layout(&a)? == layout(&b)?,
            "run {i}: ours and the anchor made different partition tables"
        );
        eprintln!(
            "run {}: ours {:.1} ms, anchor {:.1} ms (systemd-repart {:.1} ms)",
            i + 1,
            ms(o),
            ms(t.total),
            ms(t.repart)
        );
        ours_t.push(o);
        anchor_t.push(t.total);
        repart_t.push(t.repart);
        fs::remove_file(&a)?;
        fs::remove_file(&b)?;
    }
    let (o, t, r) = (
        median(&ours_t).context("no runs")?,
        median(&anchor_t).context("no runs")?,
        median(&repart_t).context("no runs")?,
    );
    crate::print(&host_report(args.runs, ms(o), ms(t), ms(r), args.json))?;
    guest_first_vs_steady(dir, args.runs, args.json)
}

/// In the guest (QEMU TCG, the real arm64 kernel): `/init`'s time (initrd.json `total_ms`, and
/// its repart stage) on the first boot of a flashed 16 GiB disk against the next, steady-state
/// boot of the same disk; median over `runs` fresh disks.
fn guest_first_vs_steady(dir: &Path, runs: usize, json: bool) -> Result<()> {
    let artifacts = atomix_systests::Artifacts::locate()?;
    let initramfs = dir.join("initramfs.img");
    atomix_image::initramfs::build(&artifacts.qemu_virt_initramfs(true)?, &initramfs)?;
    let rootfs = dir.join("rootfs");
    atomix_systests::build_test_rootfs(&rootfs, &artifacts.busybox_aarch64)?;
    let flashed = dir.join("guest-flashed.img");
    artifacts.probe_disk(
        &rootfs,
        &initramfs,
        "bench-repart",
        Some(16 * GIB),
        &flashed,
    )?;

    let (mut first, mut steady, mut first_repart, mut steady_repart) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let disk = dir.join("guest.img");
        copy_sparse(&flashed, &disk)?;
        for (kind, totals, reparts) in [
            ("first", &mut first, &mut first_repart),
            ("steady", &mut steady, &mut steady_repart),
        ] {
            let cfg = atomix_systests::qemu_config_for(
                &artifacts.kernel_image,
                &initramfs,
                Some(&disk),
                "console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a",
                Duration::from_secs(240),
                &format!("bench-repart-{kind}-{}", i + 1),
            );
            let out = atomix_qemu::run(&cfg, &mut |_| {})?;
            let probe = atomix_systests::Probe::parse(&out.console);
            let report = probe.initrd_json.filter(|_| probe.done).with_context(|| {
                format!(
                    "{kind} boot {} did not reach the probe (console: {})",
                    i + 1,
                    atomix_systests::qemu_log_path(&format!("bench-repart-{kind}-{}", i + 1))
                        .display()
                )
            })?;
            let expected = if kind == "first" {
                "applied"
            } else {
                "nothing-to-do"
            };
            ensure!(
                report["repart"]["outcome"] == expected,
                "{kind} boot {}: repart {} (expected {expected})",
                i + 1,
                report["repart"]["outcome"]
            );
            let stage_ms = report["stages"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "repart"))
                .and_then(|s| s["ms"].as_f64())
                .context("no repart stage in initrd.json")?;
            let total = report["total_ms"].as_f64().context("no total_ms")?;
            eprintln!(
                "guest {kind} boot {}: initrd {total:.1} ms, repart {stage_ms:.1} ms",
                i + 1
            );
            totals.push(total);
            reparts.push(stage_ms);
        }
        fs::remove_file(&disk)?;
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, s, fr, sr) = (
        med(first),
        med(steady),
        med(first_repart),
        med(steady_repart),
    );
    crate::print(&guest_report(runs, f, s, fr, sr, json))
}

/// What the host part prints: its table, or with `json` its JSON line. Times in ms: ours, the
/// anchor, and of that systemd-repart.
fn host_report(runs: usize, o: f64, t: f64, r: f64, json: bool) -> String {
    let ratio = o / t;
    let target = Target::AtMost(TARGET_RATIO);
    if json {
        let result = serde_json::json!({
            "runs": runs,
            "ours_ms": o,
            "anchor_ms": t,
            "anchor_systemd_repart_ms": r,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "met": target.met(ratio),
        });
        return json_text(&result, JsonStyle::Line);
    }
    let mut table = Table::markdown(["metric", "ours", "anchor", "ratio", "target"]).with_title(
        format!("first-boot repartitioning of a flashed 16 GiB image file, median of {runs}"),
    );
    table
        .row([
            "partitions + vfat + f2fs + dirs (ms)".to_owned(),
            format!("{o:.1}"),
            format!("{t:.1}"),
            format!("{ratio:.2}"),
            target.cell(ratio),
        ])
        .row([
            "of which systemd-repart (table + vfat) (ms)".to_owned(),
            "-".to_owned(),
            format!("{r:.1}"),
            "-".to_owned(),
            "-".to_owned(),
        ]);
    table.render() + "layouts: identical (starts, sizes, types, UUIDs, labels) in every run\n"
}

/// What the guest part prints: its table (after an empty line), or with `json` its JSON line.
/// Medians in ms: `/init` total of the first and the steady-state boot, and their repart stages.
fn guest_report(runs: usize, f: f64, s: f64, fr: f64, sr: f64, json: bool) -> String {
    if json {
        let result = serde_json::json!({
            "guest_first_boot_initrd_ms": f,
            "guest_steady_boot_initrd_ms": s,
            "guest_first_boot_repart_ms": fr,
            "guest_steady_boot_repart_ms": sr,
        });
        return json_text(&result, JsonStyle::Line);
    }
    let mut table = Table::markdown(["metric", "first boot", "steady-state boot", "ratio"])
        .with_title(format!(
            "in the guest (QEMU TCG), 16 GiB disk, initrd.json, median of {runs}"
        ));
    for (metric, first, steady) in [("/init total (ms)", f, s), ("repart stage (ms)", fr, sr)] {
        table.row([
            metric.to_owned(),
            format!("{first:.1}"),
            format!("{steady:.1}"),
            format!("{:.2}", first / steady),
        ]);
    }
    format!("\n{}", table.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table_as_printed() {
        assert_eq!(
            host_report(5, 812.25, 2034.5, 640.0, false),
            "first-boot repartitioning of a flashed 16 GiB image file, median of 5\n\
             | metric | ours | anchor | ratio | target |\n\
             |---|---|---|---|---|\n\
             | partitions + vfat + f2fs + dirs (ms) | 812.2 | 2034.5 | 0.40 | <= 0.50 (met) |\n\
             | of which systemd-repart (table + vfat) (ms) | - | 640.0 | - | - |\n\
             layouts: identical (starts, sizes, types, UUIDs, labels) in every run\n"
        );
        let text = host_report(5, 1500.0, 2000.0, 640.0, false);
        assert!(
            text.contains("| 1500.0 | 2000.0 | 0.75 | <= 0.50 (NOT met) |\n"),
            "{text}"
        );
    }

    #[test]
    fn host_json_as_printed() {
        assert_eq!(
            host_report(5, 812.25, 2034.5, 640.0, true),
            "{\"anchor_ms\":2034.5,\"anchor_systemd_repart_ms\":640.0,\"met\":true,\
             \"ours_ms\":812.25,\"ratio\":0.39923814204964364,\"runs\":5,\
             \"target_ratio\":0.5}\n"
        );
    }

    #[test]
    fn guest_table_and_json_as_printed() {
        assert_eq!(
            guest_report(3, 1850.0, 420.5, 1400.25, 2.5, false),
            "\nin the guest (QEMU TCG), 16 GiB disk, initrd.json, median of 3\n\
             | metric | first boot | steady-state boot | ratio |\n\
             |---|---|---|---|\n\
             | /init total (ms) | 1850.0 | 420.5 | 4.40 |\n\
             | repart stage (ms) | 1400.2 | 2.5 | 560.10 |\n"
        );
        assert_eq!(
            guest_report(3, 1850.0, 420.5, 1400.25, 2.5, true),
            "{\"guest_first_boot_initrd_ms\":1850.0,\"guest_first_boot_repart_ms\":1400.25,\
             \"guest_steady_boot_initrd_ms\":420.5,\"guest_steady_boot_repart_ms\":2.5}\n"
        );
    }
}
