//! The system-test harness: what the T3 QEMU tests, the benchmark and the demo share.
//!
//! Owns: finding the build artifacts (kernel, modules, busybox, the aarch64 `/init`) and naming
//! the command that makes a missing one ([`Artifacts`]); building the test rootfs tree with the
//! probe init from `tests/rootfs/` ([`build_test_rootfs`]); parsing the probe's console markers
//! ([`Probe`]); the QEMU configuration the tests boot with ([`qemu_config_for`]); power cycles
//! of the real root filesystem and commands in it ([`appliance`], [`Guest`]); provisioning seeds
//! ([`seed`]); the benchmark behind `atomix-bench boot` ([`mod@bench`]: ours against a busybox
//! initramfs, DESIGN section 8); and how every `atomix-bench` subcommand prints its tables and
//! JSON ([`bench_table`]).
//!
//! Must not: build initramfs or disk images itself (that is `atomix-image`, which
//! [`mod@bench`] calls), run QEMU itself (that is `atomix-qemu`), or decide what a test asserts.

#![forbid(unsafe_code)]

pub mod appliance;
mod artifacts;
pub mod bench;
pub mod bench_table;
mod fixtures;
mod guest;
mod probe;
mod rootfs;
pub mod seed;
#[cfg(test)]
mod shell_words;
mod tools;

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_qemu::QemuConfig;

pub use artifacts::{Artifacts, RealRootfs, target_dir, workspace_root};
pub use fixtures::{FlashedImage, TEST_IMAGE_VERSION};
pub use guest::{Guest, GuestError, Shell};
pub use probe::{DataProbe, MountLine, Probe, STAGE_ORDER};
pub use rootfs::{PROBE_APPLETS, build_test_rootfs, rootfs_overlay};
pub use tools::{atomix_binary, median, require_root, run_checked, run_tool};

/// Kernel arguments every test boot needs: the PL011 console and an immediate reset on panic
/// (which `-no-reboot` turns into QEMU exiting).
pub const KERNEL_CONSOLE_ARGS: &str = "console=ttyAMA0 panic=-1";

/// A failure of the harness itself (not of the system under test).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A build artifact the tests need does not exist.
    #[error("{what} `{}` is missing: make it with `{make}`", path.display())]
    MissingArtifact {
        /// What it is (`kernel Image`, `busybox (aarch64)`, ...).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The command that makes it.
        make: &'static str,
    },
    /// A directory could not be created.
    #[error("cannot create directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be listed.
    #[error("cannot read directory `{}`", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be copied.
    #[error("cannot copy `{}` to `{}`", from.display(), to.display())]
    Copy {
        /// The source.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A symlink could not be read or created.
    #[error("cannot create symlink `{}`", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A board profile does not load.
    #[error("board profile")]
    Board(#[source] Box<atomix_board::BoardError>),
    /// The firmware (U-Boot) could not be read.
    #[error("cannot read the firmware `{}`", path.display())]
    Firmware {
        /// The firmware file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// No bootdelay=0 environment could be made for the firmware.
    #[error("cannot make a bootdelay=0 environment for `{}`", path.display())]
    EnvSeed {
        /// The firmware file.
        path: PathBuf,
        /// Why.
        #[source]
        source: atomix_board::env::EnvError,
    },
    /// A file could not be written.
    #[error("cannot write `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A build manifest is not JSON.
    #[error("`{}` is not a build manifest", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file's mode could not be set.
    #[error("cannot set the mode of `{}`", path.display())]
    SetMode {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Where the console log of the test boot `log_name` goes: `<target>/qemu-logs/<log_name>.log`
/// (kept after the run, so a failing test leaves its console behind).
pub fn qemu_log_path(log_name: &str) -> PathBuf {
    target_dir()
        .join("qemu-logs")
        .join(format!("{log_name}.log"))
}

/// The QEMU configuration of a direct-kernel test boot: `kernel` + `initramfs`, `disk` (if any)
/// as `/dev/vda` on virtio-blk-pci, the kernel command line `append` (include
/// [`KERNEL_CONSOLE_ARGS`]), the deadline `timeout`, and the console log at
/// [`qemu_log_path`]`(log_name)`. Everything else is [`QemuConfig::default`] (`-no-reboot`,
/// 1 GiB, cortex-a53).
pub fn qemu_config_for(
    kernel: &Path,
    initramfs: &Path,
    disk: Option<&Path>,
    append: &str,
    timeout: Duration,
    log_name: &str,
) -> QemuConfig {
    QemuConfig {
        kernel: Some(kernel.to_owned()),
        initramfs: Some(initramfs.to_owned()),
        append: Some(append.to_owned()),
        disks: disk.map(Path::to_owned).into_iter().collect(),
        timeout,
        console_log: Some(qemu_log_path(log_name)),
        ..QemuConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_boot_config() {
        let cfg = qemu_config_for(
            Path::new("/c/Image"),
            Path::new("/o/initrd.img"),
            Some(Path::new("/o/disk.img")),
            "console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a",
            Duration::from_secs(30),
            "t3-boot-a",
        );
        assert_eq!(cfg.kernel.as_deref(), Some(Path::new("/c/Image")));
        assert_eq!(cfg.initramfs.as_deref(), Some(Path::new("/o/initrd.img")));
        assert_eq!(cfg.disks, [PathBuf::from("/o/disk.img")]);
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert!(cfg.no_reboot);
        let log = cfg.console_log.clone().unwrap();
        assert_eq!(log, target_dir().join("qemu-logs/t3-boot-a.log"));
        let line = atomix_qemu::command_line(&cfg).join(" ");
        assert!(line.contains(" -initrd /o/initrd.img "), "{line}");
        assert!(line.contains("virtio-blk-pci,drive=d0"), "{line}");

        let no_disk = qemu_config_for(
            Path::new("/c/Image"),
            Path::new("/o/initrd.img"),
            None,
            KERNEL_CONSOLE_ARGS,
            Duration::from_secs(5),
            "x",
        );
        assert!(no_disk.disks.is_empty());
    }
}
