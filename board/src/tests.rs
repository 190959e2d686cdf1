//! The built-in profiles, the rules a profile must keep, the slots and partition naming.

use super::*;

#[test]
fn builtin_profiles_parse() {
    for name in Board::names() {
        let b = Board::builtin(name).unwrap();
        assert_eq!(b.name, name);
        assert!(b.modules.iter().any(|m| m == "squashfs"), "{name}");
        assert!(b.modules.iter().any(|m| m == "overlay"), "{name}");
    }
}

#[test]
fn unknown_board_names_the_known_ones() {
    let e = Board::builtin("pi5").unwrap_err().to_string();
    assert!(
        e.contains("pi5") && e.contains("rock64") && e.contains("qemu-virt"),
        "{e}"
    );
}

#[test]
fn unknown_field_is_refused() {
    let text = include_str!("../profiles/qemu-virt.toml").replace("disk =", "disks =");
    let e = Board::parse("t", &text).unwrap_err();
    assert!(matches!(e, BoardError::Parse { .. }), "{e:?}");
}

#[test]
fn module_paths_are_refused() {
    let text =
        include_str!("../profiles/qemu-virt.toml").replace("\"overlay\"", "\"fs/overlay.ko\"");
    let e = Board::parse("t", &text).unwrap_err().to_string();
    assert!(
        e.contains("initramfs.modules") && e.contains("fs/overlay.ko"),
        "{e}"
    );
}

#[test]
fn boards_carry_the_ab_definitions() {
    for name in Board::names() {
        let r = Board::builtin(name).unwrap().repart;
        assert_eq!(r.set, "atomixos-ab");
        assert_eq!(r.first_usable_bytes, 16 << 20);
        let files: Vec<&str> = r.definitions.iter().map(|(f, _)| *f).collect();
        assert_eq!(files.len(), 5);
        assert!(files.windows(2).all(|w| w[0] < w[1]), "sorted: {files:?}");
        assert!(r.definitions.iter().all(|(_, t)| t.contains("[Partition]")));
        assert!(r.modules.iter().any(|m| m == "f2fs"));
    }
}

#[test]
fn unknown_definition_set_is_refused() {
    let text = include_str!("../profiles/qemu-virt.toml")
        .replace("definitions = \"atomixos-ab\"", "definitions = \"nope\"");
    let e = Board::parse("t", &text).unwrap_err().to_string();
    assert!(
        e.contains("repart.definitions") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn a_first_usable_offset_inside_the_gpt_is_refused() {
    let text = include_str!("../profiles/qemu-virt.toml").replace("16777216", "4096");
    let e = Board::parse("t", &text).unwrap_err().to_string();
    assert!(e.contains("first-usable-bytes"), "{e}");
}

#[test]
fn boot_counter_rules_are_checked() {
    let rock64 = include_str!("../profiles/rock64.toml");
    let e = Board::parse("t", &rock64.replace("tries = 3", "tries = 10"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ab.tries"), "{e}");
    // The environment must stay in the raw region and off the loader files.
    let e = Board::parse("t", &rock64.replace("0x3F8000", "0x1000000"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ab.store.offset"), "{e}");
    let e = Board::parse("t", &rock64.replace("0x3F8000", "0x7FC000"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("u-boot.itb"), "{e}");
    let e = Board::parse("t", &rock64.replace("sector = 64", "sector = 8"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("loader.files") && e.contains("idbloader"), "{e}");
    let e = Board::parse("t", &rock64.replace("rootwait", "a;b"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("boot.kernel-args"), "{e}");
}

#[test]
fn the_boards_differ_where_the_hardware_does() {
    let rock64 = Board::builtin("rock64").unwrap();
    let qemu = Board::builtin("qemu-virt").unwrap();
    assert_eq!(rock64.boot.dtb_file_name(), Some("rk3328-rock64.dtb"));
    assert_eq!(qemu.boot.dtb_file_name(), None);
    assert!(matches!(
        rock64.ab.store,
        AbStore::UbootEnv {
            offset: 0x3F8000,
            size: 0x8000
        }
    ));
    assert!(matches!(
        qemu.ab.store,
        AbStore::VfatFile { partition: 1, .. }
    ));
    let loader = rock64.loader.unwrap();
    assert_eq!(loader.files[0].offset(), 32 * 1024);
    assert_eq!(loader.files[1].offset(), 8 << 20);
    assert!(qemu.loader.is_none() && rock64.firmware.is_none());
    assert_eq!(qemu.firmware.unwrap().env_size, 0x40000);
    assert!(rock64.recovery.is_some() && qemu.recovery.is_none());
    assert_eq!("b".parse::<Slot>(), Ok(Slot::B));
    assert!("c".parse::<Slot>().is_err());
    assert_eq!(
        (Slot::B.boot_partition(), Slot::B.rootfs_partition()),
        (3, 4)
    );
}

#[test]
fn partition_device_naming() {
    assert_eq!(partition_device("/dev/vda", 2), "/dev/vda2");
    assert_eq!(partition_device("/dev/mmcblk1", 4), "/dev/mmcblk1p4");
    assert_eq!(partition_device("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
    assert_eq!(
        Board::builtin("rock64").unwrap().partition_device(2),
        "/dev/mmcblk1p2"
    );
}
