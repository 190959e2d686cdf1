//! `atomix rootfs files` and `atomix rootfs pack`: the two steps of the root filesystem build
//! (`scripts/rootfs.sh`, around mkosi) that belong to the toolkit. What the files say is
//! `atomix_board::rootfs`'s; how a rootfs is packed is `atomix_image::disk::pack_rootfs`'s.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use atomix_blockdev::size::{Style, human};
use atomix_board::Board;
use atomix_board::rootfs::{self, Contents};
use atomix_image::disk::{self, DiskLayout};
use clap::{Args, Subcommand};

use crate::{epoch_from_env, print_json};

#[derive(Debug, Subcommand)]
pub enum RootfsCmd {
    /// Write the board's files of the root filesystem into DIR: RAUC's system.conf and its
    /// bootloader backend (`atomix env` on the board's disk), fw_env.config where the counters
    /// are in a U-Boot environment, the NIC names, the serial console. Existing files are
    /// replaced.
    Files(FilesArgs),
    /// Pack a root filesystem directory into a squashfs as image builds do (zstd, 1 MiB blocks,
    /// owners and modes kept, no xattrs, every time set to SOURCE_DATE_EPOCH, or 0): the same
    /// tree gives the same bytes. Written beside FILE and renamed into place; refused when it
    /// does not fit a rootfs slot.
    Pack(PackArgs),
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    /// Board profile (see `atomix boards`).
    #[arg(long)]
    board: String,
    /// The root filesystem tree to write into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// List the files written as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The root filesystem tree.
    #[arg(value_parser = crate::existing_path)]
    dir: PathBuf,
    /// The squashfs to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Print size, slot room and SHA-256 as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: RootfsCmd) -> Result<()> {
    match cmd {
        RootfsCmd::Files(args) => files(args),
        RootfsCmd::Pack(args) => pack(args),
    }
}

fn files(args: FilesArgs) -> Result<()> {
    let board = Board::builtin(&args.board)?;
    let mut written = Vec::new();
    for file in rootfs::files(&board) {
        let path = args.out.join(&file.path);
        write(&path, &file.contents).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(file.path);
    }
    if args.json {
        print_json(&written)?;
    } else {
        for path in &written {
            println!("{path}");
        }
    }
    Ok(())
}

/// Writes one file (or link), replacing what is there.
fn write(path: &Path, contents: &Contents) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path)?;
    }
    match contents {
        Contents::Text { text, mode } => {
            fs::write(path, text)?;
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
        }
        Contents::Symlink(target) => symlink(target, path),
    }
}

#[derive(Debug, serde::Serialize)]
struct Packed {
    path: PathBuf,
    bytes: u64,
    slot_bytes: u64,
    sha256: String,
}

fn pack(args: PackArgs) -> Result<()> {
    if !args.dir.is_dir() {
        bail!("{}: not a directory", args.dir.display());
    }
    let epoch = epoch_from_env()?;
    let slot_bytes = DiskLayout::atomix()?.rootfs_slot()?.size;
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".atomix-rootfs.")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write into {}", parent.display()))?
        .into_temp_path();
    disk::pack_rootfs(&args.dir, &temp, epoch)?;
    let (bytes, sha256) =
        disk::sha256_file(&temp).with_context(|| format!("cannot read {}", temp.display()))?;
    if bytes > slot_bytes {
        bail!(
            "{}: the squashfs is {bytes} bytes, more than a rootfs slot ({slot_bytes} bytes)",
            args.dir.display()
        );
    }
    temp.persist(&args.out)
        .with_context(|| format!("cannot rename into {}", args.out.display()))?;
    let packed = Packed {
        path: args.out,
        bytes,
        slot_bytes,
        sha256,
    };
    if args.json {
        print_json(&packed)?;
    } else {
        println!(
            "{}: {} ({:.1}% of a {} rootfs slot), sha256 {}",
            packed.path.display(),
            human(bytes, Style::Inspect),
            bytes as f64 * 100.0 / slot_bytes as f64,
            human(slot_bytes, Style::Inspect),
            packed.sha256
        );
    }
    Ok(())
}
