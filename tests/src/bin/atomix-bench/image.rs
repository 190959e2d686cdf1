//! `atomix-bench image`: building the flashable rock64 image, ours against the shell pipeline
//! doing the same work (DESIGN section 8).
//!
//! Owns: the shared inputs, the anchor's script, the runs, their checks and the table. Must not:
//! build the image by any other path than the `atomix` binary it is given.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use atomix_board::Board;
use atomix_board::bootscript::{self, BuildInfo};
use atomix_image::disk;
use atomix_systests::bench_table::{JsonStyle, Table, Target, json_text};
use atomix_systests::{median, run_checked};

const MIB: u64 = 1 << 20;
const EPOCH: &str = "1700000000";
const ID: &str = "bench";
/// Target: our time at most this multiple of the anchor's.
const TARGET_RATIO: f64 = 1.0;

/// Building the flashable rock64 image, ours against the shell pipeline doing the same work.
///
/// Side by side in one run (DESIGN section 8):
///
/// - ours: `atomix image build --board rock64` (release build) with explicit inputs, which packs
///   the rootfs, writes the loader files, the GPT, the vfat (with the generated boot.scr) and
///   the squashfs, fsyncs the image and hashes every input and the whole image for its
///   manifest;
/// - anchor, a bash script: `mksquashfs` (the same flags), `mkimage` (boot.scr from the same
///   rendered text), `truncate`, `dd` of the two loader files, `sfdisk` (p1 and p2 with the
///   same types, labels, attributes and UUIDs), `truncate` + `mkfs.vfat -F 16` of a 128 MiB
///   file and `mcopy` of the four boot files, `dd conv=notrunc,sparse` of the vfat and the
///   squashfs into place, `sync` of the image (ours fsyncs it); then `sha256sum` of the same
///   inputs and the image (ours hashes them for the manifest), timed apart and reported as its
///   own row: it is most of the anchor's time on a small rootfs.
///
/// Two rootfs trees, each its own row: the unpacked kernel module tree of the cache (~290 MB,
/// ~3700 files: mksquashfs dominates, as with a real rootfs) and the probe rootfs of the T3
/// tests (busybox: the rest of the pipeline dominates). The same kernel, initramfs (the rock64
/// initramfs, built once), DTB and loader files everywhere. Runs alternate; one untimed warm-up
/// round of each first; medians of N. Every run's two images are checked to agree: the same
/// `sfdisk -d`, the same raw region (loader files at 32 KiB and 8 MiB), the same squashfs bytes
/// in rootfs-a, and (first run) the same four files in boot-a. Run it through
/// scripts/bench-image.sh.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The release `atomix` binary to measure.
    #[arg(long, value_name = "PATH")]
    pub atomix: PathBuf,
    /// Timed runs of each side (after one untimed warm-up round).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = crate::at_least_one)]
    pub runs: usize,
    /// Where the inputs and images go (default: <target>/systest-tmp/bench-image, emptied).
    #[arg(long, value_name = "DIR")]
    #[allow(
        rustdoc::invalid_html_tags,
        reason = "the doc comment is the --help text, where <target> is a placeholder, not HTML"
    )]
    pub dir: Option<PathBuf>,
    /// One rootfs tree to build from instead of the two default ones.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Everything both sides build from.
struct Inputs {
    kernel: PathBuf,
    initramfs: PathBuf,
    dtb: PathBuf,
    loader_dir: PathBuf,
    boot_txt: PathBuf,
}

fn ours(atomix: &Path, inputs: &Inputs, rootfs: &Path, out: &Path) -> Result<Duration> {
    let started = Instant::now();
    run_checked(
        Command::new(atomix)
            .args(["image", "build", "--board", "rock64", "--rootfs"])
            .arg(rootfs)
            .arg("--kernel")
            .arg(&inputs.kernel)
            .arg("--initramfs")
            .arg(&inputs.initramfs)
            .arg("--dtb")
            .arg(&inputs.dtb)
            .arg("--loader-dir")
            .arg(&inputs.loader_dir)
            .args(["--build-id", ID, "--version", ID, "--seed", ID, "--out"])
            .arg(out)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    )?;
    Ok(started.elapsed())
}

/// The shell pipeline up to the image, as one bash script taking its paths as arguments (the
/// `sha256sum` that follows it is run and timed apart: see [`anchor`]).
fn anchor_script() -> String {
    let guid = |label: &str| disk::partition_uuid(ID, label).to_string();
    format!(
        r#"set -euo pipefail
rootfs=$1 kernel=$2 initrd=$3 dtb=$4 loader=$5 boot_txt=$6 img=$7 work=$8
sq=$work/rootfs.sqfs vfat=$work/boot.vfat scr=$work/boot.scr
mksquashfs "$rootfs" "$sq" -comp zstd -b 1M -noappend -all-root -no-xattrs \
  -mkfs-time {EPOCH} -all-time {EPOCH} -quiet -no-progress
size=$(stat -c %s "$sq")
if [ "$size" -gt $((1024 * 1048576)) ]; then echo "rootfs too large: $size" >&2; exit 1; fi
SOURCE_DATE_EPOCH={EPOCH} mkimage -A arm64 -O linux -T script -C none -n "AtomixOS {ID}" \
  -d "$boot_txt" "$scr" >/dev/null
rm -f "$img"
truncate -s 1169M "$img"
dd if="$loader/idbloader.img" of="$img" bs=512 seek=64 conv=notrunc status=none
dd if="$loader/u-boot.itb" of="$img" bs=512 seek=16384 conv=notrunc status=none
sfdisk -q "$img" <<EOF
label: gpt
label-id: {disk}
first-lba: 32768
start=32768, size=262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid={boot}, name="boot-a", attrs="LegacyBIOSBootable"
start=294912, size=2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid={root}, name="rootfs-a"
EOF
rm -f "$vfat"
truncate -s 128M "$vfat"
mkfs.vfat -F 16 -n BOOT-A -i 12345678 "$vfat" >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$vfat" "$kernel" ::Image
mcopy -i "$vfat" "$initrd" ::initrd
mcopy -i "$vfat" "$dtb" ::rk3328-rock64.dtb
mcopy -i "$vfat" "$scr" ::boot.scr
dd if="$vfat" of="$img" bs=1M seek=16 conv=notrunc,sparse status=none
dd if="$sq" of="$img" bs=1M seek=144 conv=notrunc,sparse status=none
sync "$img"
"#,
        disk = disk::disk_guid(ID),
        boot = guid("boot-a"),
        root = guid("rootfs-a"),
    )
}

/// The anchor's times: the whole pipeline, and of it the final `sha256sum`.
struct AnchorTimes {
    total: Duration,
    hash: Duration,
}

fn anchor(
    script: &Path,
    inputs: &Inputs,
    rootfs: &Path,
    out: &Path,
    work: &Path,
) -> Result<AnchorTimes> {
    let started = Instant::now();
    run_checked(
        Command::new("bash")
            .arg(script)
            .arg(rootfs)
            .arg(&inputs.kernel)
            .arg(&inputs.initramfs)
            .arg(&inputs.dtb)
            .arg(&inputs.loader_dir)
            .arg(&inputs.boot_txt)
            .arg(out)
            .arg(work),
    )?;
    let built = started.elapsed();
    // The same sha256sum the script runs with `hash`, over the files it left.
    let hashing = Instant::now();
    let loader = &inputs.loader_dir;
    run_checked(
        Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; sha256sum "$@" >"$1.sha256""#)
            .arg("bash")
            .arg(out)
            .arg(loader.join("idbloader.img"))
            .arg(loader.join("u-boot.itb"))
            .arg(&inputs.kernel)
            .arg(&inputs.initramfs)
            .arg(&inputs.dtb)
            .arg(work.join("boot.scr"))
            .arg(work.join("rootfs.sqfs")),
    )?;
    let hash = hashing.elapsed();
    fs::remove_file(work.join("boot.vfat"))?;
    fs::remove_file(work.join("rootfs.sqfs"))?;
    Ok(AnchorTimes {
        total: built + hash,
        hash,
    })
}

fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len)?];
    fs::File::open(path)?.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Checks that both images hold the same table, raw region and squashfs (and, with
/// `files`, the same boot files).
fn same_image(ours: &Path, anchor: &Path, files: bool) -> Result<()> {
    let dump = |p: &Path| -> Result<String> {
        let text = run_checked(Command::new("sfdisk").arg("-d").arg(p))?;
        Ok(text.replace(&p.display().to_string(), "IMG"))
    };
    ensure!(
        dump(ours)? == dump(anchor)?,
        "the partition tables differ:\n{}\n{}",
        dump(ours)?,
        dump(anchor)?
    );
    ensure!(
        read_at(ours, 17408, 16 * MIB - 17408)? == read_at(anchor, 17408, 16 * MIB - 17408)?,
        "the raw regions differ"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{}.json", ours.display()))?)?;
    let sq = manifest["rootfs"]["size"]
        .as_u64()
        .context("no rootfs size in the manifest")?;
    ensure!(
        read_at(ours, 144 * MIB, sq)? == read_at(anchor, 144 * MIB, sq)?,
        "the squashfs images differ"
    );
    if files {
        for name in ["Image", "initrd", "rk3328-rock64.dtb", "boot.scr"] {
            let get = |p: &Path| {
                run_checked(
                    Command::new("mtype")
                        .arg("-i")
                        .arg(format!("{}@@16M", p.display()))
                        .arg(format!("::{name}"))
                        .env("MTOOLS_SKIP_CHECK", "1"),
                )
            };
            ensure!(get(ours)? == get(anchor)?, "boot-a's {name} differs");
        }
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

struct Row {
    what: String,
    ours: Duration,
    anchor: Duration,
    anchor_hash: Duration,
}

/// Runs the rounds and prints the table (or the JSON line).
///
/// # Errors
/// An input is missing, a tool fails, or the two sides' images differ.
pub fn run(args: &Args) -> Result<()> {
    let artifacts = atomix_systests::Artifacts::locate()?;
    let dir = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => artifacts.fresh_dir("bench-image")?,
    };
    let board = Board::builtin("rock64")?;
    let loader = board.loader.as_ref().context("rock64 has no loader")?;
    let loader_dir = artifacts.cache.join(&loader.package).join(&loader.dir);
    let dtb_rel = board.boot.dtb.as_deref().context("rock64 has no DTB")?;
    let version = fs::read_dir(artifacts.modules_root.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("no kernel version in the cache")?;
    let dtb = artifacts
        .modules_root
        .join(format!("usr/lib/linux-image-{version}"))
        .join(dtb_rel);
    ensure!(
        dtb.is_file() && loader_dir.is_dir(),
        "{} or {} missing: run scripts/setup.sh",
        dtb.display(),
        loader_dir.display()
    );

    eprintln!("building the rock64 initramfs and the probe rootfs");
    let initramfs = dir.join("initramfs.img");
    run_checked(
        Command::new(&args.atomix)
            .args(["initramfs", "build", "--board", "rock64", "--out"])
            .arg(&initramfs)
            .env("ATOMIX_CACHE", &artifacts.cache)
            .env("ATOMIX_INIT", &artifacts.init_binary)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    )?;
    let probe = dir.join("probe-rootfs");
    if probe.exists() {
        fs::remove_dir_all(&probe)?;
    }
    atomix_systests::build_test_rootfs(&probe, &artifacts.busybox_aarch64)?;
    let boot_txt = dir.join("boot.txt");
    fs::write(
        &boot_txt,
        bootscript::render(&board, &BuildInfo::new(ID, ID)?),
    )?;
    let script = dir.join("anchor.sh");
    fs::write(&script, anchor_script())?;
    let inputs = Inputs {
        kernel: artifacts.kernel_image.clone(),
        initramfs,
        dtb,
        loader_dir,
        boot_txt,
    };
    let work = dir.join("work");
    fs::create_dir_all(&work)?;

    let trees = match &args.rootfs {
        Some(tree) => vec![(format!("rootfs {}", tree.display()), tree.clone())],
        None => vec![
            (
                format!("kernel module tree ({version})"),
                artifacts.modules_root.join("lib/modules").join(&version),
            ),
            ("probe rootfs (busybox)".to_owned(), probe),
        ],
    };
    let (a, b) = (dir.join("ours.img"), dir.join("anchor.img"));
    let mut rows = Vec::new();
    for (what, tree) in trees {
        let (mut ours_t, mut anchor_t, mut hash_t) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..=args.runs {
            let do_ours = || ours(&args.atomix, &inputs, &tree, &a);
            let do_anchor = || anchor(&script, &inputs, &tree, &b, &work);
            let (o, t) = if i % 2 == 0 {
                let o = do_ours()?;
                (o, do_anchor()?)
            } else {
                let t = do_anchor()?;
                (do_ours()?, t)
            };
            same_image(&a, &b, i == 0).with_context(|| format!("{what}, run {i}"))?;
            let label = if i == 0 {
                "warm-up".to_owned()
            } else {
                format!("run {i}")
            };
            eprintln!(
                "{what}, {label}: ours {:.2} s, anchor {:.2} s (of which sha256sum {:.2} s)",
                secs(o),
                secs(t.total),
                secs(t.hash)
            );
            if i > 0 {
                ours_t.push(o);
                anchor_t.push(t.total);
                hash_t.push(t.hash);
            }
            for p in [&a, &b] {
                fs::remove_file(p)?;
            }
            fs::remove_file(dir.join("ours.img.json"))?;
            fs::remove_file(dir.join("anchor.img.sha256"))?;
        }
        rows.push(Row {
            what,
            ours: median(&ours_t).context("no runs")?,
            anchor: median(&anchor_t).context("no runs")?,
            anchor_hash: median(&hash_t).context("no runs")?,
        });
    }

    crate::print(&report(args.runs, &rows, args.json))
}

/// What is printed: the table, or with `json` the JSON line.
fn report(runs: usize, rows: &[Row], json: bool) -> String {
    let target = Target::AtMost(TARGET_RATIO);
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let ratio = secs(r.ours) / secs(r.anchor);
                serde_json::json!({
                    "rootfs": r.what,
                    "ours_s": secs(r.ours),
                    "anchor_s": secs(r.anchor),
                    "anchor_sha256sum_s": secs(r.anchor_hash),
                    "ratio": ratio,
                    "target_ratio": TARGET_RATIO,
                    "met": target.met(ratio),
                })
            })
            .collect();
        let result = serde_json::json!({ "runs": runs, "rows": rows });
        return json_text(&result, JsonStyle::Line);
    }
    let mut table =
        Table::markdown(["metric", "ours", "anchor", "ratio", "target"]).with_title(format!(
            "rock64 image build (1169 MiB sparse: loader, GPT, boot-a vfat, rootfs-a squashfs, \
             sha256 of the parts and the image), median of {runs}"
        ));
    for r in rows {
        let ratio = secs(r.ours) / secs(r.anchor);
        table
            .row([
                format!("image build, {} (s)", r.what),
                format!("{:.2}", secs(r.ours)),
                format!("{:.2}", secs(r.anchor)),
                format!("{ratio:.2}"),
                target.cell(ratio),
            ])
            .row([
                "of which sha256sum of the parts and the image (s)".to_owned(),
                "-".to_owned(),
                format!("{:.2}", secs(r.anchor_hash)),
                "-".to_owned(),
                "-".to_owned(),
            ]);
    }
    table.render()
        + "images: the same partition table, raw region and squashfs in every run; the same boot \
           files in the first\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                what: "kernel module tree (6.1.0-28-arm64)".to_owned(),
                ours: Duration::from_secs_f64(12.345),
                anchor: Duration::from_secs_f64(20.5),
                anchor_hash: Duration::from_secs_f64(4.125),
            },
            Row {
                what: "probe rootfs (busybox)".to_owned(),
                ours: Duration::from_millis(875),
                anchor: Duration::from_millis(500),
                anchor_hash: Duration::from_millis(250),
            },
        ]
    }

    #[test]
    fn table_as_printed() {
        assert_eq!(
            report(5, &rows(), false),
            "rock64 image build (1169 MiB sparse: loader, GPT, boot-a vfat, rootfs-a squashfs, \
             sha256 of the parts and the image), median of 5\n\
             | metric | ours | anchor | ratio | target |\n\
             |---|---|---|---|---|\n\
             | image build, kernel module tree (6.1.0-28-arm64) (s) | 12.35 | 20.50 | 0.60 | \
             <= 1.00 (met) |\n\
             | of which sha256sum of the parts and the image (s) | - | 4.12 | - | - |\n\
             | image build, probe rootfs (busybox) (s) | 0.88 | 0.50 | 1.75 | <= 1.00 (NOT met) |\n\
             | of which sha256sum of the parts and the image (s) | - | 0.25 | - | - |\n\
             images: the same partition table, raw region and squashfs in every run; the same \
             boot files in the first\n"
        );
    }

    #[test]
    fn json_as_printed() {
        assert_eq!(
            report(5, &rows(), true),
            "{\"rows\":[{\"anchor_s\":20.5,\"anchor_sha256sum_s\":4.125,\"met\":true,\
             \"ours_s\":12.345,\"ratio\":0.6021951219512195,\
             \"rootfs\":\"kernel module tree (6.1.0-28-arm64)\",\"target_ratio\":1.0},\
             {\"anchor_s\":0.5,\"anchor_sha256sum_s\":0.25,\"met\":false,\"ours_s\":0.875,\
             \"ratio\":1.75,\"rootfs\":\"probe rootfs (busybox)\",\"target_ratio\":1.0}],\
             \"runs\":5}\n"
        );
    }
}
