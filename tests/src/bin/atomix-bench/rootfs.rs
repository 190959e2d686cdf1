//! `atomix-bench rootfs`: the real root filesystem (DESIGN section 8), the baseline the
//! provisioner's first-boot time is measured against; with `--provision`, the provisioned first
//! boot.
//!
//! Owns: the boots, their guest-clock marks, the build timings and the tables. Must not: build
//! the root filesystem other than through `scripts/rootfs.sh`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use atomix_systests::appliance::{self, ProvisionMarks};
use atomix_systests::bench::kernel_timestamp;
use atomix_systests::bench_table::{Align, JsonStyle, Table, json_text};
use atomix_systests::{Artifacts, Guest, median, run_checked, seed};
use serde_json::{Value, json};

/// The line `/init` prints last, before it execs the real init.
const INIT_DONE_MARK: &str = "atomix-init: boot done in";
const BOOT_TIMEOUT: Duration = Duration::from_secs(1200);
const TO_SHELL: Duration = Duration::from_secs(600);

/// The real root filesystem: boots to multi-user, its size and build time (as root).
///
/// - Boots, on the guest clock, median of N: kernel start → /init done (the kernel timestamp
///   of its `boot done` line) → systemd's multi-user target (ActiveEnterTimestampMonotonic,
///   microseconds since the kernel started), for a first boot (a fresh copy of the flashed
///   16 GiB image: repartitioning, /data made) and the steady-state boot of the same disk that
///   follows it. Through U-Boot and boot.scr, with both NICs, as the T3 test boots.
/// - The squashfs's size against the 1 GiB slot, from the build's manifest.
/// - Build time of scripts/rootfs.sh: cold (--fresh: every package installed again under
///   qemu-user; only with --cold, about ten minutes), with the package set cached
///   (--rebuild: trees added and packed again), and a cache hit.
///
/// With --provision (what `scripts/bench-provision.sh --boots N` runs), instead: first boots of
/// a fresh flash whose boot partition carries a seed bundle (the T3 test's probe container,
/// built on the device), median of N: systemd start → provisioned and marked good (first boot's
/// journal line), and of that the container's start alone (its image build leaving `inactive`
/// → the container `active`).
///
/// There is no anchor to run beside: the original AtomixOS is NixOS on hardware. The table says
/// so instead of inventing one. Run it through scripts/bench-rootfs.sh (or
/// scripts/bench-provision.sh for --provision).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Boots (first and steady-state pairs; with --provision, provisioned first boots).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = crate::at_least_one)]
    pub boots: usize,
    /// Also time a cold build of the root filesystem (scripts/rootfs.sh --fresh, about ten
    /// minutes).
    #[arg(long)]
    pub cold: bool,
    /// Measure provisioned first boots instead.
    #[arg(long)]
    pub provision: bool,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One boot's guest-clock marks, in seconds since the kernel started.
#[derive(Debug, Clone, Copy)]
struct Marks {
    init_done: f64,
    multi_user: f64,
}

/// Boots `disk` in the bench board (its console log named `log`) and waits for the root shell.
fn boot_to_shell(artifacts: &Artifacts, disk: &Path, log: &str, name: &str) -> Result<Guest> {
    let cfg = artifacts.appliance_config(disk, BOOT_TIMEOUT, log, Vec::new(), Vec::new())?;
    let mut guest = Guest::boot(name, cfg);
    guest.shell(TO_SHELL)?;
    Ok(guest)
}

/// Boots `disk` to a root shell and reads the marks.
fn boot(artifacts: &Artifacts, disk: &Path, name: &str) -> Result<Marks> {
    let mut guest = boot_to_shell(artifacts, disk, &format!("bench-rootfs-{name}"), name)?;
    let state = guest.sh("systemctl is-system-running --wait", TO_SHELL)?;
    ensure!(
        state.text().trim() == "running",
        "{name}: the system is {} (console: {})",
        state.text().trim(),
        guest.log()
    );
    let at = guest.sh(
        "systemctl show -P ActiveEnterTimestampMonotonic multi-user.target",
        TO_SHELL,
    )?;
    let multi_user = at
        .text()
        .trim()
        .parse::<f64>()
        .with_context(|| format!("{name}: multi-user.target's timestamp {:?}", at.text()))?
        / 1e6;
    let console = guest.console.join("\n");
    let init_done = kernel_timestamp(&console, INIT_DONE_MARK)
        .with_context(|| format!("{name}: no `{INIT_DONE_MARK}` (console: {})", guest.log()))?;
    guest.power_off(Duration::from_secs(300))?;
    Ok(Marks {
        init_done,
        multi_user,
    })
}

/// Runs `scripts/rootfs.sh` with `flags`; returns its manifest and the wall time.
fn rootfs_build(root: &Path, flags: &[&str]) -> Result<(Value, f64)> {
    let start = Instant::now();
    let out = run_checked(
        Command::new(root.join("scripts/rootfs.sh"))
            .args(["--board", "qemu-virt", "--quiet", "--json"])
            .args(flags),
    )?;
    Ok((serde_json::from_str(&out)?, start.elapsed().as_secs_f64()))
}

/// First boot of `disk` (a fresh flash with a seed on its boot partition) to provisioned.
fn provisioned_boot(artifacts: &Artifacts, disk: &Path, name: &str) -> Result<ProvisionMarks> {
    let mut guest = boot_to_shell(artifacts, disk, &format!("bench-provision-{name}"), name)?;
    let done = guest.sh(
        "timeout 1200 sh -c 'until test -e /data/.completed_first_boot; do sleep 1; done'",
        BOOT_TIMEOUT,
    )?;
    ensure!(
        done.status == 0,
        "{name}: not provisioned (console: {})",
        guest.log()
    );
    let marks = appliance::provision_marks(&mut guest, "probe")?;
    guest.power_off(Duration::from_secs(300))?;
    Ok(marks)
}

/// `--provision`: provisioned first boots, median of `boots`.
fn provision(artifacts: &Artifacts, dir: &Path, boots: usize, as_json: bool) -> Result<()> {
    let (_, key) = seed::ssh_keypair(dir, "bench")?;
    let config = seed::probe_config("admin", &key, "bench");
    let bundle = seed::probe_bundle(artifacts, dir, "boot", &config, "--zstd")?;
    let rootfs = artifacts.real_rootfs("qemu-virt")?;
    let image = artifacts.flashed_image(&rootfs.squashfs, 16 << 30, dir, "bench-provision")?;
    let mut marks = Vec::new();
    for n in 1..=boots {
        let disk = dir.join(format!("disk-{n}.img"));
        run_checked(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&image.disk)
                .arg(&disk),
        )?;
        seed::put_boot_seed(&disk, &bundle, "config.tar.zst")?;
        eprintln!("bench: boot {n}/{boots}: a fresh flash provisioned from its boot seed");
        marks.push(provisioned_boot(artifacts, &disk, &n.to_string())?);
        std::fs::remove_file(&disk)?;
    }
    crate::print(&provision_report(boots, &marks, as_json))
}

/// Runs the benchmark (or, with `--provision`, the provisioned boots) and prints its table (or
/// JSON).
///
/// # Errors
/// A build, a boot or a command in the guest fails, or a mark is missing.
pub fn run(args: &Args) -> Result<()> {
    let artifacts = Artifacts::locate()?;
    let dir = artifacts.fresh_dir("bench-rootfs")?;
    if args.provision {
        return provision(&artifacts, &dir, args.boots, args.json);
    }

    eprintln!("bench: scripts/rootfs.sh with the package set cached (--rebuild)");
    let (manifest, cached_s) = rootfs_build(&artifacts.root, &["--rebuild"])?;
    eprintln!("bench: scripts/rootfs.sh, a cache hit");
    let (_, hit_s) = rootfs_build(&artifacts.root, &[])?;
    let cold_s = if args.cold {
        eprintln!("bench: scripts/rootfs.sh --fresh (cold: about ten minutes)");
        let out = dir.join("cold.squashfs");
        let out = out.to_str().context("a UTF-8 scratch path")?.to_owned();
        let (cold, secs) = rootfs_build(&artifacts.root, &["--fresh", "--out", &out])?;
        ensure!(
            cold["sha256"] == manifest["sha256"],
            "the cold build differs from the cached one: {} / {}",
            cold["sha256"],
            manifest["sha256"]
        );
        Some(secs)
    } else {
        None
    };
    let rootfs = artifacts.real_rootfs("qemu-virt")?;
    let image = artifacts.flashed_image(&rootfs.squashfs, 16 << 30, &dir, "bench-rootfs")?;

    let mut first = Vec::new();
    let mut steady = Vec::new();
    for n in 1..=args.boots {
        let disk = dir.join(format!("disk-{n}.img"));
        run_checked(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&image.disk)
                .arg(&disk),
        )?;
        eprintln!("bench: boot {n}/{}: first boot", args.boots);
        first.push(boot(&artifacts, &disk, &format!("{n}-first"))?);
        eprintln!("bench: boot {n}/{}: steady state", args.boots);
        steady.push(boot(&artifacts, &disk, &format!("{n}-steady"))?);
        std::fs::remove_file(&disk)?;
    }

    crate::print(&report(
        args.boots, &first, &steady, &manifest, cold_s, cached_s, hit_s, args.json,
    ))
}

/// What `--provision` prints: its table, or with `as_json` its JSON.
fn provision_report(boots: usize, marks: &[ProvisionMarks], as_json: bool) -> String {
    let med = |pick: fn(&ProvisionMarks) -> f64| -> f64 {
        let millis: Vec<u64> = marks
            .iter()
            .map(|m| (pick(m) * 1000.0).round() as u64)
            .collect();
        median(&millis).unwrap_or(0) as f64 / 1000.0
    };
    let (total, container) = (
        med(ProvisionMarks::to_marked_good),
        med(ProvisionMarks::container_start),
    );
    if as_json {
        let each: Vec<Value> = marks
            .iter()
            .map(|m| {
                json!({"to_marked_good_s": m.to_marked_good(), "container_start_s": m.container_start()})
            })
            .collect();
        let result = json!({
            "boots": boots,
            "to_marked_good_s": total,
            "container_start_s": container,
            "each": each,
        });
        return json_text(&result, JsonStyle::Pretty);
    }
    let mut table = Table::columns(
        ["metric (s, guest clock)", "median"],
        &[(58, Align::Left), (8, Align::Right)],
    );
    table
        .row([
            "systemd start → provisioned and marked good".to_owned(),
            format!("{total:.1}"),
        ])
        .row([
            "  of which the container (image build → active)".to_owned(),
            format!("{container:.1}"),
        ]);
    format!(
        "provisioning in the guest: qemu-virt, U-Boot, 2 vCPUs, 2 GiB, a fresh flash with a \
         bundle seed on boot-a; median of {boots} (no anchor: the original is NixOS on \
         hardware)\n\n{}",
        table.render()
    )
}

/// What is printed: the table, or with `as_json` the JSON. `first` and `steady` are the boots'
/// marks, `manifest` the build's, the build times in seconds.
#[allow(clippy::too_many_arguments)]
fn report(
    boots: usize,
    first: &[Marks],
    steady: &[Marks],
    manifest: &Value,
    cold_s: Option<f64>,
    cached_s: f64,
    hit_s: f64,
    as_json: bool,
) -> String {
    let med = |marks: &[Marks], pick: fn(&Marks) -> f64| -> f64 {
        let millis: Vec<u64> = marks
            .iter()
            .map(|m| (pick(m) * 1000.0).round() as u64)
            .collect();
        median(&millis).unwrap_or(0) as f64 / 1000.0
    };
    let rows: Vec<(&str, String, String)> = vec![
        (
            "kernel start → /init done (s, guest)",
            format!("{:.2}", med(first, |m| m.init_done)),
            format!("{:.2}", med(steady, |m| m.init_done)),
        ),
        (
            "kernel start → multi-user.target (s, guest)",
            format!("{:.1}", med(first, |m| m.multi_user)),
            format!("{:.1}", med(steady, |m| m.multi_user)),
        ),
        (
            "/init done → multi-user.target (s, guest)",
            format!("{:.1}", med(first, |m| m.multi_user - m.init_done)),
            format!("{:.1}", med(steady, |m| m.multi_user - m.init_done)),
        ),
    ];
    let bytes = manifest["bytes"].as_u64().unwrap_or(0);
    let slot = manifest["slot_bytes"].as_u64().unwrap_or(1);
    let result = json!({
        "boots": boots,
        "first_boot": first.iter().map(|m| json!({"init_done_s": m.init_done, "multi_user_s": m.multi_user})).collect::<Vec<_>>(),
        "steady_state": steady.iter().map(|m| json!({"init_done_s": m.init_done, "multi_user_s": m.multi_user})).collect::<Vec<_>>(),
        "squashfs_bytes": bytes,
        "slot_bytes": slot,
        "tree_mib": manifest["tree_mib"],
        "build_cold_s": cold_s,
        "build_package_set_cached_s": cached_s,
        "build_cache_hit_s": hit_s,
        "packages": manifest["packages"].as_array().map_or(0, Vec::len),
    });
    if as_json {
        return json_text(&result, JsonStyle::Pretty);
    }
    let mut boots_table = Table::columns(
        ["metric", "first boot", "steady state"],
        &[(46, Align::Left), (12, Align::Right), (14, Align::Right)],
    );
    for (metric, a, b) in rows {
        boots_table.row([metric.to_owned(), a, b]);
    }
    let mut build = Table::columns([""; 0], &[(46, Align::Left), (12, Align::Right)]);
    build.row([
        "squashfs (MiB)".to_owned(),
        format!("{:.1}", bytes as f64 / (1 << 20) as f64),
        format!(
            "({:.1}% of the {} MiB slot; tree {} MiB)",
            bytes as f64 * 100.0 / slot as f64,
            slot >> 20,
            manifest["tree_mib"]
        ),
    ]);
    match cold_s {
        Some(s) => build.row(["build, cold (s)".to_owned(), format!("{s:.0}")]),
        None => build.row(["build, cold (s)", "(--cold)"]),
    };
    build
        .row([
            "build, package set cached (s)".to_owned(),
            format!("{cached_s:.0}"),
        ])
        .row(["build, cache hit (s)".to_owned(), format!("{hit_s:.0}")]);
    format!(
        "root filesystem: qemu-virt, {} packages, U-Boot boots with both NICs, 2 vCPUs, 2 GiB; \
         median of {boots} (no anchor: the original is NixOS on hardware)\n\n{}\n{}",
        result["packages"],
        boots_table.render(),
        build.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(pairs: &[(f64, f64)]) -> Vec<Marks> {
        pairs
            .iter()
            .map(|&(init_done, multi_user)| Marks {
                init_done,
                multi_user,
            })
            .collect()
    }

    fn sample() -> (Vec<Marks>, Vec<Marks>, Value) {
        (
            marks(&[(2.1234, 31.5), (2.2, 33.25), (2.05, 30.0)]),
            marks(&[(1.5, 20.1), (1.6, 21.3), (1.55, 20.7)]),
            json!({
                "bytes": 412_000_000,
                "slot_bytes": 1_073_741_824,
                "tree_mib": 1180,
                "packages": ["a", "b", "c"],
            }),
        )
    }

    #[test]
    fn table_as_printed() {
        let (first, steady, manifest) = sample();
        let text = report(3, &first, &steady, &manifest, None, 95.4, 1.2, false);
        let expected = [
            concat!(
                "root filesystem: qemu-virt, 3 packages, U-Boot boots with both NICs, 2 vCPUs, ",
                "2 GiB; median of 3 (no anchor: the original is NixOS on hardware)"
            ),
            "",
            "metric                                           first boot   steady state",
            "kernel start → /init done (s, guest)                   2.12           1.55",
            "kernel start → multi-user.target (s, guest)            31.5           20.7",
            "/init done → multi-user.target (s, guest)              29.4           19.1",
            "",
            concat!(
                "squashfs (MiB)                                        392.9 ",
                "(38.4% of the 1024 MiB slot; tree 1180 MiB)"
            ),
            "build, cold (s)                                    (--cold)",
            "build, package set cached (s)                            95",
            "build, cache hit (s)                                      1",
            "",
        ];
        assert_eq!(text, expected.join("\n"));
        let cold = report(3, &first, &steady, &manifest, Some(612.7), 95.4, 1.2, false);
        assert!(
            cold.contains("\nbuild, cold (s)                                         613\n"),
            "{cold}"
        );
    }

    #[test]
    fn json_as_printed() {
        let (first, steady, manifest) = sample();
        let text = report(3, &first, &steady, &manifest, None, 95.4, 1.2, true);
        assert_eq!(
            text,
            r#"{
  "boots": 3,
  "build_cache_hit_s": 1.2,
  "build_cold_s": null,
  "build_package_set_cached_s": 95.4,
  "first_boot": [
    {
      "init_done_s": 2.1234,
      "multi_user_s": 31.5
    },
    {
      "init_done_s": 2.2,
      "multi_user_s": 33.25
    },
    {
      "init_done_s": 2.05,
      "multi_user_s": 30.0
    }
  ],
  "packages": 3,
  "slot_bytes": 1073741824,
  "squashfs_bytes": 412000000,
  "steady_state": [
    {
      "init_done_s": 1.5,
      "multi_user_s": 20.1
    },
    {
      "init_done_s": 1.6,
      "multi_user_s": 21.3
    },
    {
      "init_done_s": 1.55,
      "multi_user_s": 20.7
    }
  ],
  "tree_mib": 1180
}
"#
        );
    }

    fn provision_marks() -> Vec<ProvisionMarks> {
        [(105.4, 90.2), (100.0, 88.0), (110.0, 95.0)]
            .into_iter()
            .map(|(marked_good, container_active)| ProvisionMarks {
                systemd_start: 10.0,
                marked_good,
                build_start: 50.0,
                container_active,
            })
            .collect()
    }

    #[test]
    fn provision_table_and_json_as_printed() {
        let text = provision_report(3, &provision_marks(), false);
        let expected = [
            concat!(
                "provisioning in the guest: qemu-virt, U-Boot, 2 vCPUs, 2 GiB, a fresh flash ",
                "with a bundle seed on boot-a; median of 3 (no anchor: the original is NixOS on ",
                "hardware)"
            ),
            "",
            "metric (s, guest clock)                                      median",
            "systemd start → provisioned and marked good                    95.4",
            "  of which the container (image build → active)                40.2",
            "",
        ];
        assert_eq!(text, expected.join("\n"));
        assert_eq!(
            provision_report(3, &provision_marks(), true),
            r#"{
  "boots": 3,
  "container_start_s": 40.2,
  "each": [
    {
      "container_start_s": 40.2,
      "to_marked_good_s": 95.4
    },
    {
      "container_start_s": 38.0,
      "to_marked_good_s": 90.0
    },
    {
      "container_start_s": 45.0,
      "to_marked_good_s": 100.0
    }
  ],
  "to_marked_good_s": 95.4
}
"#
        );
    }
}
