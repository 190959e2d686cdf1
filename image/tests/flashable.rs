//! T1: the flashable images of the real boards, checked with the real tools (sfdisk, sgdisk,
//! fsck.vfat, mtools, unsquashfs, mkimage, dumpimage, sha256sum). The rock64 image is built with
//! the real loader files and DTB from the cache (`$ATOMIX_CACHE`, default `<workspace>/.cache`,
//! made by `scripts/setup.sh`): without them these tests fail, naming the script.

// Helpers outside #[test] functions panic on purpose: a failed fixture step is a failed test.
#![allow(clippy::unwrap_used)]

mod tools;

use tools::{GOLDEN_SFDISK, noise, run, run_text};

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_board::bootscript::{self, BuildInfo};
use atomix_board::{Board, env};
use atomix_image::disk::{DiskError, RootfsSource};
use atomix_image::flashable::{self, Built, FlashableError, Inputs, Manifest};

const MIB: u64 = 1 << 20;
const EPOCH: u64 = 1_700_000_000;

fn cache() -> PathBuf {
    std::env::var_os("ATOMIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"))
}

/// The Rock64 loader directory in the cache.
fn loader_dir() -> PathBuf {
    let board = Board::builtin("rock64").unwrap();
    let loader = board.loader.unwrap();
    let dir = cache().join(&loader.package).join(&loader.dir);
    for f in &loader.files {
        assert!(
            dir.join(&f.file).is_file(),
            "no {}: run scripts/setup.sh (or set ATOMIX_CACHE)",
            dir.join(&f.file).display()
        );
    }
    dir
}

/// The Rock64 DTB in the cached kernel package.
fn dtb() -> PathBuf {
    let lib = cache().join("kernel/usr/lib");
    let found: Vec<PathBuf> = fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup.sh", lib.display()))
        .map(|e| e.unwrap().path().join("rockchip/rk3328-rock64.dtb"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one rk3328-rock64.dtb under {}/linux-image-*: run scripts/setup.sh",
        lib.display()
    );
    found[0].clone()
}

fn kernel() -> PathBuf {
    let path = cache().join("Image");
    assert!(
        path.is_file(),
        "no {}: run scripts/setup.sh",
        path.display()
    );
    path
}

fn sha256sum(path: &Path) -> String {
    let out = run(Path::new("/"), "sha256sum", &[path.to_str().unwrap()]);
    String::from_utf8(out).unwrap()[..64].to_owned()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn extract(image: &Path, offset: u64, len: u64, to: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    File::open(image)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    fs::write(to, &buf).unwrap();
    buf
}

/// `d/in`: an initramfs and a small rootfs tree; `d/out`: an empty output directory.
fn inputs(d: &Path, board: &str) -> Inputs {
    let input = d.join("in");
    let rootfs = input.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    fs::create_dir_all(d.join("out")).unwrap();
    fs::write(rootfs.join("etc/os-release"), "ID=atomixos\n").unwrap();
    fs::write(rootfs.join("usr/bin/blob"), noise(2 * MIB as usize, 3)).unwrap();
    fs::write(input.join("initramfs.img"), noise(700_001, 2)).unwrap();
    let rock64 = board == "rock64";
    Inputs {
        rootfs: RootfsSource::Dir(rootfs),
        kernel: kernel(),
        initramfs: input.join("initramfs.img"),
        dtb: rock64.then(dtb),
        loader_dir: rock64.then(loader_dir),
        build_id: None,
        version: "1.0".into(),
        epoch: EPOCH,
        seed: None,
        size: None,
    }
}

fn build(board: &str, inputs: &Inputs, out: &Path) -> Result<Built, FlashableError> {
    let board = Board::builtin(board).unwrap();
    let mut steps = Vec::new();
    let result = flashable::build(&board, inputs, out, &mut |s| steps.push(s.to_owned()));
    eprintln!("{}: {steps:#?}", out.display());
    result
}

fn manifest_of(built: &Built) -> Manifest {
    serde_json::from_slice(&fs::read(&built.manifest_path).unwrap()).unwrap()
}

#[test]
fn rock64_image_passes_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut inputs = inputs(d, "rock64");
    inputs.seed = Some("golden".into());
    let out = d.join("out");
    let built = build("rock64", &inputs, &out).unwrap();
    let m = &built.manifest;

    // Named with version and build ID; the manifest beside it; nothing else.
    assert_eq!(m.build_id.len(), 12, "{m:?}");
    let name = format!("atomixos-rock64-1.0-{}.img", m.build_id);
    assert_eq!(built.image, out.join(&name));
    assert_eq!(listing(&out), [name.clone(), format!("{name}.json")]);
    assert_eq!(&manifest_of(&built), m);
    let img = built.image.clone();

    // GPT: DESIGN section 3's boot-a and rootfs-a, nothing else (the same golden dump as the
    // plain disk image with this seed).
    let dump = run_text(&out, "sfdisk", &["-d", &name]).replace(&name, "disk.img");
    assert_eq!(dump, GOLDEN_SFDISK);
    let verify = run_text(&out, "sgdisk", &["-v", &name]);
    assert!(
        verify.contains("No problems found."),
        "sgdisk -v:\n{verify}"
    );

    // The raw region: idbloader.img at 32 KiB, u-boot.itb at 8 MiB, zeros everywhere else
    // between the primary GPT and boot-a (the U-Boot environment at 0x3F8000 included).
    let idb = fs::read(loader_dir().join("idbloader.img")).unwrap();
    let itb = fs::read(loader_dir().join("u-boot.itb")).unwrap();
    let f = File::open(&img).unwrap();
    let at = |offset: u64, len: usize| {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).unwrap();
        buf
    };
    assert!(
        at(32 * 1024, idb.len()) == idb,
        "idbloader.img not at 32 KiB"
    );
    assert!(at(8 * MIB, itb.len()) == itb, "u-boot.itb not at 8 MiB");
    assert!(
        at(0x3F8000, 0x8000).iter().all(|&b| b == 0),
        "the U-Boot environment area is not blank"
    );
    let region = at(17408, (16 * MIB - 17408) as usize);
    let mut expected = vec![0u8; region.len()];
    expected[32768 - 17408..][..idb.len()].copy_from_slice(&idb);
    expected[(8 * MIB - 17408) as usize..][..itb.len()].copy_from_slice(&itb);
    assert!(region == expected, "stray bytes in the raw region");
    assert_eq!(m.loader.len(), 2);
    assert_eq!(
        (m.loader[0].name.as_str(), m.loader[0].offset),
        ("idbloader.img", Some(32 * 1024))
    );
    assert_eq!(
        (m.loader[1].name.as_str(), m.loader[1].offset),
        ("u-boot.itb", Some(8 * MIB))
    );
    assert_eq!(
        m.loader[1].sha256,
        sha256sum(&loader_dir().join("u-boot.itb"))
    );

    // boot-a: fsck clean; the four files in the root, equal to their inputs.
    extract(&img, 16 * MIB, 128 * MIB, &d.join("boot.vfat"));
    run(d, "fsck.vfat", &["-n", "boot.vfat"]);
    let spec = format!("{}@@16M", img.display());
    let mdir = run_text(d, "mdir", &["-i", &spec, "-b", "::"]);
    let mut names: Vec<&str> = mdir.lines().map(|l| l.trim_start_matches("::/")).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["Image", "boot.scr", "initrd", "rk3328-rock64.dtb"],
        "mdir -b:\n{mdir}"
    );
    for (name, src) in [
        ("Image", kernel()),
        ("initrd", inputs.initramfs.clone()),
        ("rk3328-rock64.dtb", dtb()),
    ] {
        let data = run(d, "mtype", &["-i", &spec, &format!("::{name}")]);
        assert!(
            data == fs::read(&src).unwrap(),
            "{name} differs from {src:?}"
        );
        let part = m.boot_files.iter().find(|p| p.name == name).unwrap();
        assert_eq!(part.sha256, sha256sum(&src), "{name}");
    }
    let names: Vec<&str> = m.boot_files.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Image", "initrd", "rk3328-rock64.dtb", "boot.scr"]);

    // boot.scr: what mkimage makes of the rendered script, and it round-trips.
    let scr = run(d, "mtype", &["-i", &spec, "::boot.scr"]);
    fs::write(d.join("boot.scr"), &scr).unwrap();
    let text = check_script(d, "rock64", &m.build_id);
    assert!(text.contains("saveenv") && text.contains("rk3328-rock64.dtb"));
    let scr_part = m.boot_files.iter().find(|p| p.name == "boot.scr").unwrap();
    assert_eq!(scr_part.sha256, sha256sum(&d.join("boot.scr")));

    // rootfs-a: zstd, 1 MiB blocks, the manifest's hash.
    let sqfs = extract(&img, 144 * MIB, m.rootfs.size, &d.join("rootfs.sqfs"));
    assert_eq!(&sqfs[..4], b"hsqs");
    let stat = run_text(d, "unsquashfs", &["-s", "rootfs.sqfs"]);
    assert!(stat.contains("Compression zstd"), "unsquashfs -s:\n{stat}");
    assert!(
        stat.contains("Block size 1048576"),
        "unsquashfs -s:\n{stat}"
    );
    assert_eq!(
        (
            m.rootfs.squashfs.compression.as_str(),
            m.rootfs.squashfs.block_size
        ),
        ("zstd", 1 << 20)
    );
    assert_eq!(m.rootfs.sha256, sha256sum(&d.join("rootfs.sqfs")));

    // The manifest's image hash and size are the file's.
    assert_eq!(m.sha256, sha256sum(&img));
    assert_eq!(m.size, fs::metadata(&img).unwrap().len());
    assert_eq!(m.size, 1169 * MIB);
    assert_eq!(
        (
            m.board.as_str(),
            m.version.as_str(),
            m.epoch,
            m.seed.as_str()
        ),
        ("rock64", "1.0", EPOCH, "golden")
    );
    assert_eq!(m.partitions.len(), 2);
    assert_eq!(m.partitions[1].label, "rootfs-a");
}

#[test]
fn two_builds_are_identical_and_the_build_id_follows_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d, "rock64");
    let (a, b) = (d.join("a"), d.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let first = build("rock64", &inputs, &a).unwrap();
    let second = build("rock64", &inputs, &b).unwrap();
    assert_eq!(first.manifest.sha256, second.manifest.sha256);
    assert_eq!(sha256sum(&first.image), sha256sum(&second.image));
    assert_eq!(
        fs::read(&first.manifest_path).unwrap(),
        fs::read(&second.manifest_path).unwrap(),
        "the manifests differ"
    );
    assert_eq!(listing(&a), listing(&b));
    // The seed defaults to the build ID.
    assert_eq!(first.manifest.seed, first.manifest.build_id);

    // A different initramfs or epoch is a different build.
    let mut other = inputs.clone();
    fs::write(d.join("in/initramfs2.img"), noise(700_001, 9)).unwrap();
    other.initramfs = d.join("in/initramfs2.img");
    let c = build("rock64", &other, &d.join("c.img")).unwrap();
    assert_ne!(c.manifest.build_id, first.manifest.build_id);
    assert_ne!(c.manifest.sha256, first.manifest.sha256);
    let mut later = inputs.clone();
    later.epoch += 1;
    let e = build("rock64", &later, &d.join("e.img")).unwrap();
    assert_ne!(e.manifest.build_id, first.manifest.build_id);
    // An explicit build ID and an explicit image path are used as given.
    let mut named = inputs.clone();
    named.build_id = Some("rc1".into());
    let n = build("rock64", &named, &d.join("n.img")).unwrap();
    assert_eq!(n.manifest.build_id, "rc1");
    assert_eq!(n.manifest.image, "n.img");
    assert_eq!(n.manifest_path, d.join("n.img.json"));
}

#[test]
fn qemu_virt_image_keeps_the_counters_in_abstate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = inputs(d, "qemu-virt");
    let built = build("qemu-virt", &inputs, &d.join("out")).unwrap();
    let m = &built.manifest;
    let img = &built.image;
    assert!(m.loader.is_empty());
    let names: Vec<&str> = m.boot_files.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Image", "initrd", "boot.scr", "abstate.txt"]);

    let spec = format!("{}@@16M", img.display());
    let state = run(d, "mtype", &["-i", &spec, "::abstate.txt"]);
    let board = Board::builtin("qemu-virt").unwrap();
    assert_eq!(state, env::initial_counters(board.ab.tries).encode_text());
    assert_eq!(
        env::Env::decode_text(&state).unwrap().get("BOOT_ORDER"),
        Some("A B")
    );
    extract(img, 16 * MIB, 128 * MIB, &d.join("boot.vfat"));
    run(d, "fsck.vfat", &["-n", "boot.vfat"]);

    fs::write(
        d.join("boot.scr"),
        run(d, "mtype", &["-i", &spec, "::boot.scr"]),
    )
    .unwrap();
    let text = check_script(d, "qemu-virt", &m.build_id);
    assert!(text.contains("abstate.txt") && !text.contains("saveenv"));

    // No loader: the raw region is all zeros.
    let mut region = vec![0u8; (16 * MIB - 17408) as usize];
    File::open(img)
        .unwrap()
        .read_exact_at(&mut region, 17408)
        .unwrap();
    assert!(region.iter().all(|&b| b == 0));
    let stat = run_text(d, "sfdisk", &["-d", img.to_str().unwrap()]);
    assert!(stat.contains("name=\"boot-a\"") && stat.contains("name=\"rootfs-a\""));
}

/// Checks `d/boot.scr` against the tools and returns the script text: `mkimage -l` lists it as
/// a script named after the build; it is byte for byte what `mkimage` makes of the rendered
/// text with SOURCE_DATE_EPOCH; `dumpimage -T script -p 0` gives back the rendered text (after
/// the part list U-Boot's `source` reads first: u-boot-tools 2023.01 extracts a script's whole
/// payload, for mkimage's own scripts too).
fn check_script(d: &Path, board: &str, build_id: &str) -> String {
    let listed = run_text(d, "mkimage", &["-l", "boot.scr"]);
    let name = format!("AtomixOS {build_id}");
    assert!(
        listed.contains("Script") && listed.contains(&name),
        "mkimage -l:\n{listed}"
    );
    let info = BuildInfo::new(build_id, "1.0").unwrap();
    let text = bootscript::render(&Board::builtin(board).unwrap(), &info);
    fs::write(d.join("rendered.txt"), &text).unwrap();
    let made = Command::new("mkimage")
        .args([
            "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", &name,
        ])
        .args(["-d", "rendered.txt", "reference.scr"])
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .current_dir(d)
        .output()
        .unwrap();
    assert!(made.status.success(), "mkimage: {made:?}");
    assert!(
        fs::read(d.join("boot.scr")).unwrap() == fs::read(d.join("reference.scr")).unwrap(),
        "boot.scr differs from mkimage's"
    );
    run(
        d,
        "dumpimage",
        &["-T", "script", "-p", "0", "-o", "dumped", "boot.scr"],
    );
    let dumped = fs::read(d.join("dumped")).unwrap();
    let (parts, script) = dumped.split_at(8);
    assert_eq!(parts[..4], (text.len() as u32).to_be_bytes());
    assert_eq!(parts[4..], [0, 0, 0, 0]);
    assert_eq!(std::str::from_utf8(script).unwrap(), text);
    text
}

/// Builds expecting a failure; checks `d/out` stayed empty (no image, manifest or temporary
/// file) and returns the error.
fn refused(board: &str, inputs: &Inputs, out: &Path) -> FlashableError {
    let err = build(board, inputs, out).unwrap_err();
    assert!(
        listing(out).is_empty(),
        "{err}: files left behind: {:?}",
        listing(out)
    );
    err
}

fn chain(err: &FlashableError) -> String {
    atomix_errchain::one_line(err)
}

#[test]
fn bad_inputs_fail_clearly_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = inputs(d, "rock64");
    let out = d.join("out");

    // A squashfs larger than the 1 GiB slot (sparse: a magic and a hole).
    let huge = d.join("in/huge.sqfs");
    fs::write(&huge, b"hsqs").unwrap();
    File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(1024 * MIB + 1)
        .unwrap();
    let mut i = good.clone();
    i.rootfs = RootfsSource::Squashfs(huge);
    let err = refused("rock64", &i, &out);
    assert!(
        matches!(
            &err,
            FlashableError::Rootfs {
                source: DiskError::RootfsTooLarge { .. },
            }
        ),
        "{err:?}"
    );
    let text = chain(&err);
    assert!(
        text.contains("1073741825") && text.contains("rootfs-a"),
        "{text}"
    );

    // A missing kernel, named.
    let mut i = good.clone();
    i.kernel = d.join("in/no-such-Image");
    let err = refused("rock64", &i, &out);
    assert!(
        matches!(&err, FlashableError::Input { what, .. } if what == "kernel"),
        "{err:?}"
    );
    assert!(chain(&err).contains("no-such-Image"), "{}", chain(&err));

    // Unreadable loader: a missing directory, a directory where a file should be.
    let mut i = good.clone();
    i.loader_dir = Some(d.join("in/no-loader"));
    let err = refused("rock64", &i, &out);
    assert!(
        matches!(&err, FlashableError::Input { what, .. } if what == "loader file idbloader.img"),
        "{err:?}"
    );
    assert!(
        chain(&err).contains("no-loader/idbloader.img"),
        "{}",
        chain(&err)
    );
    let odd = d.join("in/odd-loader");
    fs::create_dir_all(odd.join("u-boot.itb")).unwrap();
    fs::copy(
        loader_dir().join("idbloader.img"),
        odd.join("idbloader.img"),
    )
    .unwrap();
    let mut i = good.clone();
    i.loader_dir = Some(odd);
    let err = refused("rock64", &i, &out);
    assert!(chain(&err).contains("u-boot.itb"), "{}", chain(&err));

    // What the board needs, or does not use.
    let mut i = good.clone();
    i.dtb = None;
    let err = refused("rock64", &i, &out);
    assert!(matches!(err, FlashableError::MissingDtb { .. }), "{err:?}");
    assert!(
        err.to_string().contains("rockchip/rk3328-rock64.dtb"),
        "{err}"
    );
    let mut i = good.clone();
    i.loader_dir = None;
    let err = refused("rock64", &i, &out);
    assert!(err.to_string().contains("u-boot-rockchip"), "{err}");
    let err = refused("qemu-virt", &good, &out);
    assert!(matches!(err, FlashableError::UnusedDtb { .. }), "{err:?}");
    let mut i = good.clone();
    i.version = "1 0".into();
    let err = refused("rock64", &i, &out);
    assert!(chain(&err).contains("\"1 0\""), "{}", chain(&err));

    // A failed build into an existing file leaves it as it was.
    let target = out.join("keep.img");
    fs::write(&target, "previous").unwrap();
    let mut i = good.clone();
    i.kernel = d.join("in/no-such-Image");
    build("rock64", &i, &target).unwrap_err();
    assert_eq!(fs::read(&target).unwrap(), b"previous");
    assert_eq!(listing(&out), ["keep.img"]);
}
