//! `atomix image build` end to end: the rock64 image from the cache's defaults (DTB, loader
//! files), its name, manifest and progress; bad inputs exit non-zero naming the problem and
//! leave nothing in the output directory. Needs the cache (`scripts/setup.sh`). (The image's
//! contents are checked with the tools in atomix-image's T1 tests.)

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EPOCH: &str = "1700000000";

fn cache() -> PathBuf {
    let cache = std::env::var_os("ATOMIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"));
    assert!(
        cache.join("Image").is_file() && cache.join("u-boot-rockchip").is_dir(),
        "no kernel Image or u-boot-rockchip in {}: run scripts/setup.sh (or set ATOMIX_CACHE)",
        cache.display()
    );
    fs::canonicalize(cache).unwrap()
}

fn atomix(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atomix"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("ATOMIX_CACHE", cache)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}

/// `d/in`: a rootfs tree and an initramfs; `d/out`: empty.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rootfs: String,
    initramfs: String,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let rootfs = root.join("in/rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/os-release"), "ID=atomixos\n").unwrap();
    fs::write(root.join("in/initramfs.img"), vec![7u8; 300_000]).unwrap();
    fs::create_dir_all(root.join("out")).unwrap();
    Fixture {
        rootfs: rootfs.to_string_lossy().into_owned(),
        initramfs: root.join("in/initramfs.img").to_string_lossy().into_owned(),
        out: root.join("out"),
        root,
        _dir: dir,
    }
}

impl Fixture {
    /// `image build --board B --rootfs .. --kernel <cache>/Image --initramfs .. --out out`,
    /// then `extra`.
    fn args<'a>(&'a self, board: &'a str, kernel: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "image",
            "build",
            "--board",
            board,
            "--rootfs",
            &self.rootfs,
            "--kernel",
            kernel,
            "--initramfs",
            &self.initramfs,
            "--out",
            self.out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args
    }
}

#[test]
fn rock64_image_from_the_cache_defaults_is_named_with_a_manifest() {
    let cache = cache();
    let f = fixture();
    let kernel = cache.join("Image").to_string_lossy().into_owned();
    let o = atomix(
        &f.args("rock64", &kernel, &["--version", "2.1", "--json"]),
        &cache,
    );
    assert!(o.status.success(), "{}", text(&o));
    let manifest: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = manifest["build_id"].as_str().unwrap();
    assert_eq!(id.len(), 12);
    let name = format!("atomixos-rock64-2.1-{id}.img");
    assert_eq!(manifest["image"], name.as_str());
    assert_eq!(listing(&f.out), [name.clone(), format!("{name}.json")]);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&fs::read(f.out.join(format!("{name}.json"))).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
    assert_eq!(
        manifest["sha256"].as_str().unwrap(),
        sha256sum(&f.out.join(&name))
    );

    // The defaults came from the cache: the board's DTB and loader files.
    let boot: Vec<&str> = manifest["boot_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(boot, ["Image", "initrd", "rk3328-rock64.dtb", "boot.scr"]);
    let loader: Vec<(&str, u64)> = manifest["loader"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["offset"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        loader,
        [("idbloader.img", 32 * 1024), ("u-boot.itb", 8 << 20)]
    );
    let itb = cache.join("u-boot-rockchip/usr/lib/u-boot/rock64-rk3328/u-boot.itb");
    assert_eq!(manifest["loader"][1]["sha256"], sha256sum(&itb).as_str());
    assert_eq!(manifest["rootfs"]["compression"], "zstd");
    assert_eq!(manifest["epoch"], 1_700_000_000u64);

    // Progress on stderr, the long steps included.
    let stderr = String::from_utf8_lossy(&o.stderr);
    for step in [
        "hashing the inputs",
        "with mksquashfs",
        "copying rootfs",
        "hashing the image",
    ] {
        assert!(stderr.contains(step), "no {step:?} in:\n{stderr}");
    }

    // The same build again into a named file: the same bytes, and the human output names it.
    let again = f.root.join("again.img");
    let mut args = f.args("rock64", &kernel, &["--version", "2.1"]);
    let at = args.iter().position(|a| *a == "--out").unwrap();
    let again_str = again.to_string_lossy().into_owned();
    args[at + 1] = &again_str;
    let o = atomix(&args, &cache);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("image    {again_str}"))
            && stdout.contains(&format!("manifest {again_str}.json"))
            && stdout.contains(&format!("build {id}")),
        "{stdout}"
    );
    assert_eq!(sha256sum(&again), manifest["sha256"].as_str().unwrap());
}

/// Runs a build expected to fail: non-zero exit, `needles` in the output, `out` still empty.
fn fails(f: &Fixture, args: &[&str], cache: &Path, code: i32, needles: &[&str]) {
    let o = atomix(args, cache);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}:\n{all}");
    for n in needles {
        assert!(all.contains(n), "{args:?}: no {n:?} in:\n{all}");
    }
    assert!(
        listing(&f.out).is_empty(),
        "{args:?} left {:?}",
        listing(&f.out)
    );
}

#[test]
fn bad_inputs_fail_naming_the_problem_and_leave_nothing() {
    let cache = cache();
    let f = fixture();
    let kernel = cache.join("Image").to_string_lossy().into_owned();

    fails(
        &f,
        &f.args("pi5", &kernel, &[]),
        &cache,
        1,
        &["unknown board `pi5`", "rock64"],
    );
    let missing = f.root.join("in/no-such-Image");
    fails(
        &f,
        &f.args("rock64", missing.to_str().unwrap(), &[]),
        &cache,
        1,
        &["cannot read the kernel", "no-such-Image"],
    );
    // Too large for the 1 GiB slot: a sparse "squashfs".
    let huge = f.root.join("in/huge.sqfs");
    fs::write(&huge, b"hsqs").unwrap();
    fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len((1 << 30) + 1)
        .unwrap();
    let mut args = f.args("rock64", &kernel, &[]);
    let at = args.iter().position(|a| *a == "--rootfs").unwrap();
    let huge_str = huge.to_string_lossy().into_owned();
    args[at + 1] = &huge_str;
    fails(
        &f,
        &args,
        &cache,
        1,
        &["1073741825 bytes, larger than the 1073741824-byte slot rootfs-a"],
    );
    // An unreadable loader: the directory lacks u-boot.itb (a directory stands in its place).
    let loader = f.root.join("in/loader");
    fs::create_dir_all(loader.join("u-boot.itb")).unwrap();
    fs::write(loader.join("idbloader.img"), b"idb").unwrap();
    fails(
        &f,
        &f.args(
            "rock64",
            &kernel,
            &["--loader-dir", loader.to_str().unwrap()],
        ),
        &cache,
        1,
        &[
            "cannot read the loader file u-boot.itb",
            "in/loader/u-boot.itb",
        ],
    );
    // No cache for the defaults, or a DTB the board does not use.
    let empty = f.root.join("in/empty-cache");
    fs::create_dir_all(&empty).unwrap();
    fails(
        &f,
        &f.args("rock64", &kernel, &[]),
        &empty,
        1,
        &["rk3328-rock64.dtb", "scripts/setup.sh", "--dtb"],
    );
    fails(
        &f,
        &f.args("qemu-virt", &kernel, &["--dtb", &kernel]),
        &cache,
        1,
        &["board qemu-virt uses the firmware's own device tree"],
    );
    // The kernel is required.
    let args: Vec<&str> = f
        .args("rock64", &kernel, &[])
        .into_iter()
        .filter(|a| *a != "--kernel" && *a != kernel.as_str())
        .collect();
    fails(&f, &args, &cache, 2, &["--kernel"]);
}
