//! `atomix image build`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use atomix_board::Board;
use atomix_image::disk::{self, DiskLayout, DiskSpec, RootfsSource};
use clap::{Args, Subcommand};

use crate::{epoch_from_env, parse_size, print_json};

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build a disk image: GPT with boot-a (vfat: kernel, initrd, extra boot files) at 16 MiB
    /// and rootfs-a (squashfs, zstd, 1 MiB blocks) at 144 MiB. Reproducible for the same inputs
    /// and SOURCE_DATE_EPOCH; written atomically.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Board profile.
    #[arg(long)]
    board: String,
    /// Root filesystem: a directory (packed with mksquashfs) or a ready .squashfs file.
    #[arg(long, value_name = "DIR|FILE")]
    rootfs: PathBuf,
    /// Kernel Image, stored as `Image` on boot-a.
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<PathBuf>,
    /// Initramfs, stored as `initrd` on boot-a.
    #[arg(long, value_name = "FILE")]
    initramfs: Option<PathBuf>,
    /// Another file for the boot-a root directory, as NAME=PATH or PATH (repeatable).
    #[arg(long = "boot-file", value_name = "[NAME=]PATH")]
    boot_files: Vec<String>,
    /// Image size (sparse), e.g. 16G; the backup GPT goes at its end [default: just past rootfs-a].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
    /// Seed of the disk and partition GUIDs [default: the output file name].
    #[arg(long)]
    seed: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Output image (written atomically: no partial file on failure).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

pub fn run(cmd: ImageCmd) -> Result<()> {
    let ImageCmd::Build(args) = cmd;
    // Validates the board name now; the per-board layout arrives with the flashable image.
    Board::builtin(&args.board)?;
    let mut boot_files = Vec::new();
    if let Some(kernel) = args.kernel {
        boot_files.push(("Image".to_owned(), kernel));
    }
    if let Some(initramfs) = args.initramfs {
        boot_files.push(("initrd".to_owned(), initramfs));
    }
    for item in &args.boot_files {
        boot_files.push(boot_file(item)?);
    }
    let rootfs = if args.rootfs.is_dir() {
        RootfsSource::Dir(args.rootfs.clone())
    } else if args.rootfs.is_file() {
        RootfsSource::Squashfs(args.rootfs.clone())
    } else {
        bail!(
            "--rootfs {}: expected a directory or a squashfs file",
            args.rootfs.display()
        );
    };
    let seed = match args.seed {
        Some(seed) => seed,
        None => args
            .out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "atomix".to_owned()),
    };
    let spec = DiskSpec {
        layout: DiskLayout::atomix(),
        boot_files,
        rootfs,
        epoch: epoch_from_env()?,
        seed,
        size: args.size,
    };
    let report = disk::build(&spec, &args.out, &mut |step| eprintln!("atomix: {step}"))
        .with_context(|| format!("cannot build the image {}", args.out.display()))?;
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "{}: {} bytes ({} allocated), disk {}",
            args.out.display(),
            report.size,
            report.allocated,
            report.disk_guid
        );
        for p in &report.partitions {
            println!(
                "  {} {:<9} start {:>11} size {:>11} type {} uuid {}",
                p.number, p.label, p.start, p.size, p.type_guid, p.uuid
            );
        }
        println!("sha256 {}", report.sha256);
    }
    Ok(())
}

/// `NAME=PATH` or `PATH` (named after its file name).
fn boot_file(item: &str) -> Result<(String, PathBuf)> {
    if let Some((name, path)) = item.split_once('=') {
        return Ok((name.to_owned(), PathBuf::from(path)));
    }
    let path = PathBuf::from(item);
    let name = path
        .file_name()
        .with_context(|| format!("--boot-file {item}: expected [NAME=]PATH"))?
        .to_string_lossy()
        .into_owned();
    Ok((name, path))
}
