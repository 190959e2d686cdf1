//! `atomix qemu`: boot in QEMU aarch64 and say how the run ended.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use atomix_qemu::{Ending, QemuConfig, Transport};
use clap::Args;

use crate::print_json;

#[derive(Debug, Args)]
pub struct QemuArgs {
    /// Kernel Image (direct boot).
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<PathBuf>,
    /// Initramfs for the direct boot.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initramfs: Option<PathBuf>,
    /// Firmware for -bios (e.g. U-Boot's qemu_arm64 u-boot.bin) instead of a direct boot.
    #[arg(long, value_name = "FILE")]
    bios: Option<PathBuf>,
    /// Raw disk image, attached as virtio-blk (/dev/vda).
    #[arg(long, value_name = "FILE")]
    disk: PathBuf,
    /// Kernel command line for the direct boot.
    #[arg(long, value_name = "ARGS", requires = "kernel")]
    append: Option<String>,
    /// Deadline in seconds; QEMU is killed when it passes.
    #[arg(long, value_name = "S", default_value_t = 120)]
    timeout: u64,
    /// Attach the disk as virtio-blk-device (MMIO) instead of virtio-blk-pci.
    #[arg(long)]
    mmio: bool,
    /// Let a guest reboot restart the machine (default: QEMU exits, as tests want).
    #[arg(long)]
    allow_reboot: bool,
    /// Also write the console to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Print the QEMU command line and exit.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON summary (ending, wall time) on stdout after the run; the console goes to stderr.
    #[arg(long)]
    json: bool,
}

/// Exit codes of `atomix qemu`, by how the guest ended.
pub fn exit_code(ending: &Ending) -> u8 {
    match ending {
        Ending::PowerOff => 0,
        Ending::Reset => 3,
        Ending::Panic { .. } => 4,
        Ending::Timeout => 5,
        Ending::Matched(_) => 0,
        Ending::Exited { .. } => 6,
    }
}

pub fn run(args: QemuArgs) -> Result<u8> {
    let cfg = QemuConfig {
        kernel: args.kernel,
        initramfs: args.initramfs,
        append: args.append,
        bios: args.bios,
        disks: vec![args.disk],
        transport: if args.mmio {
            Transport::Mmio
        } else {
            Transport::Pci
        },
        timeout: Duration::from_secs(args.timeout),
        no_reboot: !args.allow_reboot,
        console_log: args.log,
        ..QemuConfig::default()
    };
    if args.dry_run {
        println!("{}", atomix_qemu::command_line_string(&cfg));
        return Ok(0);
    }
    let json = args.json;
    let outcome = atomix_qemu::run(&cfg, &mut |line| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    })?;
    let code = exit_code(&outcome.ending);
    if matches!(outcome.ending, Ending::Exited { .. }) && !outcome.stderr.trim().is_empty() {
        // QEMU gave up by itself (a locked or missing disk, a bad option): show why.
        eprintln!("atomix qemu: qemu said: {}", outcome.stderr.trim());
    }
    if json {
        print_json(&serde_json::json!({
            "ending": outcome.ending.to_string(),
            "wall_s": outcome.wall.as_secs_f64(),
            "exit_code": code,
        }))?;
    } else {
        eprintln!(
            "atomix qemu: {} after {:.2} s (exit {code})",
            outcome.ending,
            outcome.wall.as_secs_f64()
        );
    }
    Ok(code)
}
