//! T1: the GPT codec against util-linux `sfdisk` and GPT fdisk `sgdisk` on sparse image files.

// Helpers outside #[test] functions panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;

use atomix_repart::gpt::{self, ATTR_LEGACY_BIOS_BOOTABLE, Partition, types};

const MIB: u64 = 1 << 20;
const IMG: &str = "disk.img";

/// Runs `tool args...` in `dir` and returns its stdout; panics with stderr on failure.
fn run(dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sparse_image(dir: &Path, bytes: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join(IMG))
        .unwrap();
    f.set_len(bytes).unwrap();
    f
}

#[test]
fn sfdisk_dump_of_written_table_is_golden() {
    let dir = tempfile::tempdir().unwrap();
    let disk = 1169 * MIB;
    let mut f = sparse_image(dir.path(), disk);
    gpt::write(&mut f, disk, &common::atomix_table(disk)).unwrap();
    drop(f);

    let dump = run(dir.path(), "sfdisk", &["-d", IMG]);
    let golden = "\
label: gpt
label-id: BA1E4634-E9C0-470E-8E83-3E36A3180342
device: disk.img
unit: sectors
first-lba: 32768
last-lba: 2394078
sector-size: 512

disk.img1 : start=       32768, size=      262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=2F736C35-FBE6-49DF-BDCF-E66B7E10ACDD, name=\"boot-a\", attrs=\"LegacyBIOSBootable\"
disk.img2 : start=      294912, size=     2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=1E6DA520-C427-478A-826D-EA7AE97EB333, name=\"rootfs-a\"
";
    assert_eq!(dump, golden);
}

#[test]
fn sgdisk_verifies_written_table() {
    let dir = tempfile::tempdir().unwrap();
    let disk = 1169 * MIB;
    let mut f = sparse_image(dir.path(), disk);
    gpt::write(&mut f, disk, &common::atomix_table(disk)).unwrap();
    drop(f);

    let out = run(dir.path(), "sgdisk", &["-v", IMG]);
    assert!(out.contains("No problems found."), "sgdisk -v:\n{out}");
    assert!(!out.contains("Problem:"), "sgdisk -v:\n{out}");
}

#[test]
fn reads_table_written_by_sgdisk_like_sfdisk_does() {
    let dir = tempfile::tempdir().unwrap();
    let disk = 256 * MIB;
    drop(sparse_image(dir.path(), disk));
    run(
        dir.path(),
        "sgdisk",
        &[
            "-o",
            "-n",
            "1:32768:+64M",
            "-c",
            "1:boot-a",
            "-t",
            "1:BC13C2FF-59E6-4262-A352-B275FD6F7172",
            "-A",
            "1:set:2",
            "-n",
            "3:0:+32M",
            "-c",
            "3:rootfs-ä",
            "-t",
            "3:B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
            "-n",
            "4:0:0",
            "-c",
            "4:data",
            "-t",
            "4:8300",
            IMG,
        ],
    );
    let mut f = File::open(dir.path().join(IMG)).unwrap();
    let table = gpt::read(&mut f, disk).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&run(dir.path(), "sfdisk", &["-J", IMG])).unwrap();
    let pt = &json["partitiontable"];
    assert_eq!(pt["label"], "gpt");
    assert_eq!(table.disk_guid.to_string(), pt["id"].as_str().unwrap());
    assert_eq!(table.first_usable_lba, pt["firstlba"].as_u64().unwrap());
    assert_eq!(table.last_usable_lba, pt["lastlba"].as_u64().unwrap());

    let expected: Vec<Partition> = pt["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let start = p["start"].as_u64().unwrap();
            Partition {
                number: node.strip_prefix(IMG).unwrap().parse().unwrap(),
                type_guid: p["type"].as_str().unwrap().parse().unwrap(),
                uuid: p["uuid"].as_str().unwrap().parse().unwrap(),
                first_lba: start,
                last_lba: start + p["size"].as_u64().unwrap() - 1,
                attributes: match p["attrs"].as_str() {
                    None => 0,
                    Some("LegacyBIOSBootable") => ATTR_LEGACY_BIOS_BOOTABLE,
                    Some(other) => panic!("unexpected attrs {other}"),
                },
                name: p["name"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(table.partitions, expected);
    assert_eq!(table.partitions[1].number, 3);
    assert_eq!(table.partitions[1].name, "rootfs-ä");
    assert_eq!(table.partitions[2].type_guid, types::LINUX_GENERIC);
}

#[test]
fn rewriting_an_sgdisk_table_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let disk = 64 * MIB;
    drop(sparse_image(dir.path(), disk));
    run(
        dir.path(),
        "sgdisk",
        &["-o", "-n", "2:2048:+8M", "-c", "2:two", IMG],
    );
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(IMG))
        .unwrap();
    let before = gpt::read(&mut f, disk).unwrap();
    gpt::write(&mut f, disk, &before).unwrap();
    assert_eq!(gpt::read(&mut f, disk).unwrap(), before);
    drop(f);
    let out = run(dir.path(), "sgdisk", &["-v", IMG]);
    assert!(out.contains("No problems found."), "sgdisk -v:\n{out}");
}
