//! T1: `atomix image write-slot` and `atomix inspect` on image files built by `atomix image
//! build`, before and after first-boot repartitioning (`atomix repart`): partition checks with
//! `sfdisk`, the boot vfat with mtools and `fsck.vfat -n`, the squashfs bytes in place, the A/B
//! state file kept, refusals that leave the image byte-identical, and inspect's JSON.

#![allow(clippy::unwrap_used)]

mod fixture;

use std::path::{Path, PathBuf};

use fixture::{
    BOOT_A, BOOT_B, MIB, ROOTFS_B, assert_vfat_clean, atomix, atomix_env, blob, build_image,
    bytes_at, copy, expect, mtype, mtype_bytes, repart, same_bytes, squashfs, stdout, text, tool,
};

/// A boot-files directory: Image, initrd (and boot.scr, for slot A).
fn boot_dir(dir: &Path, name: &str, with_script: bool) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    blob(&d.join("Image"), 50_000, 7);
    blob(&d.join("initrd"), 20_000, 8);
    if with_script {
        blob(&d.join("boot.scr"), 1000, 9);
    }
    d
}

fn write_slot(image: &Path, slot: &str, boot: &Path, rootfs: &Path) -> std::process::Output {
    atomix(&[
        "image",
        "write-slot",
        "--board",
        "qemu-virt",
        "--slot",
        slot,
        "--boot-files",
        boot.to_str().unwrap(),
        "--rootfs",
        rootfs.to_str().unwrap(),
        image.to_str().unwrap(),
    ])
}

fn sfdisk_dump(image: &Path) -> String {
    let (code, out) = tool("sfdisk", &["-d", image.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    out
}

fn inspect_json(image: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect", "--json"];
    args.extend(extra);
    args.push(image.to_str().unwrap());
    let o = atomix(&args);
    expect(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn mdir(image: &Path, offset: u64) -> String {
    let (code, out) = tool(
        "mdir",
        &["-i", &format!("{}@@{offset}", image.display()), "::"],
    );
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn write_slot_b_needs_first_boot_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "qemu-virt", None);
    let boot = boot_dir(dir.path(), "boot", true);
    let rootfs = squashfs(dir.path(), "rootfs-b", "b");
    let before = dir.path().join("before.img");
    copy(&img, &before);

    let o = write_slot(&img, "b", &boot, &rootfs);
    expect(&o, 1);
    let err = text(&o);
    assert!(
        err.contains("no partition 3 (boot-b) for slot B")
            && err.contains("made on first boot")
            && err.contains(&format!(
                "atomix repart --board qemu-virt --dry-run=no {}",
                img.display()
            )),
        "{err}"
    );

    // Every check fails before the first write, on slot A too.
    let not_sqfs = blob(&dir.path().join("not.sqfs"), 4096, 3);
    let o = write_slot(&img, "a", &boot, &not_sqfs);
    expect(&o, 1);
    assert!(text(&o).contains("not a squashfs"), "{}", text(&o));

    let huge = dir.path().join("huge.sqfs");
    std::fs::write(&huge, b"hsqs").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len((1 << 30) + 1)
        .unwrap();
    let o = write_slot(&img, "a", &boot, &huge);
    expect(&o, 1);
    assert!(
        text(&o).contains("larger than partition 2 (rootfs-a"),
        "{}",
        text(&o)
    );

    let no_script = boot_dir(dir.path(), "noscript", false);
    let o = write_slot(&img, "a", &no_script, &rootfs);
    expect(&o, 1);
    assert!(
        text(&o).contains("has no boot.scr") && text(&o).contains("distro boot"),
        "{}",
        text(&o)
    );
    let no_initrd = boot_dir(dir.path(), "noinitrd", true);
    std::fs::remove_file(no_initrd.join("initrd")).unwrap();
    let o = write_slot(&img, "a", &no_initrd, &rootfs);
    expect(&o, 1);
    assert!(text(&o).contains("has no initrd"), "{}", text(&o));

    let nested = boot_dir(dir.path(), "nested", true);
    std::fs::create_dir(nested.join("dtbs")).unwrap();
    let o = write_slot(&img, "a", &nested, &rootfs);
    expect(&o, 1);
    assert!(text(&o).contains("is a directory"), "{}", text(&o));

    let o = write_slot(&img, "a", &boot, &dir.path().join("missing.sqfs"));
    expect(&o, 2);

    assert!(
        same_bytes(&img, &before),
        "a refused write-slot changed the image"
    );
}

#[test]
fn write_slot_after_first_boot_and_the_state_file_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "qemu-virt", Some("3G"));
    repart(&img, "qemu-virt");
    let table = sfdisk_dump(&img);
    let boot = boot_dir(dir.path(), "boot", false);
    let rootfs = squashfs(dir.path(), "rootfs-b", "b");

    let o = write_slot(&img, "b", &boot, &rootfs);
    expect(&o, 0);
    assert!(stdout(&o).contains("slot B written"), "{}", text(&o));
    assert_eq!(
        sfdisk_dump(&img),
        table,
        "write-slot changed the partition table"
    );
    assert!(table.contains("name=\"boot-b\"") && table.contains("name=\"rootfs-b\""));
    assert_vfat_clean(&img, BOOT_B, dir.path());
    let listing = mdir(&img, BOOT_B);
    assert!(listing.contains("BOOT-B"), "volume label: {listing}");
    assert_eq!(
        std::fs::read(boot.join("Image")).unwrap(),
        mtype_bytes(&img, BOOT_B, "Image")
    );
    let sqfs = std::fs::read(&rootfs).unwrap();
    assert_eq!(bytes_at(&img, ROOTFS_B, sqfs.len()), sqfs);

    // Slot A: the counters in boot-a's abstate.txt survive the reformat, and a copy in the
    // boot files does not replace them.
    let o = atomix(&[
        "env",
        "--board",
        "qemu-virt",
        img.to_str().unwrap(),
        "set",
        "BOOT_A_LEFT=1",
        "BOOT_ORDER=B A",
    ]);
    expect(&o, 0);
    let state = mtype(&img, BOOT_A, "abstate.txt");
    assert_eq!(state, "BOOT_A_LEFT=1\nBOOT_B_LEFT=3\nBOOT_ORDER=B A\n\0");
    let boot_a = boot_dir(dir.path(), "boot-a", true);
    std::fs::write(boot_a.join("abstate.txt"), "BOOT_A_LEFT=3\n").unwrap();
    let rootfs_a = squashfs(dir.path(), "rootfs-a2", "a2");
    let o = write_slot(&img, "a", &boot_a, &rootfs_a);
    expect(&o, 0);
    assert!(
        stdout(&o).contains("kept the A/B state file abstate.txt"),
        "{}",
        stdout(&o)
    );
    assert_eq!(mtype(&img, BOOT_A, "abstate.txt"), state);
    assert_eq!(
        mtype_bytes(&img, BOOT_A, "boot.scr"),
        std::fs::read(boot_a.join("boot.scr")).unwrap()
    );
    assert_vfat_clean(&img, BOOT_A, dir.path());
    assert!(mdir(&img, BOOT_A).contains("BOOT-A"));
    let sqfs = std::fs::read(&rootfs_a).unwrap();
    assert_eq!(bytes_at(&img, 144 * MIB, sqfs.len()), sqfs);
    assert_eq!(sfdisk_dump(&img), table);
}

#[test]
fn inspect_fresh_and_after_first_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (img, manifest) = build_image(dir.path(), "qemu-virt", Some("3G"));

    let r = inspect_json(&img, &[]);
    assert_eq!(
        r["board"], "qemu-virt",
        "told from the image: no loader files"
    );
    assert_eq!(r["disk_bytes"], 3u64 << 30);
    assert_eq!(r["first_boot_done"], false);
    assert!(r["data"]["number"].is_null(), "{}", r["data"]);
    assert!(r["data"]["filesystem"].is_null());
    let parts = r["table"]["partitions"].as_array().unwrap();
    let summary: Vec<(u64, &str, &str, u64, u64)> = parts
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                p["label"].as_str().unwrap(),
                p["type_name"].as_str().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "boot-a", "xbootldr", 16 * MIB, 128 * MIB),
            (2, "rootfs-a", "root-arm64", 144 * MIB, 1024 * MIB)
        ]
    );
    assert_eq!(parts[0]["attribute_names"][0], "LegacyBIOSBootable");
    assert_eq!(parts[0]["filesystem"], "vfat");
    assert_eq!(parts[1]["filesystem"], "squashfs");
    // The free space after rootfs-a, up to the backup GPT.
    let free = r["table"]["free"].as_array().unwrap();
    assert_eq!(free.len(), 1, "{free:?}");
    assert_eq!(free[0]["start"], 1168 * MIB);
    assert_eq!(free[0]["size"], (3u64 << 30) - 1168 * MIB - 33 * 512);
    assert_eq!(r["loader"].as_array().unwrap().len(), 0);
    let boot = r["boot"].as_array().unwrap();
    assert_eq!(boot.len(), 1);
    assert_eq!(boot[0]["label"], "boot-a");
    assert_eq!(boot[0]["build_id"], manifest["build_id"]);
    let names: Vec<&str> = boot[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in ["Image", "initrd", "boot.scr", "abstate.txt"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert_eq!(r["ab"]["state"]["source"]["kind"], "saved");
    assert_eq!(r["ab"]["state"]["ab"]["next"], "A");

    repart(&img, "qemu-virt");
    let r = inspect_json(&img, &["--board", "qemu-virt"]);
    assert_eq!(r["first_boot_done"], true);
    assert_eq!(r["data"]["number"], 5);
    assert_eq!(r["data"]["filesystem"], "f2fs");
    let labels: Vec<&str> = r["table"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["boot-a", "rootfs-a", "boot-b", "rootfs-b", "data"]);
    let boot = r["boot"].as_array().unwrap();
    assert_eq!(boot.len(), 2);
    assert_eq!(boot[1]["label"], "boot-b");
    assert_eq!(boot[1]["note"], "empty");
    let o = atomix(&["inspect", img.to_str().unwrap()]);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("first boot: done (boot-b exists)"), "{out}");
    assert!(
        out.contains("/data: partition 5 (data) holds f2fs"),
        "{out}"
    );
    assert!(
        out.contains(&format!("build {}", manifest["build_id"].as_str().unwrap())),
        "{out}"
    );

    // A zeroed data superblock: no file system, formatted on the next boot.
    fixture::poke(&img, 2320 * MIB, &vec![0u8; MIB as usize]);
    let r = inspect_json(&img, &[]);
    assert!(r["data"]["filesystem"].is_null(), "{}", r["data"]);
    assert!(
        r["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("no filesystem (will be formatted on next boot)")
    );
}

#[test]
fn inspect_rock64_loader_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "rock64", None);

    // Told from the loader files; compared with the cache's.
    let r = inspect_json(&img, &[]);
    assert_eq!(r["board"], "rock64");
    let loader = r["loader"].as_array().unwrap();
    let states: Vec<(&str, u64, &str)> = loader
        .iter()
        .map(|l| {
            (
                l["file"].as_str().unwrap(),
                l["sector"].as_u64().unwrap(),
                l["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("idbloader.img", 64, "matches"),
            ("u-boot.itb", 16384, "matches")
        ]
    );
    assert_eq!(r["ab"]["state"]["source"]["kind"], "builtin-default");
    assert_eq!(
        r["ab"]["state"]["source"]["found_in"],
        "u-boot.itb at sector 16384"
    );

    // Without loader files to compare with: present / missing by zeros.
    let empty = tempfile::tempdir().unwrap();
    let o = atomix_env(
        &[
            "inspect",
            "--json",
            "--board",
            "rock64",
            img.to_str().unwrap(),
        ],
        &[("ATOMIX_CACHE", empty.path().to_str().unwrap())],
    );
    expect(&o, 0);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["loader"][0]["state"], "present");
    fixture::poke(&img, 16384 * 512, &vec![0u8; 4096]);
    let o = atomix_env(
        &[
            "inspect",
            "--json",
            "--board",
            "rock64",
            img.to_str().unwrap(),
        ],
        &[("ATOMIX_CACHE", empty.path().to_str().unwrap())],
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["loader"][1]["state"], "missing");
    let r = inspect_json(&img, &["--board", "rock64"]);
    assert_eq!(r["loader"][1]["state"], "differs");

    // A damaged environment is part of the report, not a failure.
    let o = atomix(&[
        "env",
        "--board",
        "rock64",
        img.to_str().unwrap(),
        "set",
        "--from-default",
        "BOOT_ORDER=B A",
    ]);
    expect(&o, 0);
    fixture::poke(&img, 0x3F8000 + 10, b"\xff");
    let r = inspect_json(&img, &["--board", "rock64"]);
    assert!(r["ab"]["state"].is_null());
    assert!(
        r["ab"]["error"]
            .as_str()
            .unwrap()
            .contains("environment CRC mismatch at 0x3f8000"),
        "{}",
        r["ab"]
    );
}
