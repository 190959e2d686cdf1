//! The benchmark behind `atomix-bench boot` (DESIGN section 8): our initramfs against a
//! hand-written busybox one (the anchor), built and booted in the same invocation on the same
//! kernel, disk image and QEMU configuration.
//!
//! Both initramfs are cpio newc archives made by `atomix-image`'s writer and compressed with zstd
//! at [`initramfs::ZSTD_LEVEL`]; both load the same module closure of the `qemu-virt` board in
//! the same order ([`ModuleIndex::closure`]) and boot the probe rootfs of [`build_test_rootfs`]
//! from `PARTLABEL=rootfs-a`. The baseline's `/init` is [`baseline_init_script`].
//!
//! The initrd time of a boot is measured on the guest clock, the same way for both, as the
//! issue defines it ("from `/init` start to exec of the real init"): from the kernel timestamp
//! of [`INIT_STARTED_MARK`] (printed just before the kernel execs `/init`) to the kernel
//! timestamp of [`INIT_EXEC_MARK`], which the kernel prints while it execs `/sbin/init` (both
//! sides exec that path). Both marks come from the kernel, so neither `/init` can move them.
//!
//! The time to [`ROOTFS_STARTED_MARK`], which the probe init writes to `/dev/kmsg` as its first
//! action, is reported beside it: it adds the real init's own start (the exec of a static
//! busybox `sh` under TCG and the start of the script, about 60 ms on both sides), which is not
//! initrd time. Boots alternate (ours, baseline, ours, ...) so a drift in host load hits both
//! sides alike; every boot runs QEMU with `-snapshot`, so each sees the same disk.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_board::{Board, BoardError};
use atomix_image::cpio::{self, CpioError};
use atomix_image::disk::{self, DiskError, DiskLayout, DiskSpec, RootfsSource};
use atomix_image::initramfs::{self, InitramfsError, InitramfsSpec};
use atomix_image::modules::{Module, ModuleError, ModuleIndex};
use atomix_qemu::{Ending, QemuError};
use serde_json::{Value, json};

use crate::bench_table::{Align, Table, fixed};
use crate::{Artifacts, HarnessError, KERNEL_CONSOLE_ARGS, Probe, build_test_rootfs};

/// The board whose module list both initramfs load.
pub const BOARD: &str = "qemu-virt";
/// The slot both initramfs mount (`atomixos.lowerdev=` for ours, hard-wired in the baseline).
pub const SLOT_PARTLABEL: &str = "rootfs-a";
/// The kernel's line just before it execs `/init`: the start mark.
pub const INIT_STARTED_MARK: &str = "Run /init as init process";
/// The kernel's line while it execs `/sbin/init`: the end mark of the initrd time. TOMOYO (built
/// into Debian's kernel and active) checks for its policy loader on every exec of `/sbin/init`
/// until a policy is loaded, from the `bprm_creds_for_exec` hook, that is at the start of the
/// exec, and prints this when the loader does not exist (neither rootfs has one).
pub const INIT_EXEC_MARK: &str =
    "Not activating Mandatory Access Control as /sbin/tomoyo-init does not exist";
/// The probe init's first `/dev/kmsg` line (see `tests/rootfs/sbin/init`): the end mark of the
/// time to the rootfs init's first line.
pub const ROOTFS_STARTED_MARK: &str = "atomix-probe: rootfs init started";
/// The line the baseline `/init` prints with its shell's `VmHWM` just before `switch_root`.
pub const BASELINE_HWM_MARK: &str = "baseline-init: VmHWM ";
/// Deadline of one boot.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Busybox applets the baseline `/init` runs (linked in its `/bin`).
pub const BASELINE_APPLETS: &[&str] = &[
    "sh",
    "mount",
    "mkdir",
    "insmod",
    "sleep",
    "poweroff",
    "switch_root",
];

/// Target: our median initrd time at most this fraction of the baseline's.
pub const TARGET_TIME_RATIO: f64 = 0.5;
/// Target: our initramfs without modules at most this many bytes compressed.
pub const TARGET_NO_MODULES_BYTES: u64 = 1 << 20;
/// Target: `/init`'s peak RSS at most this many KiB.
pub const TARGET_PEAK_RSS_KIB: u64 = 4 << 10;

/// A failure of the benchmark (building, booting, or reading a boot's console).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The harness could not find or prepare its inputs.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The board profile could not be loaded.
    #[error("cannot load board `{BOARD}`")]
    Board(#[source] BoardError),
    /// Our initramfs could not be built.
    #[error("cannot build our initramfs `{}`", path.display())]
    Initramfs {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: InitramfsError,
    },
    /// The module closure for the baseline could not be resolved.
    #[error("cannot resolve the modules of `{BOARD}` in `{}`", root.display())]
    Modules {
        /// The kernel package.
        root: PathBuf,
        /// Why.
        #[source]
        source: ModuleError,
    },
    /// The baseline loads other modules than ours (the two closures must be the same list).
    #[error("module lists differ: ours {ours:?}, baseline {baseline:?}")]
    ModuleMismatch {
        /// Ours, in load order.
        ours: Vec<String>,
        /// The baseline's, in load order.
        baseline: Vec<String>,
    },
    /// A file the baseline archive holds could not be read.
    #[error("cannot read `{}` for the baseline initramfs", path.display())]
    ReadInput {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path in the baseline archive is not UTF-8.
    #[error("path `{}` is not UTF-8", path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// The baseline cpio archive could not be written.
    #[error("cannot write the baseline cpio archive")]
    Cpio(#[source] CpioError),
    /// The baseline archive could not be compressed.
    #[error("cannot compress the baseline initramfs with zstd")]
    Compress(#[source] std::io::Error),
    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file's size could not be read.
    #[error("cannot stat `{}`", path.display())]
    Stat {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The disk image could not be built.
    #[error("cannot build the disk image `{}`", path.display())]
    Disk {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: DiskError,
    },
    /// QEMU could not be run.
    #[error("cannot run qemu for {side} boot {boot}")]
    Qemu {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// Why.
        #[source]
        source: QemuError,
    },
    /// A boot did not end in a power-off after `ROOTFS-DONE`.
    #[error("{side} boot {boot} ended in {ending} (ROOTFS-DONE seen: {done}); console log `{}`", log.display())]
    BootFailed {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// How QEMU's run ended.
        ending: Ending,
        /// Whether the probe printed `ROOTFS-DONE`.
        done: bool,
        /// The console log.
        log: PathBuf,
    },
    /// A boot's console lacks a line the measurement needs.
    #[error("{side} boot {boot}: no timestamped `{mark}` line; console log `{}`", log.display())]
    MissingMark {
        /// `ours` or `baseline`.
        side: Side,
        /// 1-based boot number.
        boot: usize,
        /// The missing line.
        mark: &'static str,
        /// The console log.
        log: PathBuf,
    },
}

/// Which initramfs a boot used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Ours: the atomix `/init`.
    Ours,
    /// The anchor: busybox `sh` as `/init`.
    Baseline,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ours => "ours",
            Self::Baseline => "baseline",
        })
    }
}

/// What one boot measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BootSample {
    /// Guest clock from [`INIT_STARTED_MARK`] to [`INIT_EXEC_MARK`], in ms: the initrd time.
    pub initrd_ms: f64,
    /// Guest clock from [`INIT_STARTED_MARK`] to [`ROOTFS_STARTED_MARK`], in ms: the initrd
    /// time plus the start of the rootfs init.
    pub to_rootfs_ms: f64,
    /// Kernel uptime at [`ROOTFS_STARTED_MARK`], in ms (includes unpacking the initramfs).
    pub rootfs_at_ms: f64,
    /// Ours: `total_ms` of `initrd.json`.
    pub total_ms: Option<f64>,
    /// Ours: `peak_rss_kib` of `initrd.json`; baseline: its shell's `VmHWM`.
    pub peak_rss_kib: Option<u64>,
    /// Host wall-clock time of the QEMU run, in ms.
    pub wall_ms: f64,
    /// The console log.
    pub log: PathBuf,
}

/// The kernel timestamp (in seconds) of the first console line containing `mark`: the
/// `[    1.234567]` that precedes it on its line.
pub fn kernel_timestamp(console: &str, mark: &str) -> Option<f64> {
    console.lines().find_map(|line| {
        let before = &line[..line.find(mark)?];
        let open = before.rfind('[')?;
        let close = open + before[open..].find(']')?;
        before[open + 1..close].trim().parse().ok()
    })
}

/// The value the baseline `/init` printed after [`BASELINE_HWM_MARK`] (KiB).
pub fn baseline_hwm_kib(console: &str) -> Option<u64> {
    console.lines().find_map(|line| {
        let rest = &line[line.find(BASELINE_HWM_MARK)? + BASELINE_HWM_MARK.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Reads one boot's numbers from its console (`side` decides where the RSS comes from).
/// The error is the mark that is missing.
pub fn sample_from_console(
    console: &str,
    side: Side,
    wall: Duration,
    log: &Path,
) -> Result<BootSample, &'static str> {
    let start = kernel_timestamp(console, INIT_STARTED_MARK).ok_or(INIT_STARTED_MARK)?;
    let exec = kernel_timestamp(console, INIT_EXEC_MARK).ok_or(INIT_EXEC_MARK)?;
    let end = kernel_timestamp(console, ROOTFS_STARTED_MARK).ok_or(ROOTFS_STARTED_MARK)?;
    let (total_ms, peak_rss_kib) = match side {
        Side::Ours => {
            let json = Probe::parse(console).initrd_json;
            let field = |name: &str| json.as_ref().and_then(|j| j.get(name).cloned());
            (
                field("total_ms").and_then(|v| v.as_f64()),
                field("peak_rss_kib").and_then(|v| v.as_u64()),
            )
        }
        Side::Baseline => (None, baseline_hwm_kib(console)),
    };
    Ok(BootSample {
        initrd_ms: round3((exec - start) * 1000.0),
        to_rootfs_ms: round3((end - start) * 1000.0),
        rootfs_at_ms: round3(end * 1000.0),
        total_ms,
        peak_rss_kib,
        wall_ms: round3(wall.as_secs_f64() * 1000.0),
        log: log.to_owned(),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The baseline `/init`: a busybox `sh` script doing our stages with busybox tools, as a
/// hand-written initramfs does. `modules` are the paths inside the archive, in load order.
/// The slot is found by scanning `/sys/class/block/*/uevent` for `PARTNAME=<partlabel>` every
/// 10 ms (60 s at most, then it powers off, which the bench reports as a failed boot).
pub fn baseline_init_script(modules: &[String], partlabel: &str) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # atomix-bench baseline /init: the same steps as the atomix /init, with busybox tools.\n\
         export PATH=/bin\n\
         mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev\n\
         exec </dev/console >/dev/console 2>&1\n\
         mount -t proc -o nosuid,nodev,noexec proc /proc\n\
         mount -t sysfs -o nosuid,nodev,noexec sysfs /sys\n\
         mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run\n",
    );
    for module in modules {
        let _ = writeln!(s, "insmod {module}");
    }
    let _ = write!(
        s,
        r#"dev=
tries=0
while :; do
	for uevent in /sys/class/block/*/uevent; do
		[ -r "$uevent" ] || continue
		name= part=
		while IFS='=' read -r key value; do
			case $key in
			DEVNAME) name=$value ;;
			PARTNAME) part=$value ;;
			esac
		done <"$uevent"
		if [ "$part" = "{partlabel}" ] && [ -b "/dev/$name" ]; then
			dev=/dev/$name
			break 2
		fi
	done
	tries=$((tries + 1))
	if [ "$tries" -ge 6000 ]; then
		echo "baseline-init: no PARTLABEL={partlabel} after 60 s"
		poweroff -f
	fi
	sleep 0.01
done
mkdir -p /run/rootfs-base /run/overlay-root
mount -t squashfs -o ro "$dev" /run/rootfs-base
mount -t tmpfs -o mode=0755 tmpfs /run/overlay-root
mkdir -p /run/overlay-root/upper /run/overlay-root/work
mount -t overlay -o lowerdir=/run/rootfs-base,upperdir=/run/overlay-root/upper,workdir=/run/overlay-root/work overlay /sysroot
while read -r key value _; do
	[ "$key" = VmHWM: ] && echo "{BASELINE_HWM_MARK}$value kB"
done </proc/self/status
for m in dev proc sys run; do
	mount --move /$m /sysroot/$m
done
exec switch_root /sysroot /sbin/init
"#
    );
    s
}

/// One entry of the baseline archive.
enum Node {
    Dir,
    File(u32, Vec<u8>),
    Symlink(&'static str),
    Console,
}

/// The baseline initramfs, zstd-compressed: `/init` = `script`, `/bin/busybox` with
/// [`BASELINE_APPLETS`], `/dev/console`, the mount points, and `modules` as
/// `(path inside, contents)`.
///
/// # Errors
/// [`BenchError::Cpio`] or [`BenchError::Compress`].
pub fn baseline_archive(
    script: &str,
    busybox: &[u8],
    modules: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, BenchError> {
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    let mut insert = |path: &str, node: Node| {
        for (slash, _) in path.match_indices('/') {
            tree.entry(path[..slash].to_owned()).or_insert(Node::Dir);
        }
        tree.insert(path.to_owned(), node);
    };
    for dir in ["dev", "proc", "sys", "run", "sysroot", "bin"] {
        insert(dir, Node::Dir);
    }
    insert("dev/console", Node::Console);
    insert("init", Node::File(0o755, script.as_bytes().to_vec()));
    insert("bin/busybox", Node::File(0o755, busybox.to_vec()));
    for applet in BASELINE_APPLETS {
        insert(&format!("bin/{applet}"), Node::Symlink("busybox"));
    }
    for (path, data) in modules {
        insert(
            path.trim_start_matches('/'),
            Node::File(0o644, data.clone()),
        );
    }
    let mut w = cpio::Writer::new(Vec::new(), 0).map_err(BenchError::Cpio)?;
    for (path, node) in &tree {
        match node {
            Node::Dir => w.dir(path, 0o755),
            Node::File(perm, data) => w.file(path, *perm, data),
            Node::Symlink(target) => w.symlink(path, target),
            Node::Console => w.char_device(path, 0o600, 5, 1),
        }
        .map_err(BenchError::Cpio)?;
    }
    let (raw, _) = w.finish().map_err(BenchError::Cpio)?;
    zstd_like_ours(&raw).map_err(BenchError::Compress)
}

/// zstd as `atomix_image::initramfs` compresses: [`initramfs::ZSTD_LEVEL`], checksum and
/// content size in the frame.
fn zstd_like_ours(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(initramfs::ZSTD_LEVEL)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    c.compress(raw)
}

/// Sizes, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Our initramfs with the board's modules (what boots).
    pub ours_with_modules: u64,
    /// Our initramfs without modules.
    pub ours_without_modules: u64,
    /// The baseline initramfs with the same modules (what boots).
    pub baseline_with_modules: u64,
    /// The baseline initramfs without modules.
    pub baseline_without_modules: u64,
    /// Our `/init` binary.
    pub init: u64,
    /// The baseline's `/init`: busybox plus the script.
    pub baseline_init: u64,
}

/// What a metric's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Bytes.
    Bytes,
    /// KiB.
    Kib,
}

/// A row's target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// ours / baseline at most this.
    RatioAtMost(f64),
    /// ours at most this (in the row's unit).
    AtMost(f64),
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is measured.
    pub metric: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Our value.
    pub ours: Option<f64>,
    /// The anchor's value.
    pub baseline: Option<f64>,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
}

impl Row {
    /// ours / baseline.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours, self.baseline) {
            (Some(o), Some(b)) if b > 0.0 => Some(o / b),
            _ => None,
        }
    }

    /// Whether the target is met; `None` without a target or without the numbers it needs.
    pub fn met(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtMost(r) => Some(self.ratio()? <= r),
            Target::AtMost(limit) => Some(self.ours? <= limit),
        }
    }
}

/// Everything one invocation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Our boots, in order.
    pub ours: Vec<BootSample>,
    /// The baseline's boots, in order.
    pub baseline: Vec<BootSample>,
    /// The sizes.
    pub sizes: Sizes,
    /// The modules both load, in order.
    pub modules: Vec<String>,
}

/// Sizes are far below 2^53: exact.
fn as_f64(n: u64) -> f64 {
    n as f64
}

impl BenchResult {
    /// The table's rows.
    pub fn rows(&self) -> Vec<Row> {
        let stats = |side: &[BootSample], get: fn(&BootSample) -> Option<f64>| {
            Stats::of(&side.iter().filter_map(get).collect::<Vec<_>>())
        };
        let ours_t = stats(&self.ours, |s| Some(s.initrd_ms));
        let base_t = stats(&self.baseline, |s| Some(s.initrd_ms));
        let ours_r = stats(&self.ours, |s| Some(s.to_rootfs_ms));
        let base_r = stats(&self.baseline, |s| Some(s.to_rootfs_ms));
        let ours_at = stats(&self.ours, |s| Some(s.rootfs_at_ms));
        let base_at = stats(&self.baseline, |s| Some(s.rootfs_at_ms));
        let total = stats(&self.ours, |s| s.total_ms);
        let rss =
            |side: &[BootSample]| side.iter().filter_map(|s| s.peak_rss_kib).max().map(as_f64);
        let s = self.sizes;
        let row = |metric, unit, ours, baseline, target| Row {
            metric,
            unit,
            ours,
            baseline,
            target,
        };
        vec![
            row(
                "initrd time (to exec of /sbin/init), median",
                Unit::Ms,
                ours_t.map(|t| t.median),
                base_t.map(|t| t.median),
                Some(Target::RatioAtMost(TARGET_TIME_RATIO)),
            ),
            row(
                "initrd time, min",
                Unit::Ms,
                ours_t.map(|t| t.min),
                base_t.map(|t| t.min),
                None,
            ),
            row(
                "initrd time, max",
                Unit::Ms,
                ours_t.map(|t| t.max),
                base_t.map(|t| t.max),
                None,
            ),
            row(
                "to the rootfs init's first line, median",
                Unit::Ms,
                ours_r.map(|t| t.median),
                base_r.map(|t| t.median),
                None,
            ),
            row(
                "initrd.json total_ms, median",
                Unit::Ms,
                total.map(|t| t.median),
                None,
                None,
            ),
            row(
                "rootfs init reached (uptime), median",
                Unit::Ms,
                ours_at.map(|t| t.median),
                base_at.map(|t| t.median),
                None,
            ),
            row(
                "initramfs with modules (zstd)",
                Unit::Bytes,
                Some(as_f64(s.ours_with_modules)),
                Some(as_f64(s.baseline_with_modules)),
                None,
            ),
            row(
                "initramfs without modules (zstd)",
                Unit::Bytes,
                Some(as_f64(s.ours_without_modules)),
                Some(as_f64(s.baseline_without_modules)),
                Some(Target::AtMost(as_f64(TARGET_NO_MODULES_BYTES))),
            ),
            row(
                "/init size",
                Unit::Bytes,
                Some(as_f64(s.init)),
                Some(as_f64(s.baseline_init)),
                None,
            ),
            row(
                "/init peak RSS (VmHWM, max)",
                Unit::Kib,
                rss(&self.ours),
                rss(&self.baseline),
                Some(Target::AtMost(as_f64(TARGET_PEAK_RSS_KIB))),
            ),
        ]
    }

    /// The per-boot numbers and the table, as printed.
    pub fn render(&self) -> String {
        let right = Align::Right;
        let mut boots = Table::columns(
            [
                "side",
                "boot",
                "initrd ms",
                "to probe ms",
                "rootfs at ms",
                "total_ms",
                "RSS KiB",
                "wall ms",
            ],
            &[
                (9, Align::Left),
                (4, right),
                (11, right),
                (12, right),
                (13, right),
                (12, right),
                (9, right),
                (9, right),
            ],
        );
        for (side, samples) in [(Side::Ours, &self.ours), (Side::Baseline, &self.baseline)] {
            for (i, s) in samples.iter().enumerate() {
                boots.row([
                    side.to_string(),
                    (i + 1).to_string(),
                    format!("{:.3}", s.initrd_ms),
                    format!("{:.3}", s.to_rootfs_ms),
                    format!("{:.3}", s.rootfs_at_ms),
                    fixed(s.total_ms, 3),
                    s.peak_rss_kib
                        .map_or_else(|| "-".to_owned(), |k| k.to_string()),
                    format!("{:.0}", s.wall_ms),
                ]);
            }
        }
        let mut table = Table::padded(
            ["metric", "ours", "baseline (anchor)", "ratio", "target"],
            &[Align::Left, right, right, right, Align::Left],
        );
        for r in self.rows() {
            table.row([
                r.metric.to_owned(),
                value(r.ours, r.unit),
                value(r.baseline, r.unit),
                fixed(r.ratio(), 2),
                target_cell(&r),
            ]);
        }
        format!(
            "modules ({}): {}\n\n{}\n{}",
            self.modules.len(),
            self.modules.join(" "),
            boots.render(),
            table.render()
        )
    }

    /// The machine-readable result (`--json`).
    pub fn to_json(&self) -> Value {
        let boots = |samples: &[BootSample]| {
            samples
                .iter()
                .map(|s| {
                    json!({
                        "initrd_ms": s.initrd_ms,
                        "to_rootfs_ms": s.to_rootfs_ms,
                        "rootfs_at_ms": s.rootfs_at_ms,
                        "total_ms": s.total_ms,
                        "peak_rss_kib": s.peak_rss_kib,
                        "wall_ms": s.wall_ms,
                        "console_log": s.log.display().to_string(),
                    })
                })
                .collect::<Vec<_>>()
        };
        let rows: Vec<Value> = self
            .rows()
            .iter()
            .map(|r| {
                json!({
                    "metric": r.metric,
                    "unit": match r.unit { Unit::Ms => "ms", Unit::Bytes => "bytes", Unit::Kib => "KiB" },
                    "ours": r.ours,
                    "baseline": r.baseline,
                    "ratio": r.ratio(),
                    "target": r.target.map(|t| match t {
                        Target::RatioAtMost(x) => json!({"ratio_at_most": x}),
                        Target::AtMost(x) => json!({"at_most": x}),
                    }),
                    "met": r.met(),
                })
            })
            .collect();
        let s = self.sizes;
        json!({
            "boots": self.ours.len(),
            "modules": self.modules,
            "ours": boots(&self.ours),
            "baseline": boots(&self.baseline),
            "sizes": {
                "ours_with_modules": s.ours_with_modules,
                "ours_without_modules": s.ours_without_modules,
                "baseline_with_modules": s.baseline_with_modules,
                "baseline_without_modules": s.baseline_without_modules,
                "init": s.init,
                "baseline_init": s.baseline_init,
            },
            "rows": rows,
            "targets_met": self.rows().iter().filter_map(Row::met).all(|m| m),
        })
    }
}

fn value(v: Option<f64>, unit: Unit) -> String {
    let Some(v) = v else {
        return "-".to_owned();
    };
    match unit {
        Unit::Ms => format!("{v:.1} ms"),
        Unit::Kib => format!("{v:.0} KiB"),
        Unit::Bytes if v >= 1024.0 * 1024.0 => format!("{:.2} MiB", v / (1024.0 * 1024.0)),
        Unit::Bytes => format!("{:.1} KiB", v / 1024.0),
    }
}

fn target_cell(r: &Row) -> String {
    let Some(target) = r.target else {
        return String::new();
    };
    let what = match target {
        Target::RatioAtMost(x) => format!("ratio <= {x:.2}"),
        Target::AtMost(x) => format!("<= {}", value(Some(x), r.unit)),
    };
    let verdict = match r.met() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    };
    format!("{what}: {verdict}")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]
[    1.204000] Run /init as init process
[    1.210000] atomix-init: stage early done
[    1.281000] Not activating Mandatory Access Control as /sbin/tomoyo-init does not exist.
ROOTFS-INIT pid=1 uptime=1.42
[    1.341250] atomix-probe: rootfs init started
PROBE initrd-json {\"total_ms\": 120.5, \"peak_rss_kib\": 1720}
ROOTFS-DONE
[    1.620000] reboot: Power down
";

    #[test]
    fn timestamps_of_marks() {
        assert_eq!(kernel_timestamp(OURS, INIT_STARTED_MARK), Some(1.204));
        assert_eq!(kernel_timestamp(OURS, ROOTFS_STARTED_MARK), Some(1.34125));
        assert_eq!(kernel_timestamp(OURS, "no such line"), None);
        // Console noise before the timestamp, and a mark without one.
        assert_eq!(
            kernel_timestamp(
                "garbage[   2.5] Run /init as init process\n",
                INIT_STARTED_MARK
            ),
            Some(2.5)
        );
        assert_eq!(
            kernel_timestamp("Run /init as init process\n", INIT_STARTED_MARK),
            None
        );
    }

    #[test]
    fn samples_for_both_sides() {
        let log = Path::new("/t/qemu-logs/bench-ours-1.log");
        let s = sample_from_console(OURS, Side::Ours, Duration::from_millis(2100), log).unwrap();
        assert_eq!(s.initrd_ms, 77.0);
        assert_eq!(s.to_rootfs_ms, 137.25);
        assert_eq!(s.rootfs_at_ms, 1341.25);
        assert_eq!(s.total_ms, Some(120.5));
        assert_eq!(s.peak_rss_kib, Some(1720));
        assert_eq!(s.wall_ms, 2100.0);

        let base = "[    1.1] Run /init as init process\nbaseline-init: VmHWM 980 kB\n\
                    [    1.5] Not activating Mandatory Access Control as /sbin/tomoyo-init \
                    does not exist.\n[    1.6] atomix-probe: rootfs init started\n";
        let b = sample_from_console(base, Side::Baseline, Duration::ZERO, log).unwrap();
        assert_eq!(b.initrd_ms, 400.0);
        assert_eq!(b.to_rootfs_ms, 500.0);
        assert_eq!((b.total_ms, b.peak_rss_kib), (None, Some(980)));

        let missing = "[    1.1] Run /init as init process\n";
        assert_eq!(
            sample_from_console(missing, Side::Ours, Duration::ZERO, log),
            Err(INIT_EXEC_MARK)
        );
        let no_probe = OURS.replace(ROOTFS_STARTED_MARK, "something else");
        assert_eq!(
            sample_from_console(&no_probe, Side::Ours, Duration::ZERO, log),
            Err(ROOTFS_STARTED_MARK)
        );
    }

    #[test]
    fn stats_median_min_max() {
        assert_eq!(Stats::of(&[]), None);
        let odd = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn targets_and_ratios() {
        let mut r = Row {
            metric: "t",
            unit: Unit::Ms,
            ours: Some(40.0),
            baseline: Some(100.0),
            target: Some(Target::RatioAtMost(0.5)),
        };
        assert_eq!(r.ratio(), Some(0.4));
        assert_eq!(r.met(), Some(true));
        r.ours = Some(60.0);
        assert_eq!(r.met(), Some(false));
        r.baseline = None;
        assert_eq!(r.met(), None);
        r.target = Some(Target::AtMost(50.0));
        assert_eq!(r.met(), Some(false));
        r.target = None;
        assert_eq!(r.met(), None);
    }

    #[test]
    fn baseline_script_loads_in_order_and_switches_root() {
        let script = baseline_init_script(
            &[
                "/lib/modules/v/a.ko".to_owned(),
                "/lib/modules/v/b.ko".to_owned(),
            ],
            "rootfs-a",
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        let a = script.find("insmod /lib/modules/v/a.ko\n").unwrap();
        let b = script.find("insmod /lib/modules/v/b.ko\n").unwrap();
        assert!(a < b);
        assert!(script.contains(r#"[ "$part" = "rootfs-a" ]"#));
        assert!(script.contains("sleep 0.01"));
        assert!(script.contains(BASELINE_HWM_MARK));
        assert!(script.ends_with("exec switch_root /sysroot /sbin/init\n"));
        // Every command the script runs is a linked applet (or an ash builtin).
        for command in [
            "mount",
            "mkdir",
            "insmod",
            "sleep",
            "poweroff",
            "switch_root",
        ] {
            assert!(script.contains(&format!("{command} ")), "{command}");
            assert!(BASELINE_APPLETS.contains(&command), "{command}");
        }
        assert!(!baseline_init_script(&[], "rootfs-a").contains("insmod"));
    }

    #[test]
    fn baseline_archive_layout() {
        let script = baseline_init_script(&["/lib/modules/v/kernel/a.ko".to_owned()], "x");
        let modules = vec![("/lib/modules/v/kernel/a.ko".to_owned(), b"ko".to_vec())];
        let packed = baseline_archive(&script, b"\x7fELF bb", &modules).unwrap();
        let raw = zstd::decode_all(packed.as_slice()).unwrap();
        let entries = cpio::read_archive(&raw).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        for (i, name) in names.iter().enumerate() {
            if let Some((parent, _)) = name.rsplit_once('/') {
                assert!(names[..i].contains(&parent), "{name} before {parent}");
            }
        }
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("init").data, script.as_bytes());
        assert_eq!(get("init").perm(), 0o755);
        assert_eq!(get("bin/busybox").data, b"\x7fELF bb");
        assert_eq!(get("bin/sh").symlink_target(), Some("busybox"));
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("lib/modules/v/kernel/a.ko").data, b"ko");
        assert!(get("sysroot").is_dir());
    }

    fn sample_result() -> BenchResult {
        let sample = |initrd_ms, rss| BootSample {
            initrd_ms,
            to_rootfs_ms: initrd_ms + 60.0,
            rootfs_at_ms: 1000.0 + initrd_ms,
            total_ms: None,
            peak_rss_kib: rss,
            wall_ms: 2000.0,
            log: PathBuf::from("x.log"),
        };
        BenchResult {
            ours: vec![sample(100.0, Some(2000)), sample(120.0, Some(2100))],
            baseline: vec![sample(300.0, Some(900)), sample(260.0, None)],
            sizes: Sizes {
                ours_with_modules: 2 << 20,
                ours_without_modules: 600 << 10,
                baseline_with_modules: 3 << 20,
                baseline_without_modules: 1 << 20,
                init: 1 << 20,
                baseline_init: 1800 << 10,
            },
            modules: vec!["virtio_blk".to_owned()],
        }
    }

    #[test]
    fn table_has_every_metric_and_verdicts() {
        let result = sample_result();
        let rows = result.rows();
        assert_eq!(rows[0].ours, Some(110.0));
        assert_eq!(rows[0].baseline, Some(280.0));
        assert_eq!(rows[0].met(), Some(true));
        assert_eq!(rows[3].ours, Some(170.0));
        assert_eq!(rows[3].baseline, Some(340.0));
        assert_eq!(rows[4].ours, None, "no total_ms in the samples");
        let rss = rows.iter().find(|r| r.metric.contains("RSS")).unwrap();
        assert_eq!((rss.ours, rss.baseline), (Some(2100.0), Some(900.0)));
        let text = result.render();
        assert!(text.contains("| metric"), "{text}");
        assert!(text.contains("ratio <= 0.50: met"), "{text}");
        assert!(text.contains("<= 1.00 MiB: met"), "{text}");
        assert!(text.contains("600.0 KiB"), "{text}");
        let json = result.to_json();
        assert_eq!(json["boots"], 2);
        assert_eq!(json["targets_met"], true);
        assert_eq!(json["rows"].as_array().unwrap().len(), rows.len());
    }

    #[test]
    fn render_as_printed() {
        let mut result = sample_result();
        result.ours[1].total_ms = Some(95.125);
        let expected = [
            "modules (1): virtio_blk",
            "",
            "side      boot   initrd ms  to probe ms  rootfs at ms     total_ms   RSS KiB   wall ms",
            "ours         1     100.000      160.000      1100.000            -      2000      2000",
            "ours         2     120.000      180.000      1120.000       95.125      2100      2000",
            "baseline     1     300.000      360.000      1300.000            -       900      2000",
            "baseline     2     260.000      320.000      1260.000            -         -      2000",
            "",
            "| metric                                      |      ours | baseline (anchor) | ratio | target             |",
            "| ------------------------------------------- | --------- | ----------------- | ----- | ------------------ |",
            "| initrd time (to exec of /sbin/init), median |  110.0 ms |          280.0 ms |  0.39 | ratio <= 0.50: met |",
            "| initrd time, min                            |  100.0 ms |          260.0 ms |  0.38 |                    |",
            "| initrd time, max                            |  120.0 ms |          300.0 ms |  0.40 |                    |",
            "| to the rootfs init's first line, median     |  170.0 ms |          340.0 ms |  0.50 |                    |",
            "| initrd.json total_ms, median                |   95.1 ms |                 - |     - |                    |",
            "| rootfs init reached (uptime), median        | 1110.0 ms |         1280.0 ms |  0.87 |                    |",
            "| initramfs with modules (zstd)               |  2.00 MiB |          3.00 MiB |  0.67 |                    |",
            "| initramfs without modules (zstd)            | 600.0 KiB |          1.00 MiB |  0.59 | <= 1.00 MiB: met   |",
            "| /init size                                  |  1.00 MiB |          1.76 MiB |  0.57 |                    |",
            "| /init peak RSS (VmHWM, max)                 |  2100 KiB |           900 KiB |  2.33 | <= 4096 KiB: met   |",
            "",
        ];
        assert_eq!(result.render(), expected.join("\n"));
        result.sizes.ours_without_modules = 2 << 20;
        let missed = result.render();
        assert!(
            missed.contains(
                "| initramfs without modules (zstd)            |  2.00 MiB |          1.00 MiB |  \
                 2.00 | <= 1.00 MiB: MISSED |\n"
            ),
            "{missed}"
        );
    }

    #[test]
    fn json_as_printed() {
        let mut result = sample_result();
        result.ours[1].total_ms = Some(95.125);
        assert_eq!(format!("{:#}\n", result.to_json()), JSON);
    }

    /// `to_json` of `render_as_printed`'s result, as `atomix-bench` prints it.
    const JSON: &str = r#"{
  "baseline": [
    {
      "console_log": "x.log",
      "initrd_ms": 300.0,
      "peak_rss_kib": 900,
      "rootfs_at_ms": 1300.0,
      "to_rootfs_ms": 360.0,
      "total_ms": null,
      "wall_ms": 2000.0
    },
    {
      "console_log": "x.log",
      "initrd_ms": 260.0,
      "peak_rss_kib": null,
      "rootfs_at_ms": 1260.0,
      "to_rootfs_ms": 320.0,
      "total_ms": null,
      "wall_ms": 2000.0
    }
  ],
  "boots": 2,
  "modules": [
    "virtio_blk"
  ],
  "ours": [
    {
      "console_log": "x.log",
      "initrd_ms": 100.0,
      "peak_rss_kib": 2000,
      "rootfs_at_ms": 1100.0,
      "to_rootfs_ms": 160.0,
      "total_ms": null,
      "wall_ms": 2000.0
    },
    {
      "console_log": "x.log",
      "initrd_ms": 120.0,
      "peak_rss_kib": 2100,
      "rootfs_at_ms": 1120.0,
      "to_rootfs_ms": 180.0,
      "total_ms": 95.125,
      "wall_ms": 2000.0
    }
  ],
  "rows": [
    {
      "baseline": 280.0,
      "met": true,
      "metric": "initrd time (to exec of /sbin/init), median",
      "ours": 110.0,
      "ratio": 0.39285714285714285,
      "target": {
        "ratio_at_most": 0.5
      },
      "unit": "ms"
    },
    {
      "baseline": 260.0,
      "met": null,
      "metric": "initrd time, min",
      "ours": 100.0,
      "ratio": 0.38461538461538464,
      "target": null,
      "unit": "ms"
    },
    {
      "baseline": 300.0,
      "met": null,
      "metric": "initrd time, max",
      "ours": 120.0,
      "ratio": 0.4,
      "target": null,
      "unit": "ms"
    },
    {
      "baseline": 340.0,
      "met": null,
      "metric": "to the rootfs init's first line, median",
      "ours": 170.0,
      "ratio": 0.5,
      "target": null,
      "unit": "ms"
    },
    {
      "baseline": null,
      "met": null,
      "metric": "initrd.json total_ms, median",
      "ours": 95.125,
      "ratio": null,
      "target": null,
      "unit": "ms"
    },
    {
      "baseline": 1280.0,
      "met": null,
      "metric": "rootfs init reached (uptime), median",
      "ours": 1110.0,
      "ratio": 0.8671875,
      "target": null,
      "unit": "ms"
    },
    {
      "baseline": 3145728.0,
      "met": null,
      "metric": "initramfs with modules (zstd)",
      "ours": 2097152.0,
      "ratio": 0.6666666666666666,
      "target": null,
      "unit": "bytes"
    },
    {
      "baseline": 1048576.0,
      "met": true,
      "metric": "initramfs without modules (zstd)",
      "ours": 614400.0,
      "ratio": 0.5859375,
      "target": {
        "at_most": 1048576.0
      },
      "unit": "bytes"
    },
    {
      "baseline": 1843200.0,
      "met": null,
      "metric": "/init size",
      "ours": 1048576.0,
      "ratio": 0.5688888888888889,
      "target": null,
      "unit": "bytes"
    },
    {
      "baseline": 900.0,
      "met": true,
      "metric": "/init peak RSS (VmHWM, max)",
      "ours": 2100.0,
      "ratio": 2.3333333333333335,
      "target": {
        "at_most": 4096.0
      },
      "unit": "KiB"
    }
  ],
  "sizes": {
    "baseline_init": 1843200,
    "baseline_with_modules": 3145728,
    "baseline_without_modules": 1048576,
    "init": 1048576,
    "ours_with_modules": 2097152,
    "ours_without_modules": 614400
  },
  "targets_met": true
}
"#;
}
