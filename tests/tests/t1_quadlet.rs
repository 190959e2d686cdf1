//! T1: the Quadlet units `atomix-config` renders, read by the real generator. Every fixture of
//! `config/tests/fixtures/` is rendered for `/data/config` and its units go through
//! `quadlet -dryrun` (podman 5's generator, which bookworm's podman lacks) in a chroot of a copy
//! of the root filesystem `scripts/rootfs.sh` built, run by qemu-user: the rootful units as the
//! system generator does, the rootless ones with `-user`. Each unit must become exactly its
//! service, with nothing on stderr but the generator's "Loading source unit file" lines.
//!
//! Needs root (chroot), the qemu-virt root filesystem and the aarch64 binfmt handler that
//! `scripts/rootfs.sh` registers. A missing one fails the test.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_config::Config;
use atomix_config::quadlet::{self, Mode, Quadlets};
use atomix_systests::{Artifacts, require_root, run_tool};

/// The generator inside the root filesystem.
const QUADLET: &str = "/usr/libexec/podman/quadlet";
/// What lets this x86_64 host run it.
const BINFMT: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

/// What one `quadlet -dryrun` said.
#[derive(Debug)]
struct DryRun {
    /// Whether it exited 0.
    success: bool,
    /// The services it generated (its `---name.service---` headers).
    services: BTreeSet<String>,
    /// The generated units, as printed.
    stdout: String,
    /// Its stderr lines other than "Loading source unit file …": warnings and errors.
    complaints: Vec<String>,
}

/// Runs the generator of the chrooted `tree` on the units in `dir` (a path inside the tree).
fn dry_run(tree: &Path, dir: &str, mode: Mode) -> DryRun {
    let mut cmd = Command::new("chroot");
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("QUADLET_UNIT_DIRS", dir)
        .arg(tree)
        .args([QUADLET, "-dryrun", "-no-kmsg-log"]);
    if mode == Mode::Rootless {
        cmd.arg("-user");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let services = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("---")?.strip_suffix("---"))
        .map(str::to_owned)
        .collect();
    let complaints = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("]: Loading source unit file "))
        .map(str::to_owned)
        .collect();
    DryRun {
        success: out.status.success(),
        services,
        stdout,
        complaints,
    }
}

/// Writes the units `quadlets` runs in `mode` into `dir` of `tree`; their services.
fn place(quadlets: &Quadlets, mode: Mode, tree: &Path, dir: &str) -> BTreeSet<String> {
    let host_dir = tree.join(dir.trim_start_matches('/'));
    fs::create_dir_all(&host_dir).unwrap();
    let mut services = BTreeSet::new();
    for unit in quadlets.units.iter().filter(|u| u.mode == mode) {
        let (_, text) = quadlets
            .files
            .iter()
            .find(|(name, _)| *name == unit.filename)
            .unwrap();
        fs::write(host_dir.join(&unit.filename), text).unwrap();
        services.insert(unit.service.clone());
    }
    services
}

/// A copy of the qemu-virt root filesystem, unpacked into `scratch`.
fn unpacked_rootfs(artifacts: &Artifacts, scratch: &Path) -> PathBuf {
    let built = artifacts.real_rootfs("qemu-virt").unwrap();
    let tree = scratch.join("tree");
    run_tool(
        Command::new("unsquashfs")
            .args(["-q", "-n", "-d"])
            .arg(&tree)
            .arg(&built.squashfs),
    );
    assert!(tree.join(QUADLET.trim_start_matches('/')).is_file());
    tree
}

#[test]
fn every_fixtures_units_pass_quadlets_dry_run_in_the_root_filesystem() {
    require_root("chroot into the root filesystem");
    assert!(
        Path::new(BINFMT).exists(),
        "no aarch64 binfmt handler ({BINFMT}): scripts/rootfs.sh registers it"
    );
    let artifacts = Artifacts::from_env();
    let scratch = artifacts.scratch_dir("t1-quadlet-").unwrap();
    let tree = unpacked_rootfs(&artifacts, scratch.path());

    let fixtures_dir = artifacts.root.join("config/tests/fixtures");
    let mut fixtures: Vec<_> = fs::read_dir(&fixtures_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 3, "{fixtures:?}");
    for path in &fixtures {
        let name = path.file_stem().unwrap().to_string_lossy();
        let source = fs::read_to_string(path).unwrap();
        let config =
            Config::parse(&source).unwrap_or_else(|r| panic!("{}", r.render_text(&name, &source)));
        let quadlets = quadlet::render(&config.containers, "/data/config").unwrap();
        for mode in [Mode::Rootful, Mode::Rootless] {
            let dir = format!("/tmp/atomix-quadlet/{name}/{}", mode.as_str());
            let wanted = place(&quadlets, mode, &tree, &dir);
            if wanted.is_empty() {
                continue;
            }
            let run = dry_run(&tree, &dir, mode);
            let what = format!("{name} ({})", mode.as_str());
            assert!(run.success, "{what}: quadlet failed: {run:#?}");
            assert!(run.complaints.is_empty(), "{what}: {:#?}", run.complaints);
            assert_eq!(run.services, wanted, "{what}");
            // Quadlet reads the networking as we mean it.
            let podman_args: &[&str] = match (name.as_ref(), mode) {
                ("full", Mode::Rootful) => &["--network host"],
                ("full", Mode::Rootless) => &[
                    "--network pasta",
                    "--publish 127.0.0.1:10080:80",
                    "--publish 127.0.0.1:10081:81",
                ],
                _ => &[],
            };
            for arg in podman_args {
                assert!(run.stdout.contains(arg), "{what}: no {arg}: {}", run.stdout);
            }
        }
    }

    // The check sees what quadlet refuses.
    let dir = "/tmp/atomix-quadlet/refused";
    let host_dir = tree.join(dir.trim_start_matches('/'));
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(
        host_dir.join("bad.container"),
        "[Container]\nImage=docker.io/library/nginx:1\nBogus=1\n",
    )
    .unwrap();
    let run = dry_run(&tree, dir, Mode::Rootful);
    assert!(!run.success, "{run:#?}");
    assert!(run.services.is_empty(), "{run:#?}");
    assert!(
        run.complaints.iter().any(|l| l.contains("Bogus")),
        "{run:#?}"
    );
}
