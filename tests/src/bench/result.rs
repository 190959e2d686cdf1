//! The result of one invocation and how it is shown: the sizes ([`Sizes`]), the table's rows
//! with their units and targets ([`Row`], [`Unit`], [`Target`]), and [`BenchResult`] with
//! its rows, the printed per-boot numbers and table ([`BenchResult::render`]) and the JSON
//! ([`BenchResult::to_json`]).
//!
//! Must not: measure anything (the samples come from `sample.rs` through `run.rs`).

use serde_json::{Value, json};

use super::{
    BootSample, Side, Stats, TARGET_NO_MODULES_BYTES, TARGET_PEAK_RSS_KIB, TARGET_TIME_RATIO,
};
use crate::bench_table::{Align, Table, fixed};

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

#[cfg(test)]
mod tests;
