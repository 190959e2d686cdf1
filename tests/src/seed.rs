//! Provisioning seeds for the T3 tests and the benchmark: a config.toml whose `probe` container
//! is built on the device from a bundle's files (offline: `FROM scratch` with a static busybox),
//! the bundle itself, a USB stick (a whole-disk vfat with a label), and a seed put on a flashed
//! disk's boot partition.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Artifacts, run_checked};

/// An ed25519 key pair made by `ssh-keygen` at `<dir>/id_ed25519`: the private key's path and
/// the public key's line.
///
/// # Errors
/// ssh-keygen fails, or the public key cannot be read.
pub fn ssh_keypair(dir: &Path, comment: &str) -> anyhow::Result<(PathBuf, String)> {
    let key = dir.join("id_ed25519");
    run_checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key),
    )?;
    let public = fs::read_to_string(key.with_extension("pub"))?
        .trim()
        .to_owned();
    Ok((key, public))
}

/// The boot partition (boot-a) of a flashed disk starts at 16 MiB (DESIGN section 3).
const BOOT_A_OFFSET: u64 = 16 << 20;

/// A valid config: the admin `admin` with `key`, a `viewer`, LAN and host network settings, the
/// WAN's tcp/8081 open, and the required rootful container `probe` (busybox httpd on 8081)
/// built from the bundle's `files/probe`, with `page` in its environment.
pub fn probe_config(admin: &str, key: &str, page: &str) -> String {
    format!(
        r#"version = 1

[users.{admin}]
isAdmin = true
ssh_key = "{key}"
shell = "bash"

[users.viewer]
ssh_key = ""

[network]
dns_servers = ["9.9.9.9"]
dns_search_domains = ["example.lab"]

[network.dnsmasq]
dhcp_start = "172.20.30.50"
dhcp_end = "172.20.30.99"
domain = "lab"
hostname_pattern = "atomix-{{mac}}"
gateway_aliases = ["gw", "atomixos"]

[network.ntp]
servers = ["172.20.30.254"]

[network.firewall.inbound.wan]
tcp = [8081]

[activation]
required = ["probe"]
timeout_seconds = 900
settle_seconds = 5

[containers.build.probe.Build]
ImageTag = "localhost/probe:latest"
File = "${{FILES_DIR}}/probe/Containerfile"
SetWorkingDirectory = "${{FILES_DIR}}/probe"

[containers.container.probe]
privileged = true

[containers.container.probe.Container]
Image = "probe.build"
Exec = "/bin/busybox httpd -f -p 8081 -h /www"
Environment = "PAGE={page}"
"#
    )
}

/// A bundle at `<dir>/<name>` (`tar` with `compress`: `--zstd` or `--gzip`) of `config` and the
/// probe image's build files; the image serves `<name>-ok`.
///
/// # Errors
/// A file cannot be written, or tar fails.
pub fn probe_bundle(
    artifacts: &Artifacts,
    dir: &Path,
    name: &str,
    config: &str,
    compress: &str,
) -> anyhow::Result<PathBuf> {
    let src = dir.join(format!("{name}.d"));
    let probe = src.join("files/probe");
    fs::create_dir_all(probe.join("www"))?;
    fs::write(src.join("config.toml"), config)?;
    fs::copy(&artifacts.busybox_aarch64, probe.join("busybox"))?;
    fs::write(probe.join("www/index.html"), format!("{name}-ok\n"))?;
    fs::write(
        probe.join("Containerfile"),
        // A bundle's files are placed 0600 (spec 2.4): the binary is made executable here.
        "FROM scratch\nCOPY --chmod=0755 busybox /bin/busybox\nCOPY www /www\n",
    )?;
    let out = dir.join(name);
    run_checked(
        Command::new("tar")
            .arg(compress)
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&src)
            .args(["config.toml", "files"]),
    )?;
    Ok(out)
}

/// A USB stick at `image`: a 64 MiB whole-disk vfat labelled `ATOMIX-SEED` holding `file` as
/// `name`.
///
/// # Errors
/// mkfs.vfat or mcopy fails.
pub fn usb_stick(image: &Path, file: &Path, name: &str) -> anyhow::Result<()> {
    let _ = fs::remove_file(image);
    run_checked(
        Command::new("mkfs.vfat")
            .args(["-n", "ATOMIX-SEED", "-C"])
            .arg(image)
            .arg("65536"),
    )?;
    mcopy(image, file, name)
}

/// Puts `file` as `name` on the boot partition (boot-a) of the flashed `disk`.
///
/// # Errors
/// mcopy fails.
pub fn put_boot_seed(disk: &Path, file: &Path, name: &str) -> anyhow::Result<()> {
    let spec = format!("{}@@{BOOT_A_OFFSET}", disk.display());
    mcopy(Path::new(&spec), file, name)
}

/// Copies `file` into the vfat `image` (an mtools image spec) as `name`, replacing it.
fn mcopy(image: &Path, file: &Path, name: &str) -> anyhow::Result<()> {
    run_checked(
        Command::new("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(image)
            .arg(file)
            .arg(format!("::{name}")),
    )?;
    Ok(())
}
