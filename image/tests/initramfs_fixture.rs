//! Module closure and initramfs assembly on a generated kernel package: tiny ELF `.ko` files
//! that carry only a `.modinfo` section, plus `modules.builtin`(`.modinfo`). The archives are
//! checked with our reader and with the real `cpio`, `zstd` and `gzip` tools.

// A test crate: its helpers, like the #[test] functions, panic on setup failure.
#![allow(clippy::unwrap_used)]

mod initramfs_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use atomix_image::cpio::{self, Entry};
use atomix_image::initramfs::{
    self, Compression, InitramfsError, InitramfsSpec, MODULES_LOAD, MODULES_REPART_LOAD, RepartSpec,
};
use atomix_image::modules::{ModuleError, ModuleIndex, Resolved};
use initramfs_support::*;
use object::write::Object;
use object::{Architecture, BinaryFormat, Endianness, SectionKind};

const VERSION: &str = "9.9.9-test";

/// An ELF relocatable object with a `.modinfo` section holding `fields` (NUL-separated).
fn ko(fields: &[&str]) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Aarch64, Endianness::Little);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0xc0, 0x03, 0x5f, 0xd6], 4); // ret
    let modinfo = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::Data);
    let mut data = Vec::new();
    for f in fields {
        data.extend_from_slice(f.as_bytes());
        data.push(0);
    }
    obj.append_section_data(modinfo, &data, 1);
    obj.write().unwrap()
}

/// A fake unpacked kernel package under `root`.
fn fixture(root: &Path) -> PathBuf {
    let dir = root.join("lib/modules").join(VERSION);
    let modules: &[(&str, &[&str])] = &[
        (
            "kernel/drivers/a.ko",
            &["name=a", "depends=b,c", "license=GPL"],
        ),
        ("kernel/drivers/b.ko", &["name=b", "depends=c"]),
        ("kernel/drivers/c.ko", &["name=c", "depends="]),
        // No name= field: the name is the stem with `-` as `_`.
        ("kernel/fs/nls/nls_iso8859-1.ko", &["license=GPL"]),
        (
            "kernel/fs/f.ko",
            &[
                "name=f",
                "depends=builtin_dep",
                "softdep=pre: crc32 post: p",
                "alias=fs-f",
            ],
        ),
        ("kernel/fs/p.ko", &["name=p", "depends=f"]),
        (
            "kernel/crypto/crc32_generic.ko",
            &["name=crc32_generic", "alias=crypto-crc32", "alias=crc32"],
        ),
        ("kernel/x/cyc1.ko", &["name=cyc1", "depends=cyc2"]),
        ("kernel/x/cyc2.ko", &["name=cyc2", "depends=cyc1"]),
        ("kernel/x/s1.ko", &["name=s1", "softdep=pre: s2"]),
        ("kernel/x/s2.ko", &["name=s2", "softdep=pre: s1"]),
        ("kernel/x/ghostly.ko", &["name=ghostly", "depends=ghost"]),
        (
            "kernel/x/soft_missing.ko",
            &["name=soft_missing", "softdep=pre: nothing-here"],
        ),
        ("kernel/x/multi1.ko", &["name=multi1", "alias=shared"]),
        ("kernel/x/multi2.ko", &["name=multi2", "alias=shared"]),
    ];
    for (rel, fields) in modules {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, ko(fields)).unwrap();
    }
    std::fs::write(
        dir.join("modules.builtin"),
        "kernel/lib/crc32.ko\nkernel/lib/builtin_dep.ko\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("modules.builtin.modinfo"),
        b"crc32c_builtin.license=GPL\0crc32c_builtin.alias=crypto-crc32c\0",
    )
    .unwrap();
    root.to_path_buf()
}

fn names(modules: &[atomix_image::modules::Module]) -> Vec<&str> {
    modules.iter().map(|m| m.name.as_str()).collect()
}

fn wanted(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn index() -> (tempfile::TempDir, ModuleIndex) {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let index = ModuleIndex::open(tmp.path(), None).unwrap();
    (tmp, index)
}

#[test]
fn index_reads_modinfo_and_paths() {
    let (tmp, index) = index();
    assert_eq!(index.version(), VERSION);
    assert_eq!(index.modules().count(), 15);
    let nls = index.module("nls_iso8859-1").unwrap();
    assert_eq!(nls.name, "nls_iso8859_1");
    assert_eq!(
        nls.relative_path,
        Path::new("kernel/fs/nls/nls_iso8859-1.ko")
    );
    assert!(nls.path.is_absolute());
    assert_eq!(
        nls.path,
        tmp.path()
            .join("lib/modules")
            .join(VERSION)
            .join(&nls.relative_path)
    );
    assert_eq!(nls.size, std::fs::metadata(&nls.path).unwrap().len());
    let f = index.module("f").unwrap();
    assert_eq!(f.depends, ["builtin_dep"]);
    assert_eq!(f.softdep_pre, ["crc32"]);
    assert_eq!(f.softdep_post, ["p"]);
    assert_eq!(f.aliases, ["fs-f"]);
    assert!(index.is_builtin("crc32"));
    assert!(index.is_builtin("crypto-crc32c"));
    assert!(!index.is_builtin("f"));
}

#[test]
fn resolution_follows_kmod_order() {
    let (_tmp, index) = index();
    // A module alias beats a built-in of the same name (f2fs' `softdep pre: crc32`).
    match index.resolve("crc32") {
        Some(Resolved::Modules(m)) => assert_eq!(m[0].name, "crc32_generic"),
        other => panic!("crc32 resolved to {other:?}"),
    }
    assert_eq!(
        index.resolve("builtin_dep"),
        Some(Resolved::Builtin("builtin_dep".into()))
    );
    assert_eq!(
        index.resolve("crypto-crc32c"),
        Some(Resolved::Builtin("crc32c_builtin".into()))
    );
    match index.resolve("shared") {
        Some(Resolved::Modules(m)) => assert_eq!(
            names(&m.into_iter().cloned().collect::<Vec<_>>()),
            ["multi1", "multi2"]
        ),
        other => panic!("shared resolved to {other:?}"),
    }
    assert_eq!(index.resolve("nothing-here"), None);
}

#[test]
fn closure_puts_dependencies_first() {
    let (_tmp, index) = index();
    assert_eq!(
        names(&index.closure(&wanted(&["a"])).unwrap()),
        ["c", "b", "a"]
    );
    // No duplicates, wanted order kept.
    assert_eq!(
        names(&index.closure(&wanted(&["c", "a", "b", "a"])).unwrap()),
        ["c", "b", "a"]
    );
}

#[test]
fn closure_handles_softdeps_aliases_and_builtins() {
    let (_tmp, index) = index();
    // pre: crc32 -> crc32_generic before f; post: p after f; builtin_dep skipped.
    assert_eq!(
        names(&index.closure(&wanted(&["f"])).unwrap()),
        ["crc32_generic", "f", "p"]
    );
    // Wanted by alias, by hyphenated name; built-ins are satisfied with nothing to load.
    assert_eq!(
        names(
            &index
                .closure(&wanted(&[
                    "fs-f",
                    "nls_iso8859-1",
                    "crc32c_builtin",
                    "builtin_dep"
                ]))
                .unwrap()
        ),
        ["crc32_generic", "f", "p", "nls_iso8859_1"]
    );
    // A soft-dependency cycle is broken, not an error.
    assert_eq!(
        names(&index.closure(&wanted(&["s1"])).unwrap()),
        ["s2", "s1"]
    );
    // A soft dependency that resolves to nothing is skipped (modprobe does the same).
    assert_eq!(
        names(&index.closure(&wanted(&["soft_missing"])).unwrap()),
        ["soft_missing"]
    );
    assert!(index.closure(&[]).unwrap().is_empty());
}

#[test]
fn closure_errors_name_the_culprit() {
    let (_tmp, index) = index();
    let e = index.closure(&wanted(&["a", "no_such_mod"])).unwrap_err();
    assert!(
        matches!(&e, ModuleError::NotFound { name, .. } if name == "no_such_mod"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("no_such_mod") && e.to_string().contains(VERSION),
        "{e}"
    );

    let e = index.closure(&wanted(&["ghostly"])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("`ghost`") && text.contains("`ghostly`"),
        "{text}"
    );

    let e = index.closure(&wanted(&["cyc1"])).unwrap_err();
    assert!(
        matches!(&e, ModuleError::DependencyCycle { cycle } if cycle == "cyc1 -> cyc2 -> cyc1"),
        "{e:?}"
    );
}

#[test]
fn version_directory_selection() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    std::fs::create_dir_all(tmp.path().join("lib/modules/1.0.0-other/kernel")).unwrap();
    std::fs::write(
        tmp.path().join("lib/modules/1.0.0-other/modules.builtin"),
        "",
    )
    .unwrap();
    let e = ModuleIndex::open(tmp.path(), None).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("1.0.0-other, 9.9.9-test"), "{text}");
    assert_eq!(
        ModuleIndex::open(tmp.path(), Some(VERSION))
            .unwrap()
            .modules()
            .count(),
        15
    );
    assert_eq!(
        ModuleIndex::open(tmp.path(), Some("1.0.0-other"))
            .unwrap()
            .modules()
            .count(),
        0
    );
    let e = ModuleIndex::open(tmp.path(), Some("2.0")).unwrap_err();
    assert!(
        matches!(&e, ModuleError::VersionNotFound { version, found, .. } if version == "2.0" && found.contains(VERSION)),
        "{e:?}"
    );

    let empty = tempfile::tempdir().unwrap();
    let e = ModuleIndex::open(empty.path(), None).unwrap_err();
    assert!(matches!(e, ModuleError::ModulesDir { .. }), "{e:?}");
}

fn spec(tmp: &Path, compression: Compression) -> InitramfsSpec {
    let root = tmp.join("kpkg");
    if !root.exists() {
        fixture(&root);
    }
    let shell = tmp.join("busybox");
    std::fs::write(&shell, b"\x7fELF fake busybox").unwrap();
    InitramfsSpec {
        init: fake_init(tmp, 300_000),
        modules_root: Some(root),
        kernel_version: None,
        modules: wanted(&["a", "f"]),
        shell: Some(shell),
        compression,
        epoch: 1_700_000_000,
        repart: None,
    }
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("`{name}` missing from the archive"))
}

#[test]
fn build_lays_out_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), Compression::None);
    let out = tmp.path().join("initrd.img");
    let report = initramfs::build(&spec, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(report.raw_bytes, bytes.len() as u64);
    assert_eq!(report.compressed_bytes, bytes.len() as u64);
    assert_eq!(report.modules, ["c", "b", "a", "crc32_generic", "f", "p"]);
    assert_eq!(report.kernel_version.as_deref(), Some(VERSION));

    let entries = cpio::read_archive(&bytes).unwrap();
    assert_eq!(report.entries, entries.len());
    // Sorted, parents before children, unique inodes, deterministic owner and time.
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let mut seen = HashSet::new();
    for e in &entries {
        if let Some((parent, _)) = e.name.rsplit_once('/') {
            assert!(seen.contains(parent), "{} before its parent", e.name);
            assert!(entry(&entries, parent).is_dir());
        }
        seen.insert(e.name.as_str());
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 1_700_000_000), "{}", e.name);
        assert_eq!(e.nlink, if e.is_dir() { 2 } else { 1 }, "{}", e.name);
    }
    let inos: HashSet<u32> = entries.iter().map(|e| e.ino).collect();
    assert_eq!(inos.len(), entries.len());

    let init = entry(&entries, "init");
    assert_eq!(init.mode, 0o100_755);
    assert_eq!(init.data, std::fs::read(&spec.init).unwrap());
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "sysroot",
        "etc",
        "etc/atomix",
        "lib",
        "lib/modules",
        "bin",
    ] {
        assert_eq!(entry(&entries, dir).mode, 0o040_755, "{dir}");
    }
    let console = entry(&entries, "dev/console");
    assert_eq!((console.mode, console.rdev), (0o020_600, (5, 1)));
    let busybox = entry(&entries, "bin/busybox");
    assert_eq!(busybox.mode, 0o100_755);
    for applet in initramfs::BUSYBOX_APPLETS {
        let link = entry(&entries, &format!("bin/{applet}"));
        assert_eq!(link.symlink_target(), Some("busybox"), "{applet}");
    }
    assert!(initramfs::BUSYBOX_APPLETS.contains(&"sh"));

    // modules.load: a comment naming the version, then `<name> <path>` in load order, and
    // every path is in the archive with the package's bytes.
    let list = entry(&entries, MODULES_LOAD.trim_start_matches('/'));
    assert_eq!(list.mode, 0o100_644);
    let text = String::from_utf8(list.data.clone()).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("# kernel {VERSION}"))
    );
    let mut order = Vec::new();
    let index = ModuleIndex::open(spec.modules_root.as_ref().unwrap(), None).unwrap();
    for line in lines {
        let (name, path) = line.split_once(' ').unwrap();
        let module = index.module(name).unwrap();
        assert_eq!(
            path,
            format!("/lib/modules/{VERSION}/{}", module.relative_path.display())
        );
        let e = entry(&entries, path.trim_start_matches('/'));
        assert_eq!(e.mode, 0o100_644);
        assert_eq!(e.data, std::fs::read(&module.path).unwrap());
        order.push(name);
    }
    assert_eq!(order, report.modules);
    assert!(
        !names.iter().any(|n| n.contains("cyc")),
        "unwanted modules included"
    );
}

#[test]
fn real_cpio_lists_and_extracts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), Compression::None);
    let out = tmp.path().join("initrd.cpio");
    initramfs::build(&spec, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let lines = cpio_itv(&bytes);
    assert_eq!(lines.len(), cpio::read_archive(&bytes).unwrap().len());
    let console = itv_line(&lines, "dev/console");
    assert!(console.starts_with("crw-------"), "{console}");
    let fields: Vec<&str> = console.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["5,", "1"], "{console}");
    assert!(itv_line(&lines, "init").starts_with("-rwxr-xr-x"));
    assert!(itv_line(&lines, "dev").starts_with("drwxr-xr-x"));
    let sh = itv_line(&lines, "bin/sh");
    assert!(
        sh.starts_with("lrwxrwxrwx") && sh.ends_with("bin/sh -> busybox"),
        "{sh}"
    );
    for l in &lines {
        assert!(
            l.contains(" root ") && l.contains("2023"),
            "owner/mtime: {l}"
        );
    }

    // Extract everything but the device node (mknod needs privileges) and compare.
    let dest = tmp.path().join("x");
    std::fs::create_dir(&dest).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cpio -idm --quiet --no-absolute-filenames -f dev/console < {}",
            out.display()
        ))
        .current_dir(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(dest.join("init")).unwrap(),
        std::fs::read(&spec.init).unwrap()
    );
    assert_eq!(
        std::fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let load = std::fs::read_to_string(dest.join("etc/atomix/modules.load")).unwrap();
    for line in load.lines().filter(|l| !l.starts_with('#')) {
        let (_, path) = line.split_once(' ').unwrap();
        assert!(dest.join(path.trim_start_matches('/')).is_file(), "{path}");
    }
}

#[test]
fn output_is_reproducible_and_compressed_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = {
        let spec = spec(tmp.path(), Compression::None);
        initramfs::build(&spec, &tmp.path().join("raw")).unwrap();
        std::fs::read(tmp.path().join("raw")).unwrap()
    };
    for compression in [Compression::Zstd, Compression::Gzip] {
        let spec = spec(tmp.path(), compression);
        let one = tmp.path().join(format!("one.{compression}"));
        let two = tmp.path().join(format!("two.{compression}"));
        let r1 = initramfs::build(&spec, &one).unwrap();
        let r2 = initramfs::build(&spec, &two).unwrap();
        assert_eq!(r1, r2);
        assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
        let sha = std::process::Command::new("sha256sum")
            .arg(&one)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&sha.stdout).starts_with(&r1.sha256));
        assert_eq!(r1.compressed_bytes, std::fs::metadata(&one).unwrap().len());
        assert!(
            r1.compressed_bytes < r1.raw_bytes,
            "{compression} did not compress"
        );
        assert_eq!(r1.raw_bytes, raw.len() as u64);
        integrity_check(&one, compression);
        assert_eq!(
            decompress_with_tool(&one, compression),
            raw,
            "{compression}"
        );

        let mut later = spec.clone();
        later.epoch += 1;
        let r3 = initramfs::build(&later, &two).unwrap();
        assert_ne!(r1.sha256, r3.sha256, "the epoch must reach the headers");
    }
}

#[test]
fn failures_name_the_cause_and_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let base = spec(tmp.path(), Compression::Zstd);
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("initrd.img");

    let check = |spec: &InitramfsSpec, needle: &str| -> InitramfsError {
        let e = initramfs::build(spec, &out).unwrap_err();
        let chain = error_chain(&e);
        assert!(chain.contains(needle), "`{needle}` not in: {chain}");
        assert!(
            dir_names(&outdir).is_empty(),
            "left behind: {:?}",
            dir_names(&outdir)
        );
        e
    };

    let mut s = base.clone();
    s.init = tmp.path().join("no-init");
    assert!(matches!(
        check(&s, "no-init"),
        InitramfsError::ReadInit { .. }
    ));

    s.init = tmp.path().to_path_buf();
    assert!(matches!(
        check(&s, "not a regular file"),
        InitramfsError::InitNotFile { .. }
    ));

    s.init = tmp.path().join("script");
    std::fs::write(&s.init, "#!/bin/sh\n").unwrap();
    assert!(matches!(
        check(&s, "no ELF magic"),
        InitramfsError::InitNotExecutable { .. }
    ));

    let mut s = base.clone();
    s.modules.push("missing_mod".into());
    let e = check(
        &s,
        "`missing_mod` is neither a module nor built into kernel 9.9.9-test",
    );
    assert!(matches!(
        e,
        InitramfsError::Modules {
            source: ModuleError::NotFound { .. },
            ..
        }
    ));

    let mut s = base.clone();
    s.modules_root = None;
    assert!(matches!(
        check(&s, "a, f"),
        InitramfsError::NoModulesRoot { .. }
    ));

    let mut s = base.clone();
    s.kernel_version = Some("0.0".into());
    check(&s, "`0.0` not found");

    let mut s = base.clone();
    s.shell = Some(tmp.path().join("no-busybox"));
    assert!(matches!(
        check(&s, "no-busybox"),
        InitramfsError::ReadShell { .. }
    ));

    // An unreadable module file (a dangling symlink in its place) is named.
    let mut s = base.clone();
    s.modules_root = Some(tmp.path().join("kpkg2"));
    fixture(s.modules_root.as_ref().unwrap());
    let ko = s
        .modules_root
        .as_ref()
        .unwrap()
        .join("lib/modules")
        .join(VERSION)
        .join("kernel/drivers/b.ko");
    std::fs::remove_file(&ko).unwrap();
    std::os::unix::fs::symlink("gone.ko", &ko).unwrap();
    let e = check(&s, &format!("cannot read module {}", ko.display()));
    assert!(
        matches!(
            e,
            InitramfsError::Modules {
                source: ModuleError::ReadModule { .. },
                ..
            }
        ),
        "{e:?}"
    );

    // A module file that is not ELF is named too.
    std::fs::remove_file(&ko).unwrap();
    std::fs::write(&ko, b"not an elf").unwrap();
    check(&s, &format!("cannot parse module {} as ELF", ko.display()));

    // A failed build keeps an existing output untouched.
    std::fs::write(&out, b"previous").unwrap();
    let mut s = base.clone();
    s.modules = wanted(&["nope"]);
    assert!(initramfs::build(&s, &out).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert_eq!(dir_names(&outdir), ["initrd.img"]);
    // ... and a good build replaces it.
    initramfs::build(&base, &out).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), b"previous");
    assert_eq!(dir_names(&outdir), ["initrd.img"]);
}

#[test]
fn no_modules_still_has_an_empty_module_list() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = InitramfsSpec {
        compression: Compression::None,
        ..InitramfsSpec::new(fake_init(tmp.path(), 1000))
    };
    let out = tmp.path().join("i");
    let report = initramfs::build(&spec, &out).unwrap();
    assert!(report.modules.is_empty());
    assert_eq!(report.kernel_version, None);
    let entries = cpio::read_archive(&std::fs::read(&out).unwrap()).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dev",
            "dev/console",
            "etc",
            "etc/atomix",
            "etc/atomix/modules.load",
            "init",
            "proc",
            "run",
            "sys",
            "sysroot"
        ]
    );
    let list = entry(&entries, "etc/atomix/modules.load");
    assert!(
        String::from_utf8_lossy(&list.data)
            .lines()
            .all(|l| l.starts_with('#'))
    );
}

const DATA_CONF: &str =
    "[Partition]\nType=linux-generic\nLabel=data\nFormat=f2fs\nMakeDirectories=/logs\n";
const BOOT_CONF: &str =
    "[Partition]\nType=xbootldr\nLabel=boot-b\nFormat=vfat\nSizeMinBytes=128M\n";

#[test]
fn repart_data_goes_to_etc_repart_d_and_modules_repart_load() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = spec(tmp.path(), Compression::None);
    // `a` is already in modules.load (with b and c); f pulls crc32_generic (softdep pre) and p
    // (softdep post).
    spec.modules = wanted(&["a"]);
    spec.repart = Some(RepartSpec {
        definitions: vec![
            ("30-boot-b.conf".into(), BOOT_CONF.into()),
            ("50-data.conf".into(), DATA_CONF.into()),
        ],
        modules: wanted(&["f", "b"]),
    });
    let out = tmp.path().join("initrd.img");
    let report = initramfs::build(&spec, &out).unwrap();
    assert_eq!(report.modules, ["c", "b", "a"]);
    assert_eq!(report.repart_modules, ["crc32_generic", "f", "p"]);
    assert_eq!(
        report.repart_definitions,
        ["30-boot-b.conf", "50-data.conf"]
    );

    let entries = cpio::read_archive(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(entry(&entries, "etc/repart.d").mode, 0o040_755);
    let data = entry(&entries, "etc/repart.d/50-data.conf");
    assert_eq!(
        (data.mode, data.data.as_slice()),
        (0o100_644, DATA_CONF.as_bytes())
    );
    assert_eq!(
        entry(&entries, "etc/repart.d/30-boot-b.conf").data,
        BOOT_CONF.as_bytes()
    );
    let list = entry(&entries, MODULES_REPART_LOAD.trim_start_matches('/'));
    assert_eq!(list.mode, 0o100_644);
    let text = String::from_utf8(list.data.clone()).unwrap();
    assert!(
        text.starts_with(&format!("# kernel {VERSION}: 3 modules")),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            format!("crc32_generic /lib/modules/{VERSION}/kernel/crypto/crc32_generic.ko"),
            format!("f /lib/modules/{VERSION}/kernel/fs/f.ko"),
            format!("p /lib/modules/{VERSION}/kernel/fs/p.ko"),
        ]
    );
    for line in lines {
        let (_, path) = line.split_once(' ').unwrap();
        assert_eq!(
            entry(&entries, path.trim_start_matches('/')).mode,
            0o100_644
        );
    }

    // Without repart data there is neither the directory nor the second list.
    spec.repart = None;
    let report = initramfs::build(&spec, &out).unwrap();
    assert!(report.repart_modules.is_empty() && report.repart_definitions.is_empty());
    let entries = cpio::read_archive(&std::fs::read(&out).unwrap()).unwrap();
    assert!(!entries.iter().any(|e| e.name.starts_with("etc/repart.d")
        || e.name == MODULES_REPART_LOAD.trim_start_matches('/')
        || e.name.ends_with("/f.ko")));
}

#[test]
fn repart_data_is_checked_when_built() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = spec(tmp.path(), Compression::None);
    let out = tmp.path().join("initrd.img");
    for bad in ["../x.conf", "data", ".conf", "sub/a.conf"] {
        spec.repart = Some(RepartSpec {
            definitions: vec![(bad.into(), DATA_CONF.into())],
            modules: Vec::new(),
        });
        let e = initramfs::build(&spec, &out).unwrap_err();
        assert!(
            matches!(&e, InitramfsError::RepartDefinitionName { name } if name == bad),
            "{e:?}"
        );
    }
    spec.repart = Some(RepartSpec {
        definitions: vec![("50-data.conf".into(), "[Partition]\nCopyFiles=/x\n".into())],
        modules: Vec::new(),
    });
    let e = initramfs::build(&spec, &out).unwrap_err();
    let chain = error_chain(&e);
    assert!(
        chain.contains("invalid repart definition 50-data.conf"),
        "{chain}"
    );
    assert!(chain.contains("CopyFiles"), "{chain}");
    assert!(!out.exists());

    // Repart modules need the kernel package too.
    spec.modules_root = None;
    spec.modules.clear();
    spec.repart = Some(RepartSpec {
        definitions: Vec::new(),
        modules: wanted(&["f"]),
    });
    let e = initramfs::build(&spec, &out).unwrap_err();
    assert!(matches!(e, InitramfsError::NoModulesRoot { .. }), "{e:?}");
    // Definitions without modules and without a kernel package are fine.
    spec.repart = Some(RepartSpec {
        definitions: vec![("50-data.conf".into(), DATA_CONF.into())],
        modules: Vec::new(),
    });
    let report = initramfs::build(&spec, &out).unwrap();
    assert_eq!(report.repart_definitions, ["50-data.conf"]);
    let entries = cpio::read_archive(&std::fs::read(&out).unwrap()).unwrap();
    let list = entry(&entries, MODULES_REPART_LOAD.trim_start_matches('/'));
    assert!(
        String::from_utf8_lossy(&list.data)
            .lines()
            .all(|l| l.starts_with('#'))
    );
}
