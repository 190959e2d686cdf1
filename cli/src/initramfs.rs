//! `atomix initramfs build`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use atomix_board::Board;
use atomix_image::initramfs::{self, Compression, InitramfsSpec, RepartSpec};
use clap::{Args, Subcommand};

use crate::{epoch_from_env, paths, print_json};

#[derive(Debug, Subcommand)]
pub enum InitramfsCmd {
    /// Build a reproducible initramfs (cpio newc): /init, /dev/console, the board's kernel
    /// modules with their dependency closure in load order, the board's repart.d definitions
    /// (/etc/repart.d) and first-boot modules (/etc/atomix/modules-repart.load), optionally a
    /// busybox shell.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Board profile whose module list goes in (see `atomix boards`).
    #[arg(long)]
    board: String,
    /// Unpacked Debian kernel package holding `lib/modules/<version>/` [default: the set-up cache].
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    /// Kernel version under lib/modules/ when the package holds several.
    #[arg(long, value_name = "VERSION")]
    kernel_version: Option<String>,
    /// The static aarch64 /init [default: the workspace's `--profile init` build].
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Add a static busybox as /bin/sh for bring-up (atomix.break=, atomix.emergency=shell).
    #[arg(long)]
    shell: bool,
    /// The busybox for --shell [default: the set-up cache's busybox-static:arm64].
    #[arg(long, value_name = "FILE", requires = "shell")]
    busybox: Option<PathBuf>,
    /// Compression of the archive.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip", "none"])]
    compress: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Output file (written atomically: no partial file on failure).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(cmd: InitramfsCmd) -> Result<()> {
    let InitramfsCmd::Build(args) = cmd;
    let board = Board::builtin(&args.board)?;
    let modules_root = match args.modules {
        Some(dir) => dir,
        None => paths::default_modules_root()?,
    };
    let init = match args.init {
        Some(path) => path,
        None => paths::default_init()?,
    };
    let shell = match (args.shell, args.busybox) {
        (false, _) => None,
        (true, Some(path)) => Some(path),
        (true, None) => Some(paths::default_busybox()?),
    };
    let compression: Compression = args
        .compress
        .parse()
        .map_err(|e: initramfs::UnknownCompression| anyhow::anyhow!("--compress {}", e.0))?;
    let spec = InitramfsSpec {
        init,
        modules_root: Some(modules_root),
        kernel_version: args.kernel_version,
        modules: board.modules.clone(),
        shell,
        compression,
        epoch: epoch_from_env()?,
        repart: Some(RepartSpec::from_board(
            board.repart.definitions,
            &board.repart.modules,
        )),
    };
    let report = initramfs::build(&spec, &args.out)
        .with_context(|| format!("cannot build the initramfs {}", args.out.display()))?;
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "{}: {} entries, {} modules for kernel {} ({}), {} bytes raw, {} bytes {}",
            args.out.display(),
            report.entries,
            report.modules.len(),
            report.kernel_version.as_deref().unwrap_or("-"),
            report.modules.join(" "),
            report.raw_bytes,
            report.compressed_bytes,
            report.compression,
        );
        println!(
            "repart: {} definitions, {} modules loaded only when repartitioning ({})",
            report.repart_definitions.len(),
            report.repart_modules.len(),
            report.repart_modules.join(" "),
        );
        println!("sha256 {}", report.sha256);
    }
    Ok(())
}
