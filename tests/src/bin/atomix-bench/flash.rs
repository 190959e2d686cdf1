//! `atomix-bench flash`: `atomix flash` against `dd` writing the same image to the same loop
//! device (DESIGN section 8, issue 4).
//!
//! Owns: the image, the loop device, the rounds, their checks and the table. Must not: flash by
//! any other path than the `atomix` binary it is given.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use atomix_systests::bench::Stats;
use atomix_systests::bench_table::{JsonStyle, Table, Target, json_text};
use atomix_systests::run_checked;

const MIB: u64 = 1 << 20;
/// Target: our write throughput at least this fraction of dd's.
const TARGET_RATIO: f64 = 0.9;

/// `atomix flash` against `dd`, writing the same image to the same loop device (needs root).
///
/// Side by side in one run (DESIGN section 8; issue 4's target: our write throughput at least
/// 0.9x dd's):
///
/// - image: --size MiB of pseudo-random data with a 64 MiB hole in the middle (free space in a
///   real image), so compression or zero detection cannot help either side;
/// - target: one loop device over a backing file of the image's size, in the same directory as
///   the image (the same file system for both sides);
/// - ours: `atomix flash --yes --no-verify IMAGE /dev/loopN` (release build; the write and its
///   fsync, no verification): wall time of the process;
/// - anchor: `dd if=IMAGE of=/dev/loopN bs=4M conv=fsync`: wall time of the process (and, as a
///   second, harder anchor, the same dd with oflag=direct, which ours also uses);
/// - verification, separately: ours is `atomix flash --yes --json` (its verify_seconds: read
///   back with O_DIRECT and SHA-256), the anchor right after a dd write is
///   `dd if=/dev/loopN bs=4M iflag=direct | sha256sum`; both must give the image's SHA-256.
///
/// Before every run the loop device is discarded (blkdiscard: the backing file becomes a hole
/// again, so every run allocates the same blocks), dirty data is synced and the page cache is
/// dropped (echo 3 > /proc/sys/vm/drop_caches), so each run starts from the same state. The
/// order of ours and dd alternates between rounds; medians are reported. Run it through
/// scripts/bench-flash.sh.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The release `atomix` binary to measure.
    #[arg(long, value_name = "PATH")]
    pub atomix: PathBuf,
    /// Rounds (each: ours, dd, dd oflag=direct, and both verifications).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = crate::at_least_one)]
    pub rounds: usize,
    /// The image's size in MiB (at least 128).
    #[arg(long = "size", value_name = "MIB", default_value_t = 1024, value_parser = size_mib)]
    pub size_mib: u64,
    /// Where the image and the loop device's backing file go (default: a temporary directory
    /// under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `--size`: at least 128 (MiB).
fn size_mib(value: &str) -> Result<u64, String> {
    match value.parse() {
        Ok(n) if n >= 128 => Ok(n),
        _ => Err("expected a number of MiB >= 128".to_owned()),
    }
}

/// Runs `cmd` and returns its wall time in seconds (and its stdout).
fn timed(cmd: &mut Command) -> Result<(f64, String)> {
    let started = Instant::now();
    let out = run_checked(cmd)?;
    Ok((started.elapsed().as_secs_f64(), out))
}

/// The loop device, detached when dropped (also on an error).
struct Loop {
    dev: PathBuf,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// The image: xorshift64* data (incompressible, fast to make), a 64 MiB hole in the middle.
fn make_image(path: &Path, bytes: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.set_len(bytes)?;
    let hole = (bytes / 2 / MIB * MIB, 64 * MIB);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; (4 * MIB) as usize];
    let mut at = 0;
    while at < bytes {
        let n = (bytes - at).min(chunk.len() as u64) as usize;
        if at >= hole.0 && at < hole.0 + hole.1 {
            at += n as u64;
            continue;
        }
        for word in chunk[..n].chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        f.write_all_at(&chunk[..n], at)?;
        at += n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// Every run starts alike: the target's blocks discarded, nothing dirty, no page cache.
fn reset(dev: &Path) -> Result<()> {
    run_checked(Command::new("blkdiscard").arg(dev))?;
    run_checked(&mut Command::new("sync"))?;
    fs::write("/proc/sys/vm/drop_caches", "3\n").context("cannot drop caches")?;
    Ok(())
}

fn ours(atomix: &Path, image: &Path, dev: &Path, verify: bool) -> Result<(f64, serde_json::Value)> {
    let mut cmd = Command::new(atomix);
    cmd.args(["flash", "--yes", "--json"]);
    if !verify {
        cmd.arg("--no-verify");
    }
    let (secs, out) = timed(cmd.arg(image).arg(dev).stdin(Stdio::null()))?;
    let report: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("atomix flash --json printed {out}"))?;
    Ok((secs, report))
}

fn dd_write(image: &Path, dev: &Path, direct: bool) -> Result<f64> {
    let mut cmd = Command::new("dd");
    cmd.arg(format!("if={}", image.display()))
        .arg(format!("of={}", dev.display()))
        .args(["bs=4M", "conv=fsync", "status=none"]);
    if direct {
        cmd.arg("oflag=direct");
    }
    Ok(timed(&mut cmd)?.0)
}

/// `dd if=DEV bs=4M iflag=direct count=.. | sha256sum`: (seconds, hex digest).
fn dd_verify(dev: &Path, bytes: u64) -> Result<(f64, String)> {
    let script = format!(
        "dd if={} bs=4M iflag=direct count={} status=none | sha256sum",
        dev.display(),
        bytes / (4 * MIB)
    );
    let (secs, out) = timed(Command::new("sh").args(["-c", &script]))?;
    let hash = out.split_whitespace().next().unwrap_or_default().to_owned();
    Ok((secs, hash))
}

/// Runs the rounds and prints the table (or the JSON).
///
/// # Errors
/// Not root, a tool fails, or a copy does not read back as the image.
pub fn run(args: &Args) -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "needs root (loop devices, blkdiscard, drop_caches)"
    );
    let scratch = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let dir = scratch.path();
    let bytes = args.size_mib * MIB;
    let image = dir.join("image.img");
    eprintln!("making a {} MiB image in {}", args.size_mib, dir.display());
    make_image(&image, bytes)?;
    let sha = run_checked(Command::new("sha256sum").arg(&image))?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let backing = dir.join("target.img");
    File::create(&backing)?.set_len(bytes)?;
    let lo = Loop {
        dev: PathBuf::from(
            run_checked(
                Command::new("losetup")
                    .args(["--find", "--show"])
                    .arg(&backing),
            )?
            .trim(),
        ),
    };
    let dev = lo.dev.as_path();

    let (mut ours_w, mut dd_w, mut ours_v, mut dd_v) = (vec![], vec![], vec![], vec![]);
    // The same dd with O_DIRECT writes (what ours uses): a second, harder anchor.
    let mut ddd_w = vec![];
    for round in 0..args.rounds {
        let ours_run = || -> Result<f64> {
            reset(dev)?;
            Ok(ours(&args.atomix, &image, dev, false)?.0)
        };
        let dd_run = |direct| -> Result<f64> {
            reset(dev)?;
            dd_write(&image, dev, direct)
        };
        let (o, d, dd_direct) = if round % 2 == 0 {
            let o = ours_run()?;
            let d = dd_run(false)?;
            (o, d, dd_run(true)?)
        } else {
            let dd_direct = dd_run(true)?;
            let d = dd_run(false)?;
            (ours_run()?, d, dd_direct)
        };
        // Verification: ours inside a full flash, dd's read-back right after a dd write.
        reset(dev)?;
        let (_, report) = ours(&args.atomix, &image, dev, true)?;
        ensure!(
            report["verified"] == true && report["sha256"] == sha.as_str(),
            "round {}: atomix flash did not verify: {report}",
            round + 1
        );
        let ov = report["verify_seconds"]
            .as_f64()
            .context("no verify_seconds in the report")?;
        reset(dev)?;
        dd_write(&image, dev, false)?;
        let (dv, dd_sha) = dd_verify(dev, bytes)?;
        ensure!(
            dd_sha == sha,
            "round {}: dd's copy reads back as {dd_sha}, the image is {sha}",
            round + 1
        );
        eprintln!(
            "round {}: write ours {o:.2} s ({:.0} MB/s), dd {d:.2} s ({:.0} MB/s), dd \
             oflag=direct {dd_direct:.2} s ({:.0} MB/s); verify ours {ov:.2} s, dd|sha256sum \
             {dv:.2} s",
            round + 1,
            bytes as f64 / o / 1e6,
            bytes as f64 / d / 1e6,
            bytes as f64 / dd_direct / 1e6
        );
        ddd_w.push(dd_direct);
        ours_w.push(o);
        dd_w.push(d);
        ours_v.push(ov);
        dd_v.push(dv);
    }
    drop(lo);

    let medians = Medians {
        ours_write: median_f64(&ours_w)?,
        dd_write: median_f64(&dd_w)?,
        dd_direct_write: median_f64(&ddd_w)?,
        ours_verify: median_f64(&ours_v)?,
        dd_verify: median_f64(&dd_v)?,
    };
    crate::print(&report(args.rounds, args.size_mib, &medians, args.json))
}

/// The medians of the rounds, in seconds.
struct Medians {
    ours_write: f64,
    dd_write: f64,
    dd_direct_write: f64,
    ours_verify: f64,
    dd_verify: f64,
}

/// What is printed: the table, or with `json` the JSON line.
fn report(rounds: usize, size_mib: u64, m: &Medians, json: bool) -> String {
    let bytes = size_mib * MIB;
    let (o, d) = (m.ours_write, m.dd_write);
    let (ov, dv) = (m.ours_verify, m.dd_verify);
    let ddd = m.dd_direct_write;
    let (o_mbs, d_mbs, ddd_mbs) = (
        bytes as f64 / o / 1e6,
        bytes as f64 / d / 1e6,
        bytes as f64 / ddd / 1e6,
    );
    let ratio = o_mbs / d_mbs;
    let target = Target::AtLeast(TARGET_RATIO);
    if json {
        let result = serde_json::json!({
            "rounds": rounds,
            "image_bytes": bytes,
            "ours_write_seconds": o,
            "dd_write_seconds": d,
            "ours_write_mb_per_s": o_mbs,
            "dd_write_mb_per_s": d_mbs,
            "dd_direct_write_seconds": ddd,
            "dd_direct_write_mb_per_s": ddd_mbs,
            "ratio": ratio,
            "target_ratio_at_least": TARGET_RATIO,
            "met": target.met(ratio),
            "ours_verify_seconds": ov,
            "dd_verify_seconds": dv,
        });
        return json_text(&result, JsonStyle::Line);
    }
    let mut table = Table::markdown(["metric", "ours", "anchor (dd)", "ratio", "target"])
        .with_title(format!(
            "flash of a {size_mib} MiB image to a loop device, median of {rounds} rounds"
        ));
    table
        .row([
            "write throughput incl. fsync (MB/s)".to_owned(),
            format!("{o_mbs:.0}"),
            format!("{d_mbs:.0}"),
            format!("{ratio:.2}"),
            target.cell(ratio),
        ])
        .row([
            "write throughput vs dd oflag=direct (MB/s)".to_owned(),
            format!("{o_mbs:.0}"),
            format!("{ddd_mbs:.0}"),
            format!("{:.2}", o_mbs / ddd_mbs),
            "-".to_owned(),
        ])
        .row([
            "write time incl. fsync (s)".to_owned(),
            format!("{o:.2}"),
            format!("{d:.2}"),
            format!("{:.2}", o / d),
            "-".to_owned(),
        ])
        .row([
            "verify: read back + sha256 (s)".to_owned(),
            format!("{ov:.2}"),
            format!("{dv:.2}"),
            format!("{:.2}", ov / dv),
            "-".to_owned(),
        ]);
    table.render()
        + "anchor write: dd bs=4M conv=fsync; anchor verify: dd bs=4M iflag=direct | sha256sum\n"
}

fn median_f64(values: &[f64]) -> Result<f64> {
    Stats::of(values).map(|s| s.median).context("no rounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIANS: Medians = Medians {
        ours_write: 1.5,
        dd_write: 2.0,
        dd_direct_write: 1.6,
        ours_verify: 0.8,
        dd_verify: 1.0,
    };

    #[test]
    fn table_as_printed() {
        assert_eq!(
            report(5, 1024, &MEDIANS, false),
            "flash of a 1024 MiB image to a loop device, median of 5 rounds\n\
             | metric | ours | anchor (dd) | ratio | target |\n\
             |---|---|---|---|---|\n\
             | write throughput incl. fsync (MB/s) | 716 | 537 | 1.33 | >= 0.90 (met) |\n\
             | write throughput vs dd oflag=direct (MB/s) | 716 | 671 | 1.07 | - |\n\
             | write time incl. fsync (s) | 1.50 | 2.00 | 0.75 | - |\n\
             | verify: read back + sha256 (s) | 0.80 | 1.00 | 0.80 | - |\n\
             anchor write: dd bs=4M conv=fsync; anchor verify: dd bs=4M iflag=direct | sha256sum\n"
        );
        let slow = Medians {
            ours_write: 3.0,
            ..MEDIANS
        };
        let text = report(5, 1024, &slow, false);
        assert!(
            text.contains("| 358 | 537 | 0.67 | >= 0.90 (NOT met) |\n"),
            "{text}"
        );
    }

    #[test]
    fn json_as_printed() {
        assert_eq!(
            report(5, 1024, &MEDIANS, true),
            "{\"dd_direct_write_mb_per_s\":671.08864,\"dd_direct_write_seconds\":1.6,\
             \"dd_verify_seconds\":1.0,\"dd_write_mb_per_s\":536.870912,\
             \"dd_write_seconds\":2.0,\"image_bytes\":1073741824,\"met\":true,\
             \"ours_verify_seconds\":0.8,\"ours_write_mb_per_s\":715.8278826666666,\
             \"ours_write_seconds\":1.5,\"ratio\":1.3333333333333333,\"rounds\":5,\
             \"target_ratio_at_least\":0.9}\n"
        );
    }
}
