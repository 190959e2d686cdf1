//! T1: `atomix env` on image files. rock64: the binary U-Boot environment at 0x3F8000 (blank →
//! U-Boot's default from the u-boot.itb on the image; written areas checked against
//! `mkenvimage`; a damaged CRC reported and refused); qemu-virt: the abstate.txt state file on
//! boot-a, checked with mtools and `fsck.vfat -n`.

#![allow(clippy::unwrap_used)]

mod fixture;

use std::collections::BTreeMap;
use std::path::Path;

use fixture::{
    BOOT_A, ENV_OFFSET, ENV_SIZE, assert_vfat_clean, atomix, build_image, bytes_at, copy, expect,
    mtype, poke, same_bytes, stdout, text, tool,
};

fn env(board: &str, image: &Path, action: &[&str]) -> std::process::Output {
    let mut args = vec!["env", "--board", board, image.to_str().unwrap()];
    args.extend(action);
    atomix(&args)
}

/// The `name=value` lines of `env print`.
fn variables(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The area at 0x3F8000 equals what `mkenvimage` makes of the same variables: the CRC and the
/// layout are U-Boot's.
fn assert_area_is_mkenvimage_of(image: &Path, vars: &BTreeMap<String, String>, scratch: &Path) {
    let txt = scratch.join("vars.txt");
    let lines: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&txt, lines).unwrap();
    let bin = scratch.join("env.bin");
    let (code, out) = tool(
        "mkenvimage",
        &[
            "-s",
            &ENV_SIZE.to_string(),
            "-p",
            "0",
            "-o",
            bin.to_str().unwrap(),
            txt.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "mkenvimage: {out}");
    assert!(
        std::fs::read(&bin).unwrap() == bytes_at(image, ENV_OFFSET, ENV_SIZE as usize),
        "the environment at 0x3F8000 differs from mkenvimage's for the same variables"
    );
}

#[test]
fn rock64_blank_default_set_delete_mark_good() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "rock64", None);
    assert!(
        bytes_at(&img, ENV_OFFSET, ENV_SIZE as usize)
            .iter()
            .all(|&b| b == 0),
        "a fresh image has no saved environment"
    );

    // Blank: U-Boot's built-in default, found in the image's u-boot.itb.
    let o = env("rock64", &img, &["print"]);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("no saved environment at 0x3f8000")
            && out.contains("U-Boot uses its built-in default")
            && out.contains("u-boot.itb at sector 16384"),
        "{out}"
    );
    let default = variables(&out);
    assert_eq!(
        default.get("bootcmd").map(String::as_str),
        Some("run distro_bootcmd")
    );
    assert!(default.len() > 20, "{default:?}");
    assert!(out.contains("next boot: slot A"), "{out}");
    let before_env = bytes_at(&img, 0, 16 << 20);

    // set: a saved environment is the whole default plus the change.
    let o = env("rock64", &img, &["set", "BOOT_ORDER=B A", "bootdelay=0"]);
    expect(&o, 0);
    assert!(
        stdout(&o).contains("started from U-Boot's built-in default environment"),
        "{}",
        text(&o)
    );
    let o = env("rock64", &img, &["print"]);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("saved U-Boot environment at 0x3f8000"),
        "{out}"
    );
    assert!(out.contains("CRC ok"), "{out}");
    assert!(out.contains("next boot: slot B"), "{out}");
    let saved = variables(&out);
    let mut expected = default.clone();
    expected.insert("BOOT_ORDER".into(), "B A".into());
    expected.insert("bootdelay".into(), "0".into());
    assert_eq!(saved, expected);
    assert_area_is_mkenvimage_of(&img, &saved, dir.path());
    // Only the environment area changed below the first partition.
    let after = bytes_at(&img, 0, 16 << 20);
    let env_range = ENV_OFFSET as usize..(ENV_OFFSET + ENV_SIZE) as usize;
    for (i, (a, b)) in before_env.iter().zip(&after).enumerate() {
        if !env_range.contains(&i) {
            assert_eq!(a, b, "byte {i:#x} outside the environment changed");
        }
    }

    // KEY= deletes; counters then mark-good.
    let o = env(
        "rock64",
        &img,
        &["set", "bootdelay=", "BOOT_A_LEFT=0", "BOOT_B_LEFT=0"],
    );
    expect(&o, 0);
    let o = env("rock64", &img, &["print", "--json"]);
    expect(&o, 0);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["source"]["kind"], "saved");
    assert_eq!(json["location"]["kind"], "uboot-env");
    assert_eq!(json["location"]["offset"], ENV_OFFSET);
    assert!(json["variables"].get("bootdelay").is_none(), "{json}");
    assert_eq!(json["variables"]["bootcmd"], "run distro_bootcmd");
    assert!(json["ab"]["next"].is_null(), "every counter is 0: {json}");
    let o = env("rock64", &img, &["mark-good", "b"]);
    expect(&o, 0);
    let o = env("rock64", &img, &["print"]);
    let vars = variables(&stdout(&o));
    assert_eq!(vars["BOOT_B_LEFT"], "3");
    assert_eq!(vars["BOOT_A_LEFT"], "0");
    assert!(stdout(&o).contains("next boot: slot B"), "{}", stdout(&o));
    assert_area_is_mkenvimage_of(&img, &vars, dir.path());
}

#[test]
fn rock64_crc_mismatch_is_reported_and_refused_without_from_default() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "rock64", None);
    expect(&env("rock64", &img, &["set", "BOOT_ORDER=B A"]), 0);
    let byte = bytes_at(&img, ENV_OFFSET + 10, 1)[0];
    poke(&img, ENV_OFFSET + 10, &[byte ^ 0x20]);
    let damaged = dir.path().join("damaged.img");
    copy(&img, &damaged);

    let o = env("rock64", &img, &["print"]);
    expect(&o, 1);
    let err = text(&o);
    assert!(
        err.contains(&format!(
            "environment CRC mismatch at 0x3f8000 on {}",
            img.display()
        )),
        "{err}"
    );
    assert!(err.contains("--from-default"), "{err}");

    for action in [&["set", "bootdelay=0"][..], &["mark-good", "a"]] {
        let o = env("rock64", &img, action);
        expect(&o, 1);
        assert!(text(&o).contains("CRC mismatch"), "{}", text(&o));
        assert!(same_bytes(&img, &damaged), "{action:?} changed the image");
    }

    // The documented override starts from U-Boot's default.
    let o = env("rock64", &img, &["set", "--from-default", "BOOT_ORDER=A B"]);
    expect(&o, 0);
    let o = env("rock64", &img, &["print"]);
    expect(&o, 0);
    let vars = variables(&stdout(&o));
    assert_eq!(vars["BOOT_ORDER"], "A B");
    assert_eq!(vars["bootcmd"], "run distro_bootcmd");
    assert_area_is_mkenvimage_of(&img, &vars, dir.path());
}

#[test]
fn rock64_without_a_loader_refuses_to_write_a_partial_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "rock64", None);
    // Wipe u-boot.itb (sector 16384 up to 16 MiB) and idbloader.img.
    poke(&img, 16384 * 512, &vec![0u8; 8 << 20]);
    poke(&img, 64 * 512, &vec![0u8; 200 * 1024]);
    let before = dir.path().join("before.img");
    copy(&img, &before);

    let o = env("rock64", &img, &["print"]);
    expect(&o, 0);
    assert!(
        stdout(&o).contains("no saved environment at 0x3f8000"),
        "{}",
        text(&o)
    );
    let o = env("rock64", &img, &["mark-good", "a"]);
    expect(&o, 1);
    let err = text(&o);
    assert!(
        err.contains("no U-Boot default environment found")
            && err.contains("u-boot.itb at sector 16384 (zeros: not written)")
            && err.contains("without bootcmd"),
        "{err}"
    );
    assert!(
        same_bytes(&img, &before),
        "a refused write changed the image"
    );
}

#[test]
fn qemu_virt_state_file_on_boot_a() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "qemu-virt", None);
    let o = env("qemu-virt", &img, &["print"]);
    expect(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("abstate.txt in partition 1 (boot-a)"), "{out}");
    assert!(
        out.contains("A 3 of 3 tries left, B 3 of 3 tries left"),
        "{out}"
    );

    expect(&env("qemu-virt", &img, &["set", "BOOT_B_LEFT=0"]), 0);
    assert!(mtype(&img, BOOT_A, "abstate.txt").contains("BOOT_B_LEFT=0\n"));
    let o = env("qemu-virt", &img, &["mark-good", "b"]);
    expect(&o, 0);
    assert_eq!(
        mtype(&img, BOOT_A, "abstate.txt"),
        "BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n\0",
        "env export -t text with its trailing NUL"
    );
    assert_vfat_clean(&img, BOOT_A, dir.path());

    // No state file: boot.scr's defaults, and mark-good creates it.
    let (code, out) = tool(
        "mdel",
        &[
            "-i",
            &format!("{}@@{BOOT_A}", img.display()),
            "::abstate.txt",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let o = env("qemu-virt", &img, &["print"]);
    expect(&o, 0);
    assert!(
        stdout(&o).contains("no abstate.txt in partition 1 (boot-a)")
            && stdout(&o).contains("boot.scr uses its defaults"),
        "{}",
        stdout(&o)
    );
    expect(&env("qemu-virt", &img, &["mark-good", "a"]), 0);
    assert_eq!(mtype(&img, BOOT_A, "abstate.txt"), "BOOT_A_LEFT=3\n\0");
    assert_vfat_clean(&img, BOOT_A, dir.path());
}

/// RAUC's custom backend protocol on the state file: answers on stdout only, with the
/// semantics of RAUC's U-Boot backend.
#[test]
fn qemu_virt_rauc_backend_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = build_image(dir.path(), "qemu-virt", None);
    let rauc = |args: &[&str]| {
        let mut action = vec!["rauc"];
        action.extend(args);
        env("qemu-virt", &img, &action)
    };
    let answer = |args: &[&str]| {
        let o = rauc(args);
        expect(&o, 0);
        stdout(&o)
    };
    assert_eq!(answer(&["get-primary"]), "A\n");
    assert_eq!(answer(&["get-state", "A"]), "good\n");
    // mark-bad: A leaves the order with no tries; B is primary.
    assert_eq!(answer(&["set-state", "A", "bad"]), "");
    assert_eq!(
        mtype(&img, BOOT_A, "abstate.txt"),
        "BOOT_A_LEFT=0\nBOOT_B_LEFT=3\nBOOT_ORDER=B\n\0"
    );
    assert_eq!(answer(&["get-state", "A"]), "bad\n");
    assert_eq!(answer(&["get-primary"]), "B\n");
    // set-primary A (an install into A): first in the order, all tries.
    assert_eq!(answer(&["set-primary", "A"]), "");
    assert_eq!(
        mtype(&img, BOOT_A, "abstate.txt"),
        "BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n\0"
    );
    // A spent try, then mark-good.
    expect(&env("qemu-virt", &img, &["set", "BOOT_A_LEFT=1"]), 0);
    assert_eq!(answer(&["get-state", "A"]), "good\n");
    assert_eq!(answer(&["set-state", "A", "good"]), "");
    assert!(mtype(&img, BOOT_A, "abstate.txt").starts_with("BOOT_A_LEFT=3\n"));
    assert_vfat_clean(&img, BOOT_A, dir.path());
    // Every counter spent: no primary, a failure RAUC reports.
    expect(
        &env(
            "qemu-virt",
            &img,
            &["set", "BOOT_A_LEFT=0", "BOOT_B_LEFT=0"],
        ),
        0,
    );
    let o = rauc(&["get-primary"]);
    expect(&o, 1);
    assert_eq!(stdout(&o), "");
    assert!(
        text(&o).contains("no slot in BOOT_ORDER has tries left"),
        "{}",
        text(&o)
    );
    // Usage: an unknown state or slot is exit 2.
    expect(&rauc(&["set-state", "A", "pending"]), 2);
    expect(&rauc(&["get-state", "C"]), 2);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("blank.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    for (action, needle) in [
        (&["set", "BOOT_A_LEFT=4"][..], "0 to 3"),
        (&["set", "BOOT_ORDER=A C"], "slots are A and B"),
        (&["set", "novalue"], "KEY=VALUE"),
        (&["set", "a b=1"], "variable name"),
        (&["mark-good", "c"], "expected a slot"),
    ] {
        let o = env("rock64", &img, action);
        expect(&o, 2);
        assert!(text(&o).contains(needle), "{action:?}: {}", text(&o));
    }
    let o = env("rock65", &img, &["print"]);
    expect(&o, 2);
    assert!(text(&o).contains("unknown board"), "{}", text(&o));
    let o = atomix(&["env", "--board", "rock64", "/nonexistent.img", "print"]);
    expect(&o, 2);
    assert!(text(&o).contains("/nonexistent.img"), "{}", text(&o));
    // A file too small for the environment area is a failure naming the area.
    let small = dir.path().join("small.img");
    std::fs::File::create(&small)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let o = env("rock64", &small, &["print"]);
    expect(&o, 1);
    assert!(text(&o).contains("0x3f8000"), "{}", text(&o));
}
