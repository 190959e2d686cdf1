//! `atomix image build` (and `write-slot`, in `slot.rs`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use atomix_board::Board;
use atomix_image::disk::RootfsSource;
use atomix_image::flashable::{self, Inputs};
use clap::{Args, Subcommand};

use crate::{epoch_from_env, parse_size, paths, print_json};

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build a flashable image: the board's raw loader files below 16 MiB, a GPT with boot-a
    /// (vfat: Image, initrd, the DTB, the generated boot.scr) at 16 MiB and rootfs-a (squashfs,
    /// zstd, 1 MiB blocks) at 144 MiB, and a JSON manifest beside it. Reproducible for the same
    /// inputs and SOURCE_DATE_EPOCH; nothing is left behind on failure.
    Build(BuildArgs),
    /// Fill slot A or B (rootfs squashfs, then the boot vfat from a directory) of an image or
    /// device, as an update does; keeps a board's A/B state file on that boot partition.
    #[command(long_about = crate::slot::ABOUT)]
    WriteSlot(crate::slot::WriteSlotArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Board profile (see `atomix boards`).
    #[arg(long)]
    board: String,
    /// Root filesystem: a directory (packed with mksquashfs) or a ready squashfs file.
    #[arg(long, value_name = "DIR|FILE")]
    rootfs: PathBuf,
    /// Kernel Image, stored as `Image` on boot-a.
    #[arg(long, value_name = "IMAGE")]
    kernel: PathBuf,
    /// Initramfs, stored as `initrd` on boot-a.
    #[arg(long, value_name = "FILE")]
    initramfs: PathBuf,
    /// Device tree for boards that load one (rock64), stored under its file name on boot-a
    /// [default: the board's DTB in the cached kernel package,
    /// <cache>/kernel/usr/lib/linux-image-*/].
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// Directory holding the board's raw loader files (rock64: idbloader.img, u-boot.itb)
    /// [default: <cache>/<package>/<dir> of the board's loader, unpacked by scripts/setup.sh].
    #[arg(long, value_name = "DIR")]
    loader_dir: Option<PathBuf>,
    /// Build ID echoed by boot.scr and put in the image name [default: the first 12 hex digits
    /// of a SHA-256 over the board, version, epoch and every input's hash].
    #[arg(long, value_name = "ID")]
    build_id: Option<String>,
    /// Version, put in boot.scr and the image name.
    #[arg(long, value_name = "V", default_value = flashable::DEFAULT_VERSION)]
    version: String,
    /// Image size (sparse), e.g. 16G; the backup GPT goes at its end [default: just past
    /// rootfs-a].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
    /// Seed of the disk and partition GUIDs and the vfat volume id [default: the build ID].
    #[arg(long)]
    seed: Option<String>,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// The image file, or an existing directory to put
    /// atomixos-<board>-<version>-<build id>.img in. The manifest goes beside it as
    /// <image>.json.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

pub fn run(cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Build(args) => build(args),
        ImageCmd::WriteSlot(args) => crate::slot::run(args),
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let board = Board::builtin(&args.board)?;
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
    let dtb = match (args.dtb, &board.boot.dtb) {
        (None, Some(dtb)) => Some(default_dtb(dtb)?),
        (given, _) => given,
    };
    let loader_dir = match (args.loader_dir, &board.loader) {
        (None, Some(loader)) => Some(default_loader_dir(&loader.package, &loader.dir)?),
        (given, _) => given,
    };
    let inputs = Inputs {
        rootfs,
        kernel: args.kernel,
        initramfs: args.initramfs,
        dtb,
        loader_dir,
        build_id: args.build_id,
        version: args.version,
        epoch: epoch_from_env()?,
        seed: args.seed,
        size: args.size,
    };
    let built = flashable::build(&board, &inputs, &args.out, &mut |step| {
        eprintln!("atomix: {step}")
    })
    .with_context(|| format!("cannot build the {} image", board.name))?;
    let m = &built.manifest;
    if args.json {
        print_json(m)?;
        return Ok(());
    }
    println!("image    {}", built.image.display());
    println!("manifest {}", built.manifest_path.display());
    println!(
        "board {}, version {}, build {}: {} bytes ({} allocated), disk {}",
        m.board, m.version, m.build_id, m.size, built.allocated, m.disk_guid
    );
    for p in &m.partitions {
        println!(
            "  {} {:<9} start {:>11} size {:>11} type {} uuid {}",
            p.number, p.label, p.start, p.size, p.type_guid, p.uuid
        );
    }
    println!("sha256 {}", m.sha256);
    Ok(())
}

/// The board's DTB in the cached kernel package: `<cache>/kernel/usr/lib/linux-image-*/<dtb>`.
fn default_dtb(dtb: &str) -> Result<PathBuf> {
    let lib = paths::cache_dir()?.join("kernel/usr/lib");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("linux-image-") {
                let path = entry.path().join(dtb);
                if path.is_file() {
                    found.push(path);
                }
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no --dtb given and the default {}/linux-image-*/{dtb} does not exist: run \
             scripts/setup.sh or pass --dtb",
            lib.display()
        ),
        _ => bail!(
            "no --dtb given and {}/linux-image-*/{dtb} matches several kernel packages: pass --dtb",
            lib.display()
        ),
    }
}

/// `<cache>/<package>/<dir>`: where scripts/setup.sh unpacks the board's loader package.
fn default_loader_dir(package: &str, dir: &str) -> Result<PathBuf> {
    let path = paths::cache_dir()?.join(package).join(dir);
    if !Path::new(&path).is_dir() {
        bail!(
            "no --loader-dir given and the default {} (package {package}) does not exist: run \
             scripts/setup.sh or pass --loader-dir",
            path.display()
        );
    }
    Ok(path)
}
