//! T3 first boot: QEMU boots of the real kernel with an initramfs that carries the qemu-virt
//! board's repart data, on sparse disks holding only boot-a and rootfs-a. The boots must persist,
//! so the disks are NOT attached with `-snapshot`; each test works on its own copy. The host then
//! reads the result: the GPT (`atomix_repart::gpt` and `sfdisk -d`), `fsck.f2fs` and
//! `fsck.vfat -n` through read-only loop devices, and sha256 of the whole disk.
//!
//! Needs root (loop devices) and the artifacts of `scripts/test.sh`. Console transcripts are kept
//! in `<target>/qemu-logs/t3-firstboot-*.log`.

#![allow(clippy::unwrap_used)]

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use atomix_image::initramfs;
use atomix_qemu::{Ending, Outcome};
use atomix_repart::gpt::{self, Table};
use atomix_systests::{
    Artifacts, DataProbe, Probe, build_test_rootfs, qemu_config_for, qemu_log_path,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// DESIGN section 3.
const DATA_DIRS: &[&str] = &[
    "/config",
    "/config/quadlet",
    "/config/ssh-authorized-keys",
    "/containers",
    "/logs",
];
const LOWERDEV: &str = "atomixos.lowerdev=PARTLABEL=rootfs-a";

struct Fixture {
    kernel: PathBuf,
    /// Initramfs with the qemu-virt board's modules and repart data.
    initramfs: PathBuf,
    /// The image as flashed: it ends 1 MiB after rootfs-a (backup GPT there).
    flashed: PathBuf,
    /// The same layout built with `DiskSpec.size` = 16 GiB (backup GPT already at the end).
    sized16: PathBuf,
    dir: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture().unwrap_or_else(|e| panic!("T3 fixture: {e:#}")))
}

fn build_fixture() -> anyhow::Result<Fixture> {
    let artifacts = Artifacts::locate()?;
    let dir = artifacts.fresh_dir("t3-firstboot")?;
    let spec = artifacts.qemu_virt_initramfs(true)?;
    let initramfs = dir.join("initramfs.img");
    let report = initramfs::build(&spec, &initramfs)?;
    anyhow::ensure!(
        report.repart_modules.iter().any(|m| m == "f2fs"),
        "no f2fs in {:?}",
        report.repart_modules
    );
    let rootfs = dir.join("rootfs");
    build_test_rootfs(&rootfs, &artifacts.busybox_aarch64)?;
    let build = |name: &str, size: Option<u64>| -> anyhow::Result<PathBuf> {
        let out = dir.join(name);
        artifacts.probe_disk(&rootfs, &initramfs, "t3-firstboot", size, &out)?;
        Ok(out)
    };
    let flashed = build("flashed.img", None)?;
    let sized16 = build("sized16.img", Some(16 * GIB))?;
    Ok(Fixture {
        kernel: artifacts.kernel_image,
        initramfs,
        flashed,
        sized16,
        dir,
    })
}

/// A sparse copy of `from` named `name`, grown (sparsely) to `size` if given.
fn disk_copy(from: &Path, name: &str, size: Option<u64>) -> PathBuf {
    let to = fixture().dir.join(name);
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} {}", from.display(), to.display());
    if let Some(size) = size {
        OpenOptions::new()
            .write(true)
            .open(&to)
            .unwrap()
            .set_len(size)
            .unwrap();
    }
    to
}

/// One persistent boot of `disk`. `probe.data=/dev/vda5` tells the probe where data is when the
/// kernel knows the partition only from `BLKPG_ADD_PARTITION` (no PARTNAME before a reboot);
/// `/init` ignores the key.
fn boot(name: &str, disk: &Path, args: &str) -> (Outcome, Probe) {
    let f = fixture();
    let append = format!("console=ttyAMA0 panic=-1 {LOWERDEV} probe.data=/dev/vda5 {args}");
    let cfg = qemu_config_for(
        &f.kernel,
        &f.initramfs,
        Some(disk),
        &append,
        Duration::from_secs(240),
        &format!("t3-firstboot-{name}"),
    );
    let out = atomix_qemu::run(&cfg, &mut |_| {}).unwrap_or_else(|e| panic!("{name}: qemu: {e}"));
    let probe = Probe::parse(&out.console);
    (out, probe)
}

fn log(name: &str) -> String {
    qemu_log_path(&format!("t3-firstboot-{name}"))
        .display()
        .to_string()
}

/// A boot that reached the switched root and finished the probe.
fn assert_reached_root(name: &str, out: &Outcome, probe: &Probe) -> serde_json::Value {
    assert_eq!(
        out.ending,
        Ending::PowerOff,
        "{name}: ended {} (console: {})",
        out.ending,
        log(name)
    );
    assert!(
        probe.done,
        "{name}: no ROOTFS-DONE (console: {})",
        log(name)
    );
    assert!(probe.problems.is_empty(), "{name}: {:?}", probe.problems);
    let json = probe.initrd_json.clone().expect("no initrd.json");
    let stages: Vec<&str> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["outcome"], "ok", "{name}: {s}");
            s["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(stages, atomix_systests::STAGE_ORDER, "{name}");
    json
}

fn module_names(json: &serde_json::Value) -> Vec<String> {
    json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

fn read_table(disk: &Path) -> Table {
    let mut f = File::open(disk).unwrap();
    let size = f.metadata().unwrap().len();
    gpt::read(&mut f, size).unwrap()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A read-only loop device over part of a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn new(file: &Path, offset: u64, size: u64) -> Self {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(format!("--offset={offset}"))
            .arg(format!("--sizelimit={size}"))
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Runs a checker on partition `label` of `disk`; asserts it exits 0 and returns its output.
fn fsck(disk: &Path, table: &Table, label: &str, tool: &str, args: &[&str]) -> String {
    let p = table.by_name(label).unwrap();
    let dev = Loop::new(disk, p.first_lba * 512, p.sectors() * 512);
    let out = Command::new(tool).args(args).arg(&dev.0).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} on {label}: {text}");
    text
}

/// The host's view after a first boot: DESIGN section 3's sectors, the backup GPT at the end,
/// and clean file systems.
fn assert_first_boot_layout(disk: &Path) {
    let size = std::fs::metadata(disk).unwrap().len();
    let table = read_table(disk);
    let got: Vec<(u32, &str, u64, u64)> = table
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.name.as_str(),
                p.first_lba * 512 / MIB,
                p.sectors() * 512 / MIB,
            )
        })
        .collect();
    let data_mib = (size / 512 - 34 - 2320 * MIB / 512 + 1) * 512 / MIB;
    assert_eq!(
        got,
        [
            (1, "boot-a", 16, 128),
            (2, "rootfs-a", 144, 1024),
            (3, "boot-b", 1168, 128),
            (4, "rootfs-b", 1296, 1024),
            (5, "data", 2320, data_mib),
        ]
    );
    assert_eq!(
        table.last_usable_lba,
        size / 512 - 34,
        "backup GPT at the end"
    );
    // data takes the rest, its size rounded down to 4096 bytes.
    let gap = table.last_usable_lba - table.by_name("data").unwrap().last_lba;
    assert!(
        gap < 8,
        "data ends {gap} sectors before the last usable LBA"
    );
    // sfdisk reads both headers and checks the backup independently.
    let out = Command::new("sfdisk").arg("-d").arg(disk).output().unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dump.contains(&format!("last-lba: {}", size / 512 - 34)),
        "{dump}"
    );
    for (label, start) in [("boot-b", 1168), ("rootfs-b", 1296), ("data", 2320)] {
        assert!(
            dump.lines()
                .any(|l| l.contains(&format!("start={:>12}", start * MIB / 512))
                    && l.contains(&format!("name=\"{label}\""))),
            "{label} at {start} MiB not in:\n{dump}"
        );
    }
    let f2fs = fsck(disk, &table, "data", "fsck.f2fs", &["--dry-run"]);
    assert!(!f2fs.contains("[Fail]"), "{f2fs}");
    fsck(disk, &table, "boot-b", "fsck.vfat", &["-n"]);
}

fn assert_data_mounted(name: &str, probe: &Probe) {
    match &probe.data {
        Some(DataProbe::Mounted { fstype, dirs }) => {
            assert_eq!(fstype, "f2fs", "{name}");
            for want in DATA_DIRS {
                assert!(
                    dirs.iter().any(|d| d == want),
                    "{name}: {want} not in {dirs:?}"
                );
            }
        }
        other => panic!("{name}: data is {other:?} (console: {})", log(name)),
    }
}

#[test]
fn first_boot_repartitions_then_the_next_boot_changes_nothing() {
    let f = fixture();
    let disk = disk_copy(&f.flashed, "first-steady.img", Some(16 * GIB));
    let before = read_table(&disk);
    assert_eq!(before.partitions.len(), 2);

    let name = "first";
    let (out, probe) = boot(name, &disk, "");
    let json = assert_reached_root(name, &out, &probe);
    assert_eq!(json["fresh_flash"], true, "{name}");
    assert_eq!(
        probe.fresh_flash,
        Some(true),
        "{name}: no marker in the root"
    );
    let repart = &json["repart"];
    assert_eq!(repart["outcome"], "applied", "{name}: {repart}");
    assert_eq!(repart["disk"], "/dev/vda");
    let created: Vec<&str> = repart["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["boot-b", "rootfs-b", "data"]);
    let formatted: Vec<(&str, &str)> = repart["formatted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["label"].as_str().unwrap(), a["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(formatted, [("boot-b", "created"), ("data", "created")]);
    let modules = module_names(&json);
    assert!(
        modules.iter().any(|m| m == "f2fs") && modules.iter().any(|m| m == "crc32_generic"),
        "{modules:?}"
    );
    // The kernel knew the new partitions without a reboot: the probe found and mounted data.
    assert_data_mounted(name, &probe);
    assert!(
        out.console.contains("atomix-init: stage repart: ok in ")
            && out
                .console
                .contains("atomix-init: stage fresh-flash: ok in "),
        "{name}: stage lines"
    );
    let first_ms = json["total_ms"].as_f64().unwrap();
    let first_repart_ms = json["stages"][5]["ms"].as_f64().unwrap();
    assert_first_boot_layout(&disk);

    let hash = sha256(&disk);
    let name = "steady";
    let (out, probe) = boot(name, &disk, "");
    let json = assert_reached_root(name, &out, &probe);
    assert_eq!(sha256(&disk), hash, "{name}: the disk changed");
    assert_eq!(json["fresh_flash"], false);
    assert_eq!(
        probe.fresh_flash,
        Some(false),
        "{name}: a marker in the root"
    );
    assert_eq!(
        json["repart"]["outcome"], "nothing-to-do",
        "{}",
        json["repart"]
    );
    let modules = module_names(&json);
    assert!(
        !modules
            .iter()
            .any(|m| m == "f2fs" || m == "vfat" || m == "crc32_generic"),
        "{name}: repart modules loaded: {modules:?}"
    );
    assert_eq!(probe.data, Some(DataProbe::NoF2fs), "{name}");
    let steady_ms = json["total_ms"].as_f64().unwrap();
    let steady_repart_ms = json["stages"][5]["ms"].as_f64().unwrap();
    eprintln!(
        "initrd total_ms: first boot {first_ms:.1} (repart {first_repart_ms:.1}), steady state \
         {steady_ms:.1} (repart {steady_repart_ms:.1})"
    );
}

#[test]
fn a_wiped_data_partition_is_formatted_again_without_a_marker() {
    let f = fixture();
    // Built with DiskSpec.size: the backup GPT is already at the end.
    let disk = disk_copy(&f.sized16, "reprovision.img", None);
    let (out, probe) = boot("reprovision-first", &disk, "");
    let json = assert_reached_root("reprovision-first", &out, &probe);
    assert_eq!(json["repart"]["outcome"], "applied");
    assert_first_boot_layout(&disk);

    // Both f2fs superblocks (at 1 KiB in blocks 0 and 1): apply treats a partition with either
    // one as holding a file system, so zeroing only the first 4 KiB would not wipe it.
    let table = read_table(&disk);
    let data = table.by_name("data").unwrap();
    let mut file = OpenOptions::new().write(true).open(&disk).unwrap();
    file.seek(SeekFrom::Start(data.first_lba * 512)).unwrap();
    file.write_all(&[0u8; 8192]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let name = "reprovision";
    let (out, probe) = boot(name, &disk, "");
    let json = assert_reached_root(name, &out, &probe);
    assert_eq!(
        json["fresh_flash"], false,
        "boot-b exists: not a fresh flash"
    );
    assert_eq!(
        probe.fresh_flash,
        Some(false),
        "{name}: a marker in the root"
    );
    let repart = &json["repart"];
    assert_eq!(repart["outcome"], "applied", "{repart}");
    assert_eq!(
        repart["actions"],
        serde_json::json!([]),
        "the table is kept"
    );
    assert_eq!(
        repart["formatted"],
        serde_json::json!([{"number": 5, "label": "data", "format": "f2fs", "reason": "empty"}])
    );
    assert_data_mounted(name, &probe);
    assert_eq!(read_table(&disk), table, "{name}: the table changed");
    let f2fs = fsck(&disk, &table, "data", "fsck.f2fs", &["--dry-run"]);
    assert!(!f2fs.contains("[Fail]"), "{f2fs}");
}

#[test]
fn a_disk_too_small_still_boots_unless_repart_is_required() {
    let f = fixture();
    let disk = disk_copy(&f.flashed, "small.img", Some(2 * GIB));
    let hash = sha256(&disk);

    let name = "too-small";
    let (out, probe) = boot(name, &disk, "");
    let json = assert_reached_root(name, &out, &probe);
    let repart = &json["repart"];
    assert_eq!(repart["outcome"], "failed", "{repart}");
    let error = repart["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot plan the partitions of /dev/vda: ")
            && error.contains("too small"),
        "{error}"
    );
    assert!(
        out.console
            .contains("atomix-init: repart failed: cannot plan the partitions of /dev/vda"),
        "{name}: no warning (console: {})",
        log(name)
    );
    // Still a fresh flash (no boot-b), and the disk is left as it was.
    assert_eq!(json["fresh_flash"], true);
    assert_eq!(probe.fresh_flash, Some(true));
    assert_eq!(probe.data, Some(DataProbe::Absent));
    assert_eq!(sha256(&disk), hash, "{name}: the disk changed");

    let name = "too-small-required";
    let (out, probe) = boot(name, &disk, "atomix.repart=required atomix.reboot-delay=1");
    assert_eq!(
        out.ending,
        Ending::Reset,
        "{name}: ended {} (console: {})",
        out.ending,
        log(name)
    );
    assert!(!probe.init_ran(), "{name}: the rootfs ran");
    let c = &out.console;
    assert!(
        c.contains("fatal: stage repart failed: cannot plan the partitions of /dev/vda")
            && c.contains("too small")
            && c.contains("rebooting in 1 s"),
        "{name}: console: {}",
        log(name)
    );
    assert_eq!(sha256(&disk), hash, "{name}: the disk changed");
}
