//! `atomix inspect [--board B] IMAGE|DEVICE [--json]`: what is on an image or device. The
//! findings are `atomix_image::inspect`'s; this file picks the board and the loader directory
//! and prints the report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use atomix_blockdev::size::{Style, human};
use atomix_board::Board;
use atomix_image::inspect::{self, Report};
use clap::Args;

use crate::print_json;

/// Exit code: bad usage (also: the board cannot be told from the target).
const EXIT_USAGE: u8 = 2;

pub const ABOUT: &str = "\
Reads TARGET (an image file or a block device; nothing is written) and reports: the GPT \
(number, label, type, start, size, attributes, the file system at each partition's start), free \
space and the disk size; whether the board's raw loader files are in place; each boot \
partition's files and the build ID its boot.scr echoes; the A/B counters and the slot the next \
boot picks; whether first boot has happened (a boot-b partition exists); whether /data holds a \
file system.

The board decides where the loader files and the A/B counters are. Without --board it is told \
from the target: a board whose loader files are present at their sectors (rock64: idbloader.img \
at sector 64, u-boot.itb at 16384), else the boards that keep no loader on the disk \
(qemu-virt). When that leaves more than one board, pass --board.

The loader files are compared byte for byte with those in --loader-dir (default: the set-up \
cache, <cache>/<package>/<dir>, when it exists); without them a place is reported as \"present \
(not compared)\" or \"missing (zeros)\".

Exit codes: 0 inspected (whatever was found); 1 TARGET or a loader file cannot be read; 2 bad \
usage, or the board cannot be told.";

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Board profile [default: told from the target, see below].
    #[arg(long)]
    board: Option<String>,
    /// Directory with the board's loader files to compare against [default: the set-up cache's
    /// unpacked loader package, when present].
    #[arg(long, value_name = "DIR", value_parser = crate::existing_path)]
    loader_dir: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Image file or block device.
    #[arg(value_name = "IMAGE|DEVICE", value_parser = crate::existing_path)]
    target: PathBuf,
}

/// Runs the command; returns the exit code.
pub fn run(args: InspectArgs) -> Result<u8> {
    let target = &args.target;
    let (board, how) = match &args.board {
        Some(name) => match Board::builtin(name) {
            Ok(board) => (board, "given"),
            Err(e) => {
                eprintln!("atomix: error: --board: {e}");
                return Ok(EXIT_USAGE);
            }
        },
        None => {
            let found = inspect::matching_boards(target)
                .with_context(|| format!("cannot inspect {}", target.display()))?;
            match found.as_slice() {
                [one] => {
                    let board = Board::builtin(one)?;
                    let how = if board.loader.is_some() {
                        "told from the target: its loader files are there"
                    } else {
                        "told from the target: no board's loader files are on it"
                    };
                    (board, how)
                }
                [] => {
                    eprintln!(
                        "atomix: error: {}: no board matches; pass --board",
                        target.display()
                    );
                    return Ok(EXIT_USAGE);
                }
                many => {
                    eprintln!(
                        "atomix: error: {} may be a disk of {}: pass --board",
                        target.display(),
                        many.join(" or ")
                    );
                    return Ok(EXIT_USAGE);
                }
            }
        }
    };
    let loader_dir = args.loader_dir.clone().or_else(|| {
        let loader = board.loader.as_ref()?;
        let dir = crate::paths::cache_dir()
            .ok()?
            .join(&loader.package)
            .join(&loader.dir);
        dir.is_dir().then_some(dir)
    });
    let report = inspect::inspect(target, &board, loader_dir.as_deref())
        .with_context(|| format!("cannot inspect {}", target.display()))?;
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report, &board, how);
    }
    Ok(0)
}

fn print_report(r: &Report, board: &Board, how: &str) {
    println!(
        "{}: {}, {} ({} bytes), {}-byte sectors",
        r.target.display(),
        if r.block_device {
            "block device"
        } else {
            "image file"
        },
        human(r.disk_bytes, Style::Inspect),
        r.disk_bytes,
        r.sector_size
    );
    println!("board: {} ({how})", r.board);

    match &r.table {
        None => println!("partition table: none (no GPT)"),
        Some(t) => {
            println!(
                "partition table: GPT, disk {}, usable {}..{}{}",
                t.disk_guid,
                human(t.first_usable, Style::Inspect),
                human(t.usable_end, Style::Inspect),
                if t.read_from_backup {
                    " (primary damaged: read from the backup)"
                } else {
                    ""
                }
            );
            println!(
                "  {:>2}  {:<9} {:<14} {:>10} {:>10}  {:<18} content",
                "#", "label", "type", "start", "size", "attributes"
            );
            for p in &t.partitions {
                let content = match (&p.filesystem, p.filesystem_bytes) {
                    (Some(fs), Some(n)) => format!("{fs} ({})", human(n, Style::Inspect)),
                    (Some(fs), None) => fs.clone(),
                    (None, _) => "no file system".to_owned(),
                };
                println!(
                    "  {:>2}  {:<9} {:<14} {:>10} {:>10}  {:<18} {content}",
                    p.number,
                    p.label,
                    p.type_name.as_deref().unwrap_or(&p.type_guid),
                    human(p.start, Style::Inspect),
                    human(p.size, Style::Inspect),
                    if p.attribute_names.is_empty() {
                        "-".to_owned()
                    } else {
                        p.attribute_names.join(",")
                    }
                );
            }
            for f in &t.free {
                println!(
                    "  free: {} at {}",
                    human(f.size, Style::Inspect),
                    human(f.start, Style::Inspect)
                );
            }
            if t.beyond_table > 0 {
                println!(
                    "  beyond the table: {} (the backup GPT is not at the disk's end; first \
                     boot moves it)",
                    human(t.beyond_table, Style::Inspect)
                );
            }
        }
    }

    if board.loader.is_some() {
        for l in &r.loader {
            let with = l
                .compared_with
                .as_ref()
                .map_or(String::new(), |p| format!(" [{}]", p.display()));
            println!(
                "loader: {} at sector {}: {}{with}",
                l.file,
                l.sector,
                l.state.describe()
            );
        }
    } else {
        println!("loader: none on the disk for board {}", r.board);
    }

    for b in &r.boot {
        let id = b
            .build_id
            .as_deref()
            .map_or(String::new(), |id| format!(", build {id}"));
        let note = b
            .note
            .as_deref()
            .map_or(String::new(), |p| format!(" ({p})"));
        println!(
            "slot {} boot: partition {} ({}){id}{note}",
            b.slot, b.number, b.label
        );
        for f in &b.files {
            if f.is_dir {
                println!("    {:<24} directory", f.name);
            } else {
                println!("    {:<24} {:>11} bytes", f.name, f.size);
            }
        }
    }

    match (&r.ab.state, &r.ab.error) {
        (Some(state), _) => {
            println!("A/B counters: {}", state.summary());
            println!("  {}", crate::env::ab_line(&state.ab, state.tries));
        }
        (None, Some(e)) => println!("A/B counters: cannot be read: {e}"),
        (None, None) => println!("A/B counters: unknown"),
    }
    println!(
        "first boot: {}",
        if r.first_boot_done {
            "done (boot-b exists)"
        } else {
            "not yet (no boot-b partition)"
        }
    );
    println!("/data: {}", r.data.summary);
}
