//! One boot's numbers: the kernel timestamps of the console marks ([`kernel_timestamp`]), the
//! baseline's `VmHWM` line ([`baseline_hwm_kib`]), one boot's [`BootSample`] read from its
//! console ([`sample_from_console`]), and the median, minimum and maximum of many ([`Stats`]).
//!
//! Must not: boot anything or decide what the table shows (that is `run.rs` and `result.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BASELINE_HWM_MARK, INIT_EXEC_MARK, INIT_STARTED_MARK, ROOTFS_STARTED_MARK, Side};
use crate::Probe;

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
}
