//! T1: the rendered dnsmasq and chrony files, for every fixture, pass the real daemons' own
//! checks beside the image's files: `dnsmasq --test` on the image's base configuration and
//! the rendered LAN one, and `chronyd -p` on the image's chrony.conf including the rendered
//! servers. Neither starts a daemon or binds a socket.
//!
//! The programs come from Debian packages that `scripts/setup.sh` provides: `dnsmasq` from
//! `dnsmasq-base` (installed), `chronyd` unpacked from the `chrony` package into
//! `<cache>/chrony` (`$ATOMIX_CACHE`, default `<workspace>/.cache`; not installed, so no
//! daemon starts on this host). Without them these tests fail.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atomix_config::system::{NetworkFiles, chrony, dnsmasq};
use common::{fixture_network_files as render, workspace_file};

const FIXTURES: [&str; 3] = ["minimal", "full", "eth1-lan"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn image_etc(path: &str) -> String {
    workspace_file(&format!("rootfs/tree/etc/{path}"))
}

fn text(files: &NetworkFiles, path: &str) -> String {
    String::from_utf8(files.get(path).unwrap().1.contents.clone()).unwrap()
}

fn run(program: &Path, args: &[&Path]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

/// `dnsmasq`, or a failure that says where it comes from.
fn dnsmasq() -> PathBuf {
    let program = PathBuf::from("dnsmasq");
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs dnsmasq (Debian's dnsmasq-base): run scripts/setup.sh"
    );
    program
}

/// The unpacked `chronyd`, or a failure that says where it comes from.
fn chronyd() -> PathBuf {
    let cache = std::env::var_os("ATOMIX_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| workspace().join(".cache"), |p| workspace().join(p));
    let program = cache.join("chrony/usr/sbin/chronyd");
    assert!(
        program.is_file(),
        "this test needs {} (Debian's chrony, unpacked): run scripts/setup.sh",
        program.display()
    );
    program
}

/// `dnsmasq --test` on the image's base configuration and `lan` (the LAN part).
fn dnsmasq_check(dir: &Path, lan: &str) -> Output {
    let base = dir.join("atomixos-base.conf");
    let conf = dir.join("atomixos-lan.conf");
    std::fs::write(&base, image_etc("dnsmasq.d/atomixos-base.conf")).unwrap();
    std::fs::write(&conf, lan).unwrap();
    let arg = |p: &Path| PathBuf::from(format!("--conf-file={}", p.display()));
    run(&dnsmasq(), &[Path::new("--test"), &arg(&base), &arg(&conf)])
}

#[test]
fn dnsmasq_accepts_the_rendered_lan_configuration() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let out = dnsmasq_check(dir.path(), &text(&render(name), dnsmasq::CONF));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check is real: a broken lease time is refused.
    let bad = text(&render("full"), dnsmasq::CONF).replace(",24h\n", ",24x\n");
    let out = dnsmasq_check(dir.path(), &bad);
    assert!(!out.status.success(), "dnsmasq accepted {bad}");
}

/// `chronyd -p` (print the configuration, then exit) on the image's chrony.conf with its
/// include pointed at `lan`; gives the printed configuration.
fn chrony_check(dir: &Path, lan: &str) -> Output {
    let part = dir.join("chrony-lan.conf");
    std::fs::write(&part, lan).unwrap();
    let image = image_etc("chrony/chrony.conf");
    let include = format!("include /etc/{}", chrony::CONF);
    assert!(image.contains(&include), "the image's chrony.conf: {image}");
    let confdir = dir.join("conf.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let conf = dir.join("chrony.conf");
    let text = image
        .replace(&include, &format!("include {}", part.display()))
        .replace(
            "confdir /etc/chrony/conf.d",
            &format!("confdir {}", confdir.display()),
        );
    std::fs::write(&conf, text).unwrap();
    run(&chronyd(), &[Path::new("-p"), Path::new("-f"), &conf])
}

#[test]
fn chronyd_reads_the_rendered_servers_through_the_images_include() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let lan = text(&render(name), chrony::CONF);
        let out = chrony_check(dir.path(), &lan);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every setting of the rendered part is in the configuration chronyd read.
        for line in lan.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                printed.lines().any(|l| l == line),
                "{name}: {line:?} in {printed}"
            );
        }
    }
    // The check is real: an unknown directive is refused.
    let out = chrony_check(dir.path(), "sever time.example.org iburst\n");
    assert!(!out.status.success());
}
