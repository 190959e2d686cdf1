//! `/run/atomix/initrd.json`: what `/init` did, for the real root and the tests.
//!
//! ```json
//! {"version":1,
//!  "stages":[{"name":"early","ms":1.23,"outcome":"ok"}, ...],
//!  "total_ms":123.4, "start_uptime_ms":987.6,
//!  "slot":{"lowerdev":"PARTLABEL=rootfs-a","device":"/dev/vda2","fstype":"squashfs"},
//!  "rauc_slot":"boot.0", "init":"/sbin/init",
//!  "modules":[{"name":"virtio_blk","ms":44.1,"result":"loaded"}],
//!  "warnings":[], "peak_rss_kib":1234}
//! ```
//!
//! `outcome` is `ok` or `failed`; `result` is `loaded` or `already-loaded`. `slot` is null until
//! the device stage found the slot; `rauc_slot` is null without `rauc.slot=`; `init` is null
//! until the command line was parsed; `peak_rss_kib` (`VmHWM` of `/init` from
//! [`PROC_SELF_STATUS`]) is set only in the final report, written just before the exec. Times are milliseconds on `CLOCK_BOOTTIME` (the kernel's
//! uptime clock) with microsecond precision.

use serde::Serialize;

/// Where the report is written.
pub const REPORT_PATH: &str = "/run/atomix/initrd.json";

/// Where `/init` reads its peak resident set size (`VmHWM`).
pub const PROC_SELF_STATUS: &str = "/proc/self/status";

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
}

/// One stage's timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRecord {
    /// [`crate::stage::Stage::name`].
    pub name: String,
    /// Duration.
    pub ms: f64,
    /// `ok` or `failed`.
    pub outcome: String,
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
    pub result: String,
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
    status.lines().find_map(|line| {
        let value = line.strip_prefix("VmHWM:")?.trim();
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
    use std::time::Duration;

    #[test]
    fn schema_field_names() {
        let mut r = Report::new(Duration::from_micros(987_654));
        r.stages.push(StageRecord {
            name: "early".into(),
            ms: ms(Duration::from_nanos(1_234_567)),
            outcome: "ok".into(),
        });
        r.slot = Some(SlotRecord {
            lowerdev: "PARTLABEL=rootfs-a".into(),
            device: "/dev/vda2".into(),
            fstype: "squashfs".into(),
        });
        r.modules.push(ModuleRecord {
            name: "virtio_blk".into(),
            ms: 1.5,
            result: "loaded".into(),
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
                "peak_rss_kib": null
            })
        );
    }

    #[test]
    fn vm_hwm_from_proc_status() {
        let status =
            "Name:\tinit\nVmPeak:\t    3000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t     900 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(1234));
        assert_eq!(parse_vm_hwm_kib("VmRSS:\t 900 kB\n"), None);
        assert_eq!(parse_vm_hwm_kib("VmHWM:\t lots kB\n"), None);
    }
}
