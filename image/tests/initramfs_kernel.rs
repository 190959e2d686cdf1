//! T1: module closure and initramfs against the real Debian arm64 kernel package in the cache
//! (`$ATOMIX_CACHE/kernel`, default `<workspace>/.cache/kernel`, made by `scripts/setup.sh`).
//! The closure is compared with what kmod computes: `depmod -b` into a temporary symlink tree
//! (the cache is never written), then `modules.dep`, `modules.softdep` and
//! `modprobe --show-depends`.

// A test crate: its helpers, like the #[test] functions, panic on setup failure.
#![allow(clippy::unwrap_used)]

mod initramfs_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use atomix_board::Board;
use atomix_image::cpio;
use atomix_image::initramfs::{self, Compression, InitramfsSpec, RepartSpec};
use atomix_image::modules::{Module, ModuleIndex};
use initramfs_support::*;

fn cache() -> PathBuf {
    let cache = std::env::var_os("ATOMIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"));
    assert!(
        cache.join("kernel/lib/modules").is_dir(),
        "no unpacked kernel package at {}/kernel: run scripts/setup.sh (or set ATOMIX_CACHE)",
        cache.display()
    );
    cache
}

fn kernel() -> PathBuf {
    cache().join("kernel")
}

fn busybox() -> PathBuf {
    let path = cache().join("busybox/bin/busybox");
    assert!(
        path.is_file(),
        "no {}: run scripts/setup.sh",
        path.display()
    );
    path
}

/// kmod's view of the package: `depmod -b` run on a temporary tree of symlinks into the cache.
struct Kmod {
    base: tempfile::TempDir,
    version: String,
    /// `modules.dep`: module path -> all its dependencies (transitive), as paths.
    dep: BTreeMap<String, BTreeSet<String>>,
    /// `modules.softdep`: module name -> (pre, post) names.
    softdep: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl Kmod {
    fn new(index: &ModuleIndex) -> Self {
        let version = index.version().to_owned();
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("lib/modules").join(&version);
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "kernel",
            "modules.builtin",
            "modules.builtin.modinfo",
            "modules.order",
        ] {
            let target = index.dir().join(name);
            if target.exists() {
                std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
            }
        }
        let out = Command::new("depmod")
            .arg("-b")
            .arg(base.path())
            .arg(&version)
            .output()
            .expect("cannot run depmod (kmod; run scripts/setup.sh)");
        assert!(
            out.status.success(),
            "depmod: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let mut dep = BTreeMap::new();
        for line in std::fs::read_to_string(dir.join("modules.dep"))
            .unwrap()
            .lines()
        {
            let (module, deps) = line.split_once(':').unwrap();
            dep.insert(
                module.to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            );
        }
        let mut softdep: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for line in std::fs::read_to_string(dir.join("modules.softdep"))
            .unwrap()
            .lines()
        {
            let Some(rest) = line.strip_prefix("softdep ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let module = words.next().unwrap().to_owned();
            let entry = softdep.entry(module).or_default();
            let mut mode = "";
            for w in words {
                match w {
                    "pre:" | "post:" => mode = w,
                    _ if mode == "pre:" => entry.0.push(w.to_owned()),
                    _ if mode == "post:" => entry.1.push(w.to_owned()),
                    _ => {}
                }
            }
        }
        Self {
            base,
            version,
            dep,
            softdep,
        }
    }

    /// `modprobe --show-depends` of each name: the module files it would insert, relative to
    /// `lib/modules/<version>`.
    fn show_depends(&self, names: &[String]) -> BTreeSet<String> {
        let prefix = format!(
            "insmod {}/lib/modules/{}/",
            self.base.path().display(),
            self.version
        );
        let mut files = BTreeSet::new();
        for name in names {
            let out = Command::new("modprobe")
                .args(["--show-depends", "-d"])
                .arg(self.base.path())
                .args(["-S", &self.version, name])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "modprobe --show-depends {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                if let Some(path) = line.trim().strip_prefix(&prefix) {
                    files.insert(path.to_owned());
                } else {
                    assert!(
                        line.starts_with("builtin "),
                        "unexpected modprobe line: {line}"
                    );
                }
            }
        }
        files
    }
}

fn rel(m: &Module) -> String {
    m.relative_path.to_str().unwrap().to_owned()
}

/// The closure agrees with modprobe, and its order satisfies modules.dep and softdep pre:.
fn check_closure(index: &ModuleIndex, kmod: &Kmod, wanted: &[String]) -> Vec<Module> {
    let closure = index.closure(wanted).unwrap();
    let ours: BTreeSet<String> = closure.iter().map(rel).collect();
    assert_eq!(ours.len(), closure.len(), "duplicates in {closure:?}");
    assert_eq!(
        ours,
        kmod.show_depends(wanted),
        "closure of {wanted:?} differs from modprobe"
    );
    let position: BTreeMap<&str, usize> = closure
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i))
        .collect();
    let path_pos: BTreeMap<String, usize> = closure
        .iter()
        .enumerate()
        .map(|(i, m)| (rel(m), i))
        .collect();
    for (i, m) in closure.iter().enumerate() {
        for dep in &kmod.dep[&rel(m)] {
            assert!(
                path_pos[dep] < i,
                "{} loads before its dependency {dep}",
                m.name
            );
        }
        for pre in kmod
            .softdep
            .get(&m.name)
            .map(|s| &s.0)
            .into_iter()
            .flatten()
        {
            if let Some(atomix_image::modules::Resolved::Modules(found)) = index.resolve(pre) {
                for d in found {
                    assert!(
                        position[d.name.as_str()] < i,
                        "{} before its softdep {pre}",
                        m.name
                    );
                }
            }
        }
    }
    closure
}

fn names(closure: &[Module]) -> Vec<&str> {
    closure.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn every_module_matches_depmod() {
    let started = Instant::now();
    let index = ModuleIndex::open(&kernel(), None).unwrap();
    eprintln!(
        "indexed {} modules of {} in {} ms",
        index.modules().count(),
        index.version(),
        started.elapsed().as_millis()
    );
    let kmod = Kmod::new(&index);
    assert_eq!(index.modules().count(), kmod.dep.len());
    let by_path: BTreeMap<String, &Module> = index.modules().map(|m| (rel(m), m)).collect();
    for (path, deps) in &kmod.dep {
        let m = by_path
            .get(path)
            .unwrap_or_else(|| panic!("depmod has {path}, we do not"));
        // Transitive hard dependencies from `depends=` == depmod's (symbol-based) modules.dep.
        let mut ours = BTreeSet::new();
        let mut todo: Vec<&str> = m.depends.iter().map(String::as_str).collect();
        while let Some(d) = todo.pop() {
            let dm = index
                .module(d)
                .unwrap_or_else(|| panic!("{path}: dependency {d} missing"));
            if ours.insert(rel(dm)) {
                todo.extend(dm.depends.iter().map(String::as_str));
            }
        }
        assert_eq!(&ours, deps, "hard dependencies of {path}");
        let (pre, post) = kmod.softdep.get(&m.name).cloned().unwrap_or_default();
        assert_eq!(
            (&m.softdep_pre, &m.softdep_post),
            (&pre, &post),
            "softdeps of {}",
            m.name
        );
    }
}

#[test]
fn board_and_filesystem_closures_match_modprobe() {
    let index = ModuleIndex::open(&kernel(), None).unwrap();
    let kmod = Kmod::new(&index);

    let qemu = Board::builtin("qemu-virt").unwrap().modules;
    assert_eq!(
        qemu,
        [
            "virtio_pci",
            "virtio_mmio",
            "virtio_blk",
            "squashfs",
            "overlay"
        ]
    );
    let closure = check_closure(&index, &kmod, &qemu);
    assert_eq!(
        names(&closure),
        [
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio_pci",
            "virtio_mmio",
            "virtio_blk",
            "squashfs",
            "overlay"
        ]
    );

    let fs = check_closure(&index, &kmod, &["f2fs".into(), "vfat".into()]);
    let fs_names = names(&fs);
    // f2fs' `softdep pre: crc32` resolves to crc32_generic although lib/crc32 is built in (P14).
    assert!(fs_names.contains(&"crc32_generic"), "{fs_names:?}");
    for want in [
        "zstd_compress",
        "lz4_compress",
        "lz4hc_compress",
        "f2fs",
        "fat",
        "vfat",
    ] {
        assert!(fs_names.contains(&want), "{want} missing from {fs_names:?}");
    }
    eprintln!("f2fs + vfat load order: {}", fs_names.join(" "));

    let rock64 = Board::builtin("rock64").unwrap().modules;
    let closure = check_closure(&index, &kmod, &rock64);
    eprintln!("rock64 load order: {}", names(&closure).join(" "));
}

#[test]
fn qemu_virt_initramfs_is_listed_by_cpio_and_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let board = Board::builtin("qemu-virt").unwrap();
    let version = ModuleIndex::open(&kernel(), None)
        .unwrap()
        .version()
        .to_owned();
    let mut spec = InitramfsSpec {
        init: fake_init(tmp.path(), 1 << 20),
        modules_root: Some(kernel()),
        kernel_version: None,
        modules: board.modules.clone(),
        shell: Some(busybox()),
        compression: Compression::None,
        epoch: 0,
        repart: Some(RepartSpec::from_board(
            board.repart.definitions,
            &board.repart.modules,
        )),
    };
    let mut raw = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        spec.compression = compression;
        let out = tmp.path().join(format!("initrd.{compression}"));
        let started = Instant::now();
        let report = initramfs::build(&spec, &out).unwrap();
        let ms = started.elapsed().as_millis();
        eprintln!(
            "qemu-virt initramfs, 1 MiB init + busybox, {compression}: {} entries, raw {} B, \
             output {} B, {ms} ms, sha256 {}",
            report.entries, report.raw_bytes, report.compressed_bytes, report.sha256
        );
        integrity_check(&out, compression);
        let bytes = decompress_with_tool(&out, compression);
        if compression == Compression::None {
            raw = bytes;
        } else {
            assert_eq!(
                bytes, raw,
                "{compression} does not decompress to the raw archive"
            );
        }
        assert_eq!(report.kernel_version.as_deref(), Some(version.as_str()));
    }

    let entries = cpio::read_archive(&raw).unwrap();
    let lines = cpio_itv(&raw);
    assert_eq!(lines.len(), entries.len());
    let console = itv_line(&lines, "dev/console");
    assert!(console.starts_with("crw-------"), "{console}");
    assert!(itv_line(&lines, "init").starts_with("-rwxr-xr-x"));
    assert!(itv_line(&lines, "bin/busybox").starts_with("-rwxr-xr-x"));
    assert!(itv_line(&lines, "bin/sh").ends_with("bin/sh -> busybox"));
    let list = entries
        .iter()
        .find(|e| e.name == "etc/atomix/modules.load")
        .unwrap();
    let text = String::from_utf8(list.data.clone()).unwrap();
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, path) = line.split_once(' ').unwrap();
        let listed = itv_line(&lines, path.trim_start_matches('/'));
        assert!(listed.starts_with("-rw-r--r--"), "{listed}");
        count += 1;
    }
    assert_eq!(count, 7, "{text}");
    eprintln!("{text}");

    // The board's repart data: every definition file, and the f2fs + vfat closure (crc32_generic
    // through f2fs' softdep) minus what modules.load has, every listed path in the archive.
    for (name, text) in board.repart.definitions {
        let e = entries
            .iter()
            .find(|e| e.name == format!("etc/repart.d/{name}"))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(e.data, text.as_bytes(), "{name}");
        assert!(itv_line(&lines, &e.name).starts_with("-rw-r--r--"));
    }
    let repart = entries
        .iter()
        .find(|e| e.name == "etc/atomix/modules-repart.load")
        .unwrap();
    let repart_text = String::from_utf8(repart.data.clone()).unwrap();
    let repart_names: Vec<&str> = repart_text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let (name, path) = line.split_once(' ').unwrap();
            assert!(itv_line(&lines, path.trim_start_matches('/')).starts_with("-rw-r--r--"));
            name
        })
        .collect();
    for want in [
        "crc32_generic",
        "f2fs",
        "fat",
        "vfat",
        "nls_cp437",
        "nls_iso8859_1",
    ] {
        assert!(
            repart_names.contains(&want),
            "{want} missing: {repart_text}"
        );
    }
    let crc = repart_names
        .iter()
        .position(|n| *n == "crc32_generic")
        .unwrap();
    let f2fs = repart_names.iter().position(|n| *n == "f2fs").unwrap();
    assert!(
        crc < f2fs,
        "softdep pre: crc32 must load first: {repart_text}"
    );
    for m in text.lines().filter(|l| !l.starts_with('#')) {
        let name = m.split_once(' ').unwrap().0;
        assert!(!repart_names.contains(&name), "{name} is in both lists");
    }
    eprintln!("{repart_text}");
}
