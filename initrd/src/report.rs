//! `/run/atomix/initrd.json`: what `/init` did, for the real root and the tests.
//!
//! ```json
//! {"version":1,
//!  "stages":[{"name":"early","ms":1.23,"outcome":"ok"}, ...],
//!  "total_ms":123.4, "start_uptime_ms":987.6,
//!  "slot":{"lowerdev":"PARTLABEL=rootfs-a","device":"/dev/vda2","fstype":"squashfs"},
//!  "rauc_slot":"boot.0", "init":"/sbin/init",
//!  "modules":[{"name":"virtio_blk","ms":44.1,"result":"loaded"}],
//!  "warnings":[], "peak_rss_kib":1234,
//!  "fresh_flash":true,
//!  "repart":{"outcome":"applied","disk":"/dev/vda","reason":null,"actions":[...],
//!            "formatted":[{"number":3,"label":"boot-b","format":"vfat","reason":"created"}],
//!            "apply":{...},"error":null}}
//! ```
//!
//! `fresh_flash` is null until the fresh-flash stage ran. `repart` is null until the repart stage
//! ran; its `outcome` is `nothing-to-do`, `applied`, `skipped` (with `reason`) or `failed` (with
//! `error`, the error and its causes joined by `: `); `actions` are the plan's partitions that
//! change the table (as `atomix repart --json` prints them), `formatted` the file systems made,
//! `apply` what `atomix_repart::apply` reported (its `ApplyReport`, every object's keys sorted).
//! The records hold repart's own types (`Action`, `PendingFormat`, `ApplyReport`) and enums
//! for outcomes; each serialises to the field names and values above.
//!
//! `outcome` is `ok` or `failed`; `result` is `loaded` or `already-loaded`. `slot` is null until
//! the device stage found the slot; `rauc_slot` is null without `rauc.slot=`; `init` is null
//! until the command line was parsed; `peak_rss_kib` (the larger of `VmHWM` from
//! [`PROC_SELF_STATUS`] and `Rss` from [`PROC_SELF_SMAPS_ROLLUP`]) is set only in the final report, written just before the exec. Times are milliseconds on `CLOCK_BOOTTIME` (the kernel's
//! uptime clock) with microsecond precision.

use atomix_repart::apply::{ApplyReport, PendingFormat};
use serde::{Serialize, Serializer};

use crate::stage::Stage;
use crate::system::ModuleLoad;

/// Where the report is written.
pub const REPORT_PATH: &str = "/run/atomix/initrd.json";

/// Where `/init` reads its peak resident set size (`VmHWM`).
pub const PROC_SELF_STATUS: &str = "/proc/self/status";

/// Where `/init` reads its resident set size counted page by page (`Rss`).
///
/// The kernel (before 6.2) keeps a task's RSS counts in a per-task cache and adds them to the
/// process's, which `VmHWM` is computed from, only every 64 page faults, at exec and at exit.
/// `/init` takes few faults (fault-around maps 16 pages of the binary at a time), so `VmHWM` can
/// read almost nothing (measured: 4 kB). `smaps_rollup` walks the page tables instead.
pub const PROC_SELF_SMAPS_ROLLUP: &str = "/proc/self/smaps_rollup";

/// The report's schema version.
pub const VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Schema version ([`VERSION`]).
    pub version: u32,
    /// Stages run so far, in order.
    pub stages: Vec<StageRecord>,
    /// From `/init` start to the time of writing.
    pub total_ms: f64,
    /// `CLOCK_BOOTTIME` when `/init` started.
    pub start_uptime_ms: f64,
    /// The slot, once found.
    pub slot: Option<SlotRecord>,
    /// `rauc.slot=`.
    pub rauc_slot: Option<String>,
    /// `init=` (default `/sbin/init`).
    pub init: Option<String>,
    /// Modules loaded, in order.
    pub modules: Vec<ModuleRecord>,
    /// Warnings about the command line.
    pub warnings: Vec<String>,
    /// Peak resident set size of `/init` in KiB, read just before the final report.
    pub peak_rss_kib: Option<u64>,
    /// Whether this boot is a fresh flash (no `boot-b` before repart ran).
    pub fresh_flash: Option<bool>,
    /// What the repart stage did.
    pub repart: Option<RepartRecord>,
}

/// The repart stage's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepartRecord {
    /// `nothing-to-do`, `applied`, `skipped` or `failed`.
    pub outcome: RepartOutcome,
    /// The disk repartitioned (or looked at), if there was one.
    pub disk: Option<String>,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// The planned partitions that change the table (empty if nothing was planned).
    pub actions: Vec<atomix_repart::plan::Action>,
    /// File systems made (or that were to be made, when it failed).
    pub formatted: Vec<PendingFormat>,
    /// `atomix_repart::apply`'s report, when it ran to the end.
    #[serde(serialize_with = "keys_sorted")]
    pub apply: Option<ApplyReport>,
    /// The error and its causes, joined by `: `.
    pub error: Option<String>,
}

/// How the repart stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepartOutcome {
    /// The disk already matches the definitions; nothing was loaded or written.
    NothingToDo,
    /// The plan was carried out.
    Applied,
    /// Not attempted (`reason` says why).
    Skipped,
    /// Attempted and failed (`error` says why).
    Failed,
}

impl RepartOutcome {
    /// The name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            RepartOutcome::NothingToDo => "nothing-to-do",
            RepartOutcome::Applied => "applied",
            RepartOutcome::Skipped => "skipped",
            RepartOutcome::Failed => "failed",
        }
    }
}

/// Writes apply's report with the keys of every object sorted, as schema version 1 has them:
/// the report was first recorded as a `serde_json::Value`, whose objects (without serde_json's
/// `preserve_order`) keep their keys sorted, not in struct order.
fn keys_sorted<S: Serializer>(apply: &Option<ApplyReport>, s: S) -> Result<S::Ok, S::Error> {
    match apply {
        None => s.serialize_none(),
        Some(report) => serde_json::to_value(report)
            .map_err(serde::ser::Error::custom)?
            .serialize(s),
    }
}

impl RepartRecord {
    /// A record with only the outcome and the disk.
    pub fn new(outcome: RepartOutcome, disk: Option<&std::path::Path>) -> Self {
        RepartRecord {
            outcome,
            disk: disk.map(|d| d.display().to_string()),
            reason: None,
            actions: Vec::new(),
            formatted: Vec::new(),
            apply: None,
            error: None,
        }
    }
}

/// One stage's timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRecord {
    /// The stage, written as [`Stage::name`].
    pub name: Stage,
    /// Duration.
    pub ms: f64,
    /// `ok` or `failed`.
    pub outcome: StageOutcome,
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageOutcome {
    /// It did its work (a repart failure under `atomix.repart=auto` is recorded in `repart`).
    Ok,
    /// It failed; the failure policy ran next.
    Failed,
}

/// The slot that was mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotRecord {
    /// `atomixos.lowerdev=` as given.
    pub lowerdev: String,
    /// The device node it resolved to.
    pub device: String,
    /// `atomixos.lowerfstype=`.
    pub fstype: String,
}

/// One module load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleRecord {
    /// Module name.
    pub name: String,
    /// Duration of `finit_module`.
    pub ms: f64,
    /// `loaded` or `already-loaded`.
    pub result: ModuleLoad,
}

/// Milliseconds with microsecond precision.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Report {
    /// An empty report for a boot that started at `start` (uptime).
    pub fn new(start: std::time::Duration) -> Self {
        Report {
            version: VERSION,
            stages: Vec::new(),
            total_ms: 0.0,
            start_uptime_ms: ms(start),
            slot: None,
            rauc_slot: None,
            init: None,
            modules: Vec::new(),
            warnings: Vec::new(),
            peak_rss_kib: None,
            fresh_flash: None,
            repart: None,
        }
    }

    /// The JSON text (pretty, newline-terminated).
    ///
    /// # Errors
    ///
    /// Never in practice (all fields serialise); the serde error otherwise.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }
}

/// The `VmHWM:` value (peak resident set size, in KiB) of a `/proc/<pid>/status` text.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    parse_kib_field(status, "VmHWM:")
}

/// The `Rss:` value (resident set size now, in KiB) of a `/proc/<pid>/smaps_rollup` text.
pub fn parse_smaps_rss_kib(smaps_rollup: &str) -> Option<u64> {
    parse_kib_field(smaps_rollup, "Rss:")
}

/// The peak RSS to report: the larger of `VmHWM` and the `smaps_rollup` `Rss` (see
/// [`PROC_SELF_SMAPS_ROLLUP`] for why `VmHWM` alone can be far too low).
pub fn peak_rss_kib(vm_hwm: Option<u64>, smaps_rss: Option<u64>) -> Option<u64> {
    vm_hwm.max(smaps_rss)
}

fn parse_kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.trim();
        value
            .strip_suffix("kB")
            .unwrap_or(value)
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomix_repart::apply::FormatReason;
    use atomix_repart::definitions::Format;
    use std::time::Duration;

    #[test]
    fn schema_field_names() {
        let mut r = Report::new(Duration::from_micros(987_654));
        r.stages.push(StageRecord {
            name: Stage::Early,
            ms: ms(Duration::from_nanos(1_234_567)),
            outcome: StageOutcome::Ok,
        });
        r.slot = Some(SlotRecord {
            lowerdev: "PARTLABEL=rootfs-a".into(),
            device: "/dev/vda2".into(),
            fstype: "squashfs".into(),
        });
        r.modules.push(ModuleRecord {
            name: "virtio_blk".into(),
            ms: 1.5,
            result: ModuleLoad::Loaded,
        });
        let v: serde_json::Value = serde_json::from_slice(&r.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": 1,
                "stages": [{"name": "early", "ms": 1.235, "outcome": "ok"}],
                "total_ms": 0.0,
                "start_uptime_ms": 987.654,
                "slot": {"lowerdev": "PARTLABEL=rootfs-a", "device": "/dev/vda2", "fstype": "squashfs"},
                "rauc_slot": null,
                "init": null,
                "modules": [{"name": "virtio_blk", "ms": 1.5, "result": "loaded"}],
                "warnings": [],
                "peak_rss_kib": null,
                "fresh_flash": null,
                "repart": null
            })
        );

        r.fresh_flash = Some(true);
        let mut rec = RepartRecord::new(
            RepartOutcome::Failed,
            Some(std::path::Path::new("/dev/vda")),
        );
        rec.formatted.push(PendingFormat {
            number: 5,
            label: "data".into(),
            format: Format::F2fs,
            reason: FormatReason::Empty,
        });
        rec.error = Some("cannot repartition /dev/vda: no space".into());
        r.repart = Some(rec);
        let v: serde_json::Value = serde_json::from_slice(&r.to_json().unwrap()).unwrap();
        assert_eq!(v["fresh_flash"], true);
        assert_eq!(
            v["repart"],
            serde_json::json!({
                "outcome": "failed",
                "disk": "/dev/vda",
                "reason": null,
                "actions": [],
                "formatted": [{"number": 5, "label": "data", "format": "f2fs", "reason": "empty"}],
                "apply": null,
                "error": "cannot repartition /dev/vda: no space"
            })
        );
        for o in [
            RepartOutcome::NothingToDo,
            RepartOutcome::Applied,
            RepartOutcome::Skipped,
            RepartOutcome::Failed,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }

    #[test]
    fn apply_is_written_with_sorted_keys() {
        use atomix_repart::apply::MakeDirsOutcome;
        let mut rec = RepartRecord::new(RepartOutcome::Applied, None);
        rec.apply = Some(ApplyReport {
            formatted: vec![PendingFormat {
                number: 5,
                label: "data".into(),
                format: Format::F2fs,
                reason: FormatReason::Created,
            }],
            table_written: true,
            kernel: Vec::new(),
            make_directories: vec![(5, vec!["/var".into()], MakeDirsOutcome::Done)],
        });
        let text = String::from_utf8(serde_json::to_vec(&rec).unwrap()).unwrap();
        assert!(
            text.contains(
                r#""apply":{"formatted":[{"format":"f2fs","label":"data","number":5,"reason":"created"}],"kernel":[],"make_directories":[[5,["/var"],"done"]],"table_written":true}"#
            ),
            "{text}"
        );
        // The report's own records keep their field order.
        assert!(text.starts_with(r#"{"outcome":"applied","disk":null,"reason":null,"actions":[]"#));
    }

    #[test]
    fn vm_hwm_from_proc_status() {
        let status =
            "Name:\tinit\nVmPeak:\t    3000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t     900 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(1234));
        assert_eq!(parse_vm_hwm_kib("VmRSS:\t 900 kB\n"), None);
        assert_eq!(parse_vm_hwm_kib("VmHWM:\t lots kB\n"), None);
        let rollup = "00400000-ffffd000 ---p 00000000 00:00 0    [rollup]\n\
                      Rss:                1236 kB\nPss:                1236 kB\n";
        assert_eq!(parse_smaps_rss_kib(rollup), Some(1236));
        assert_eq!(parse_smaps_rss_kib(status), None);
        assert_eq!(peak_rss_kib(Some(4), Some(1236)), Some(1236));
        assert_eq!(peak_rss_kib(Some(2048), Some(1236)), Some(2048));
        assert_eq!(peak_rss_kib(None, Some(1236)), Some(1236));
        assert_eq!(peak_rss_kib(None, None), None);
    }
}
