//! The parser's tests (and, through `Type=`, the type names').

use super::types::SEXTET_SUFFIXES;
use super::*;
use crate::gpt::types;

fn parse(text: &str) -> Result<Definition, DefinitionError> {
    parse_definition("defs/t.conf", text, Arch::Arm64)
}

fn ok(text: &str) -> Definition {
    parse(&format!("[Partition]\nType=linux-generic\n{text}")).unwrap()
}

/// The error's message, which must name file and line.
fn err(body: &str) -> String {
    parse(body).unwrap_err().to_string()
}

#[test]
fn defaults() {
    let d = ok("");
    assert_eq!(d.name(), "t.conf");
    assert_eq!(d.type_guid(), types::LINUX_GENERIC);
    assert_eq!(d.label(), None);
    assert_eq!(d.uuid(), None);
    assert_eq!(d.priority(), 0);
    assert_eq!(d.weight(), 1000);
    assert_eq!(d.padding_weight(), 0);
    assert_eq!(
        (d.size_min(), d.size_max(), d.padding_min(), d.padding_max()),
        (None, None, None, None)
    );
    assert_eq!(d.format(), None);
    assert!(d.make_directories().is_empty());
}

#[test]
fn every_key() {
    let d = ok(
        "# comment\n; another\n\n  Label = data  \nUUID=0123456789abcdef0123456789ABCDEF\n\
                Priority=-7\nWeight=2000\nPaddingWeight=5\nSizeMinBytes=64M\nSizeMaxBytes=1G\n\
                PaddingMinBytes=1K\nPaddingMaxBytes=10000\nFormat=f2fs\n\
                MakeDirectories=/config /config//quadlet/\nMakeDirectories=/logs/./x\n",
    );
    assert_eq!(d.label(), Some("data"));
    assert_eq!(
        d.uuid(),
        Some(Guid::from_u128(0x01234567_89AB_CDEF_0123_456789ABCDEF))
    );
    assert_eq!(d.priority(), -7);
    assert_eq!((d.weight(), d.padding_weight()), (2000, 5));
    assert_eq!(d.size_min(), Some(64 << 20));
    assert_eq!(d.size_max(), Some(1 << 30));
    assert_eq!(d.padding_min(), Some(4096), "min rounds up");
    assert_eq!(d.padding_max(), Some(8192), "max rounds down");
    assert_eq!(d.format(), Some(Format::F2fs));
    assert_eq!(
        d.make_directories(),
        ["/config", "/config/quadlet", "/logs/x"]
    );
    assert_eq!(ok("Format=vfat").format(), Some(Format::Vfat));
    assert_eq!(ok("Format=off").format(), None);
    assert_eq!(ok("Label=").label(), Some(""), "the empty label is valid");
    assert_eq!(ok("Label=a\nLabel=b").label(), Some("b"), "last one wins");
}

#[test]
fn sizes_as_systemd_parses_them() {
    assert_eq!(ok("SizeMinBytes=4097").size_min(), Some(8192));
    assert_eq!(ok("SizeMaxBytes=8191").size_max(), Some(4096));
}

#[test]
fn type_names() {
    let t = |n| partition_type(n, Arch::Arm64);
    assert_eq!(t("xbootldr"), Some(types::XBOOTLDR));
    assert_eq!(t("esp"), Some(types::ESP));
    assert_eq!(t("root"), Some(types::ROOT_ARM64));
    assert_eq!(t("root-arm64"), Some(types::ROOT_ARM64));
    assert_eq!(t("root-secondary"), t("root-arm"));
    assert_eq!(
        partition_type("root", Arch::X86_64),
        Some(Guid::from_u128(0x4F68BCE3_E8CD_4DB1_96E7_FBCAF984B709))
    );
    assert_eq!(
        t("usr-x86-64-verity-sig"),
        Some(Guid::from_u128(0xE7BB33FB_06CF_4E81_8273_E543B413E2E2))
    );
    assert_eq!(
        t("root-x86"),
        partition_type("root-secondary", Arch::X86_64)
    );
    assert_eq!(t("root-verity"), t("root-arm64-verity"));
    assert_eq!(partition_type("root-secondary", Arch::Riscv64), None);
    assert_eq!(t("root-sparc"), None);
    assert_eq!(t("rootfs"), None);
    assert_eq!(type_name(types::ROOT_ARM64).as_deref(), Some("root-arm64"));
    assert_eq!(
        type_name(types::LINUX_GENERIC).as_deref(),
        Some("linux-generic")
    );
    assert_eq!(type_name(Guid::from_u128(1)), None);
    // every name maps back to itself
    for arch in Arch::ALL {
        for (class, suffix) in SEXTET_SUFFIXES {
            let name = format!("{class}-{arch}{suffix}");
            let g = partition_type(&name, Arch::Arm64).unwrap();
            assert_eq!(type_name(g), Some(name));
        }
    }
    assert!(type_knows_growfs(types::XBOOTLDR));
    assert!(type_knows_growfs(types::ROOT_ARM64));
    assert!(!type_knows_growfs(types::LINUX_GENERIC));
    assert!(!type_knows_growfs(t("root-verity").unwrap()));
    assert!(type_is_verity(t("usr-verity").unwrap()));
    assert!(!type_is_verity(t("usr-verity-sig").unwrap()));
    assert!(!type_is_verity(types::ROOT_ARM64));
    assert_eq!(
        ok("").type_guid(),
        parse("[Partition]\nType=0fc63daf-8483-4772-8e79-3d69d8477de4")
            .unwrap()
            .type_guid()
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[Partition]\nType=esp\nCopyFiles=/a:/b",
            "defs/t.conf:3: CopyFiles= is a systemd-repart setting that atomix-repart does not implement",
        ),
        (
            "[Partition]\n\nEncrypt=tpm2",
            "defs/t.conf:3: Encrypt= is a systemd-repart setting",
        ),
        (
            "[Partition]\nVerity=data",
            "defs/t.conf:2: Verity= is a systemd-repart",
        ),
        (
            "[Partition]\nFrobnicate=1",
            "defs/t.conf:2: unknown key Frobnicate=",
        ),
        (
            "Type=esp",
            "defs/t.conf:1: Type= outside the [Partition] section",
        ),
        (
            "[Partition]\nType=esp\n[Partition]",
            "defs/t.conf:3: a second [Partition] section",
        ),
        ("[Foo]\nType=esp", "defs/t.conf:1: unknown section [Foo]"),
        (
            "[Partition]\nType esp",
            "defs/t.conf:2: expected a [Partition]",
        ),
        (
            "[Partition\nType=esp",
            "defs/t.conf:1: expected a [Partition]",
        ),
        (
            "[Partition]\nType=esp \\",
            "defs/t.conf:2: line continuation",
        ),
        (
            "[Partition]\nType=rootfs",
            "defs/t.conf:2: invalid Type=\"rootfs\"",
        ),
        (
            "[Partition]\nType=00000000-0000-0000-0000-000000000000",
            "defs/t.conf:2: invalid Type=",
        ),
        (
            "[Partition]\nType=esp\nUUID=nope",
            "defs/t.conf:3: invalid UUID=\"nope\"",
        ),
        (
            "[Partition]\nType=esp\nUUID=null",
            "defs/t.conf:3: invalid UUID=",
        ),
        (
            "[Partition]\nType=esp\nPriority=x",
            "defs/t.conf:3: invalid Priority=",
        ),
        (
            "[Partition]\nType=esp\nPriority=2147483648",
            "defs/t.conf:3: invalid Priority=",
        ),
        (
            "[Partition]\nType=esp\nWeight=1000001",
            "defs/t.conf:3: invalid Weight=\"1000001\": weights range",
        ),
        (
            "[Partition]\nType=esp\nPaddingWeight=-1",
            "defs/t.conf:3: invalid PaddingWeight=",
        ),
        (
            "[Partition]\nType=esp\nSizeMinBytes=1MiB",
            "defs/t.conf:3: invalid SizeMinBytes=",
        ),
        (
            "[Partition]\nType=esp\nSizeMaxBytes=",
            "defs/t.conf:3: invalid SizeMaxBytes=",
        ),
        (
            "[Partition]\nType=esp\nPaddingMinBytes=x",
            "defs/t.conf:3: invalid PaddingMinBytes=",
        ),
        (
            "[Partition]\nType=esp\nPaddingMaxBytes=1Q",
            "defs/t.conf:3: invalid PaddingMaxBytes=",
        ),
        (
            "[Partition]\nType=esp\nLabel=0123456789012345678901234567890123456",
            "defs/t.conf:3: invalid Label=",
        ),
        (
            "[Partition]\nType=esp\nLabel=%m",
            "defs/t.conf:3: invalid Label=\"%m\": specifiers",
        ),
        (
            "[Partition]\nType=esp\nFormat=ext4",
            "defs/t.conf:3: Format=ext4 is not implemented",
        ),
        (
            "[Partition]\nType=esp\nFormat=",
            "defs/t.conf:3: invalid Format=",
        ),
        (
            "[Partition]\nType=esp\nFormat=ntfs3!",
            "defs/t.conf:3: invalid Format=",
        ),
        (
            "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=data",
            "defs/t.conf:4: invalid MakeDirectories=\"data\": data is not an absolute path",
        ),
        (
            "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=/a/../b",
            "defs/t.conf:4: invalid MakeDirectories=",
        ),
        (
            "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=\"/a b\"",
            "defs/t.conf:4: invalid MakeDirectories=",
        ),
        (
            "[Partition]\nType=esp\nMakeDirectories=/a",
            "defs/t.conf:3: MakeDirectories= needs Format=",
        ),
        ("[Partition]\nLabel=x", "defs/t.conf: Type= is missing"),
        ("", "defs/t.conf: Type= is missing"),
        (
            "[Partition]\nType=esp\nSizeMinBytes=2G\nSizeMaxBytes=1G\n",
            "defs/t.conf:4: SizeMinBytes= (2147483648 bytes) is larger than SizeMaxBytes= \
             (1073741824 bytes)",
        ),
        (
            "[Partition]\nType=esp\nPaddingMinBytes=8K\nPaddingMaxBytes=4K",
            "defs/t.conf:4: PaddingMinBytes= (8192 bytes) is larger than PaddingMaxBytes=",
        ),
    ];
    for (text, expected) in cases {
        let got = err(text);
        assert!(
            got.starts_with(expected),
            "for {text:?}\n  got      {got}\n  expected {expected}"
        );
    }
}

#[test]
fn min_equal_max_after_rounding_is_fine() {
    let d = ok("SizeMinBytes=128M\nSizeMaxBytes=128M");
    assert_eq!(
        (d.size_min(), d.size_max()),
        (Some(128 << 20), Some(128 << 20))
    );
}

#[test]
fn load_dir_sorts_and_refuses_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let write = |n: &str, t: &str| fs::write(dir.path().join(n), t).unwrap();
    write("20-b.conf", "[Partition]\nType=home\n");
    write("10-a.conf", "[Partition]\nType=srv\n");
    write("README", "not a definition");
    std::os::unix::fs::symlink("/dev/null", dir.path().join("15-masked.conf")).unwrap();
    let defs = load_dir(dir.path(), Arch::Arm64).unwrap();
    let names: Vec<_> = defs.iter().map(Definition::name).collect();
    assert_eq!(names, ["10-a.conf", "20-b.conf"]);

    write("30-bad.conf", "[Partition]\nType=home\nEncrypt=yes\n");
    let e = load_dir(dir.path(), Arch::Arm64).unwrap_err().to_string();
    assert!(e.ends_with("30-bad.conf:3: Encrypt= is a systemd-repart setting that atomix-repart does not implement"), "{e}");
    fs::remove_file(dir.path().join("30-bad.conf")).unwrap();

    fs::create_dir(dir.path().join("20-b.conf.d")).unwrap();
    assert!(matches!(
        load_dir(dir.path(), Arch::Arm64),
        Err(DefinitionError::DropInDirectory { .. })
    ));
    assert!(matches!(
        load_dir(&dir.path().join("missing"), Arch::Arm64),
        Err(DefinitionError::ReadDir { .. })
    ));
}
