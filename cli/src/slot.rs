//! `atomix image write-slot`: fill one slot pair of an image file or block device. The checks,
//! the write order and the kept A/B state file are `atomix_image::slot`'s; this file parses,
//! prints and reports.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use atomix_board::{Board, Slot};
use atomix_flash::{Host, InUse, TargetKind};
use atomix_image::slot::{self, SlotSpec};
use clap::Args;

use crate::print_json;

pub const ABOUT: &str = "\
Fills slot A or B of TARGET (an image file or a block device) as an update does: the squashfs \
FILE goes raw into the slot's rootfs partition (rootfs-a = 2, rootfs-b = 4), then the slot's \
boot partition (boot-a = 1, boot-b = 3) is formatted as FAT16 (label BOOT-A / BOOT-B) with \
DIR's regular files in its root directory.

Checked before anything is written: the GPT has the slot's partitions with their labels \
(boot-b and rootfs-b exist only after first boot: `atomix repart --board B --dry-run=no TARGET` \
makes them), the squashfs magic and that it fits, and that DIR holds Image, initrd, the board's \
DTB (rock64: rk3328-rock64.dtb) and, for the partition U-Boot's distro boot scans (boot-a, \
legacy BIOS bootable), boot.scr; on a block device, that neither partition of the slot is \
mounted, a swap area or under a dm/md device (the rest of the disk may be: an update writes the \
slot that is not running). The rootfs is written and fsynced first, the boot file system \
last, so a failure is reported with the state it leaves the slot in.

The A/B counters survive: a board that keeps them in a file on this boot partition (qemu-virt: \
abstate.txt on boot-a) gets the file back after the reformat, so writing slot A does not reset \
them (a copy of the file in DIR is then not used). The Rock64 keeps them in the U-Boot \
environment below the partitions, which write-slot never touches.

SOURCE_DATE_EPOCH sets the FAT timestamps (else now). Exit codes: 0 written; 1 a check or a \
write failed (nothing is written when a check fails); 2 bad usage.";

#[derive(Debug, Args)]
pub struct WriteSlotArgs {
    /// Board profile (its DTB and where it keeps the A/B counters).
    #[arg(long)]
    board: String,
    /// The slot pair to fill.
    #[arg(long, value_name = "a|b")]
    slot: Slot,
    /// Directory whose regular files go into the boot partition's FAT root.
    #[arg(long, value_name = "DIR", value_parser = crate::existing_path)]
    boot_files: PathBuf,
    /// The squashfs for the rootfs partition.
    #[arg(long, value_name = "FILE", value_parser = crate::existing_path)]
    rootfs: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Image file or block device.
    #[arg(value_parser = crate::existing_path)]
    target: PathBuf,
}

pub fn run(args: WriteSlotArgs) -> Result<()> {
    let board = Board::builtin(&args.board)?;
    refuse_a_busy_slot(&args.target, args.slot)?;
    let spec = SlotSpec {
        board: &board,
        slot: args.slot,
        boot_dir: args.boot_files.clone(),
        rootfs: args.rootfs.clone(),
        time: crate::env::fat_time()?,
    };
    let report = slot::write_slot(&args.target, &spec, &mut |step| eprintln!("atomix: {step}"))
        .with_context(|| {
            format!(
                "cannot write slot {} of {}",
                args.slot,
                args.target.display()
            )
        })?;
    if args.json {
        return print_json(&report);
    }
    println!("{}: slot {} written", report.target.display(), report.slot);
    println!(
        "  rootfs: partition {} ({}), {} bytes of squashfs",
        report.rootfs.number, report.rootfs.label, report.rootfs_bytes
    );
    println!(
        "  boot:   partition {} ({}), FAT16 {}:",
        report.boot.number, report.boot.label, report.volume_label
    );
    for f in &report.boot_files {
        println!("    {:<24} {:>11} bytes", f.name, f.size);
    }
    if let Some(kept) = &report.kept_state {
        println!(
            "  kept the A/B state file {} ({} bytes) across the reformat",
            kept.file, kept.bytes
        );
    }
    Ok(())
}

/// On a block device, refuses when a partition of `slot` is in use (mounted, swap, under a
/// dm/md device). Other partitions may be: the running system writes the other slot.
fn refuse_a_busy_slot(target: &Path, slot: Slot) -> Result<()> {
    let t = atomix_flash::inspect_target(target, &Host::real())
        .with_context(|| format!("cannot examine {}", target.display()))?;
    let TargetKind::Block(info) = &t.kind else {
        return Ok(());
    };
    let disk = t.resolved.to_string_lossy();
    for number in [slot.boot_partition(), slot.rootfs_partition()] {
        let node = atomix_board::partition_device(&disk, number);
        let name = node.rsplit('/').next().unwrap_or(&node);
        let busy = info.in_use.iter().find(|u| {
            let device = match u {
                InUse::Mounted { device, .. }
                | InUse::Swap { device }
                | InUse::Held { device, .. } => device,
            };
            device == name || *device == node
        });
        if let Some(u) = busy {
            bail!(
                "{u}: partition {number} belongs to slot {slot}; unmount it (or write the other \
                 slot) first. Nothing was written."
            );
        }
    }
    Ok(())
}
