//! `atomix qemu`: boot in QEMU aarch64 and say how the run ended.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use atomix_board::Board;
use atomix_qemu::{Ending, Expect, FlashBankError, Forward, Nic, QemuConfig, Transport};
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
    /// Boot through the board's firmware (qemu-virt: Debian's u-boot-qemu) and the boot.scr on
    /// the disk, as a board would, instead of a direct kernel boot.
    #[arg(long, conflicts_with_all = ["kernel", "bios"])]
    uboot: bool,
    /// Firmware for -bios (e.g. U-Boot's qemu_arm64 u-boot.bin) instead of a direct boot.
    #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
    bios: Option<PathBuf>,
    /// Board profile whose firmware --uboot uses.
    #[arg(long, default_value = "qemu-virt")]
    board: String,
    /// Keep U-Boot's autoboot countdown. By default a U-Boot boot gets a read-only flash
    /// environment (its own defaults plus bootdelay=0), which saves 2 s a boot.
    #[arg(long)]
    keep_bootdelay: bool,
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
    /// Give the guest an AtomixOS device's two NICs: eth0 (WAN, DHCP from QEMU's 10.0.2.0/24)
    /// and eth1 (LAN, 172.20.30.0/24, the device being 172.20.30.1). Both are QEMU user
    /// networking with restrict=on: the guest reaches nothing outside this machine, and the
    /// host reaches the guest only through --forward.
    #[arg(long)]
    net: bool,
    /// Forward a port of 127.0.0.1 on the host to the guest (implies --net):
    /// [wan:|lan:][tcp:|udp:]HOST:GUEST, on the WAN unless lan: is given
    /// (e.g. 18080:8080, lan:2222:22). Repeatable.
    #[arg(long, value_name = "FORWARD")]
    forward: Vec<NicForward>,
    /// Type SEND into the console once it shows WAIT_FOR (a prompt, say); repeatable, run in
    /// order, each pair after the previous one matched. For scripted bring-up sessions.
    #[arg(long, num_args = 2, value_names = ["WAIT_FOR", "SEND"])]
    expect: Vec<String>,
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    memory: u32,
    /// Virtual CPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    smp: u32,
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

/// A `--forward`: which of the two NICs, and the forward itself.
#[derive(Debug, Clone)]
pub struct NicForward {
    lan: bool,
    forward: Forward,
}

impl std::str::FromStr for NicForward {
    type Err = atomix_qemu::BadForward;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (lan, rest) = match text.split_once(':') {
            Some(("lan", rest)) => (true, rest),
            Some(("wan", rest)) => (false, rest),
            _ => (false, text),
        };
        Ok(Self {
            lan,
            forward: rest.parse()?,
        })
    }
}

/// The NICs for `--net` and `--forward`.
fn nics(net: bool, forwards: &[NicForward]) -> Vec<Nic> {
    if !net && forwards.is_empty() {
        return Vec::new();
    }
    let [mut wan, mut lan] = atomix_qemu::appliance_nics();
    for f in forwards {
        if f.lan { &mut lan } else { &mut wan }
            .forwards
            .push(f.forward);
    }
    vec![wan, lan]
}

/// A temporary flash bank holding `bios`'s default environment with bootdelay=0.
fn no_bootdelay_seed(board: &Board, bios: &std::path::Path) -> Result<tempfile::TempPath> {
    let size = board
        .firmware
        .as_ref()
        .map(|f| f.env_size)
        .with_context(|| format!("board {} does not say where its firmware keeps the environment (use --keep-bootdelay)", board.name))?;
    let path = tempfile::Builder::new()
        .prefix("atomix-uboot-env.")
        .tempfile()?
        .into_temp_path();
    atomix_qemu::write_no_bootdelay_bank(bios, size, &path).map_err(|e| match e {
        // The one the user can step around.
        FlashBankError::Seed { path, source } => anyhow::Error::new(source).context(format!(
            "{}: cannot make a bootdelay=0 environment (use --keep-bootdelay)",
            path.display()
        )),
        e @ (FlashBankError::ReadFirmware { .. }
        | FlashBankError::EnvSize { .. }
        | FlashBankError::Write { .. }) => e.into(),
    })?;
    Ok(path)
}

/// Exit codes of `atomix qemu`, by how the guest ended.
pub fn exit_code(ending: &Ending) -> u8 {
    match ending {
        Ending::PowerOff => 0,
        Ending::Reset => 3,
        Ending::Panic { .. } => 4,
        Ending::Timeout | Ending::Stopped => 5,
        Ending::Matched(_) => 0,
        Ending::Exited { .. } => 6,
    }
}

pub fn run(args: QemuArgs) -> Result<u8> {
    let board = Board::builtin(&args.board)?;
    let bios = match (args.uboot, args.bios) {
        (true, _) => Some(PathBuf::from(
            &board
                .firmware
                .as_ref()
                .with_context(|| {
                    format!("board {} has no emulator firmware for --uboot", board.name)
                })?
                .bios,
        )),
        (false, bios) => bios,
    };
    if bios.is_none() && args.kernel.is_none() {
        bail!("nothing to boot: pass --kernel IMAGE, --uboot or --bios FILE");
    }
    // Lives until QEMU is gone.
    let seed = match (&bios, args.keep_bootdelay) {
        (Some(bios), false) => Some(no_bootdelay_seed(&board, bios)?),
        _ => None,
    };
    let cfg = QemuConfig {
        kernel: args.kernel,
        initramfs: args.initramfs,
        append: args.append,
        bios,
        flash_bank1: seed.as_ref().map(|s| s.to_path_buf()),
        disks: vec![args.disk],
        nics: nics(args.net, &args.forward),
        script: args
            .expect
            .chunks_exact(2)
            .map(|pair| Expect::new(&pair[0], &pair[1]))
            .collect(),
        memory_mib: args.memory,
        cpus: args.smp,
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
