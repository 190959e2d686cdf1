//! The rows, verdicts, printed table and JSON of [`BenchResult`], pinned.

use std::path::PathBuf;

use super::*;

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
