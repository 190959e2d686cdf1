//! `atomix`: the board bring-up engineer's command.
//!
//! Owns: argument parsing, defaults (the set-up cache, the workspace's `/init` build), output
//! formatting (human and `--json`) and exit codes.
//!
//! Must not: hold logic the libraries should own — every subcommand is a thin call into
//! `atomix-image`, `atomix-qemu`, `atomix-flash` or `atomix-board`; `atomix device` is the
//! operator's HTTP client of a device (the protocol is `atomix-api`'s, validation
//! `atomix-config`'s).
//!
//! Exit codes: 0 success; 1 the operation failed (the error chain is printed); 2 bad usage;
//! `atomix qemu` also: 3 the guest reset (rebooted), 4 kernel panic, 5 timeout, 6 QEMU exited
//! with no power-off/reset/panic on the console.
//!
//! `atomix repart`: 0 done or nothing to do; 1 apply failed — the last line says whether the
//! partition table is unchanged (only free space may have been written; a re-run starts over)
//! or the disk is partly updated and consistent (a re-run completes it); 2 bad usage or a
//! target that does not exist; 3 refused (disk too small, partitions in the way, the
//! `--empty=` rule), with the plan's reason.
//!
//! `atomix env`: 0 done; 1 reading, decoding (a CRC mismatch) or writing failed; 2 bad usage
//! (unknown board, missing target, a malformed KEY=VALUE). `atomix inspect`: 0 inspected;
//! 1 the target or a loader file cannot be read; 2 bad usage or the board cannot be told from
//! the target. `atomix image write-slot`: 0 written; 1 a check or a write failed; 2 bad usage.
//!
//! `atomix device`: 0 the job succeeded (export written, `--no-wait` accepted); 1 the job failed,
//! the config was refused offline (nothing sent) or a request failed; 2 bad usage; 3 the device
//! cannot be reached; 4 authentication refused (401); 5 busy with another job (409); 6 the job
//! failed and was rolled back.
//!
//! `atomix flash`: 0 flashed and verified; 1 failed (I/O) — the message says what state the
//! target is in; 2 bad usage or a missing image/target; 3 refused by a safety check or declined
//! at the prompt (nothing written); 4 verification mismatch; 130 interrupted (SIGINT/SIGTERM),
//! with the target's state.

#![forbid(unsafe_code)]

mod device;
mod env;
mod flash;
mod image;
mod initramfs;
mod inspect;
mod paths;
mod qemu;
mod repart;
mod rootfs;
mod slot;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

// `--size 16G`: the workspace's one size parser (`4096`, `512M`, `16g`; K/M/G/T are powers of
// 1024), used by the subcommands through `crate::parse_size`.
use atomix_repart::size::parse_size_arg as parse_size;

#[derive(Debug, Parser)]
#[command(name = "atomix", version, about = "Build, boot and inspect AtomixOS images; provision devices", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initramfs: build the cpio archive holding /init and its kernel modules.
    #[command(subcommand)]
    Initramfs(initramfs::InitramfsCmd),
    /// Disk images: build one from a kernel, an initramfs and a root filesystem.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// Boot in QEMU aarch64 (TCG), stream the console, exit by how the guest ended
    /// (0 power-off, 3 reset, 4 panic, 5 timeout, 6 QEMU exited on its own).
    Qemu(qemu::QemuArgs),
    /// Repartition an image file or block device with repart.d definitions (dry run by default).
    #[command(long_about = REPART_ABOUT)]
    Repart(repart::RepartArgs),
    /// Write an image to a block device safely: refuses mounted, root, too small and non-block
    /// targets, asks unless --yes, shows progress, fsyncs and verifies by reading back
    /// (0 verified, 1 failed, 2 usage, 3 refused/declined, 4 mismatch, 130 interrupted).
    #[command(long_about = flash::ABOUT)]
    Flash(flash::FlashArgs),
    /// The A/B boot counters on an image or device: print, set KEY=VALUE, mark-good a|b
    /// (0 done, 1 failed (CRC mismatch, I/O), 2 usage).
    #[command(long_about = env::ABOUT)]
    Env(env::EnvArgs),
    /// What is on an image or device: layout, loader, boot files and build IDs, A/B counters,
    /// first boot, /data (0 inspected, 1 unreadable, 2 usage).
    #[command(long_about = inspect::ABOUT)]
    Inspect(inspect::InspectArgs),
    /// Root filesystem build steps: the board's files, and packing a tree into a squashfs
    /// (scripts/rootfs.sh runs both around mkosi).
    #[command(subcommand)]
    Rootfs(rootfs::RootfsCmd),
    /// The operator's client of a device's provisioning API: validate offline, push a config
    /// and follow its job, export, show a job (0 succeeded, 1 failed/refused, 2 usage,
    /// 3 unreachable, 4 authentication refused, 5 busy, 6 rolled back).
    #[command(subcommand, long_about = device::ABOUT)]
    Device(device::DeviceCmd),
    /// List the board profiles.
    Boards,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Initramfs(cmd) => initramfs::run(cmd).map(|()| 0),
        Command::Image(cmd) => image::run(cmd).map(|()| 0),
        Command::Qemu(args) => qemu::run(args),
        Command::Repart(args) => repart::run(args),
        Command::Flash(args) => flash::run(args),
        Command::Env(args) => env::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Rootfs(cmd) => rootfs::run(cmd).map(|()| 0),
        Command::Device(cmd) => Ok(device::run(cmd)),
        Command::Boards => boards().map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            atomix_errchain::eprint_report("atomix", error.as_ref());
            ExitCode::from(1)
        }
    }
}

const REPART_ABOUT: &str = "\
Plans the repart.d definitions (--board or --definitions) against TARGET, an image file or a \
block device, prints the plan, and with --dry-run=no carries it out: new file systems are \
written into free space first, the GPT last (backup at the disk's end, then primary), then the \
kernel is told with BLKPG. Nothing below the first partition is written; no discard. A second \
run is \"nothing to do\" and writes no byte. SOURCE_DATE_EPOCH makes file systems reproducible.

Exit codes:
  0  done, or nothing to do
  1  apply failed; the last line says whether the partition table is unchanged (a re-run starts
     over) or the disk is partly updated and consistent (a re-run completes it)
  2  bad usage, or TARGET does not exist
  3  refused: disk too small, partitions in the way, or the --empty rule (the reason is printed)";

fn boards() -> Result<()> {
    for name in atomix_board::Board::names() {
        let board = atomix_board::Board::builtin(name)?;
        println!("{:<10} {}", board.name, board.description);
    }
    Ok(())
}

/// SOURCE_DATE_EPOCH from the environment (0 when unset), for reproducible output.
fn epoch_from_env() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => value.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={value:?}: expected seconds since 1970 as an integer")
        }),
        _ => Ok(0),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A command-line path that must exist (a missing one is a usage error, exit 2).
fn existing_path(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(text);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{text}: no such file, directory or device"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn qemu_exit_codes_are_distinct() {
        use atomix_qemu::Ending;
        let endings = [
            Ending::PowerOff,
            Ending::Reset,
            Ending::Panic {
                message: String::new(),
            },
            Ending::Timeout,
            Ending::Exited { code: Some(1) },
        ];
        let mut codes: Vec<u8> = endings.iter().map(qemu::exit_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), endings.len());
    }
}
