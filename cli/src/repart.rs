//! `atomix repart`: plan (and with `--dry-run=no` carry out) repart.d definitions on an image
//! file or a block device. All logic is `atomix_repart`'s; this file picks defaults, prints and
//! maps outcomes to exit codes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use atomix_board::Board;
use atomix_repart::apply::{self, ApplyOptions, Current, Pending};
use atomix_repart::definitions::{self, Arch, Definition};
use atomix_repart::gpt::Guid;
use atomix_repart::plan::Plan;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::print_json;

/// Exit code: the plan was refused (disk too small, conflicting partitions, `--empty` rule).
pub const EXIT_REFUSED: u8 = 3;
/// Exit code: bad usage (also a target that does not exist).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: apply failed.
pub const EXIT_FAILED: u8 = 1;

/// Without a board, nothing below 1 MiB is allocated on a blank disk (libfdisk's default).
const DEFAULT_FIRST_USABLE: u64 = 1 << 20;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["board", "definitions"])))]
pub struct RepartArgs {
    /// Use this board's definitions (board/repart.d/<set>) and its raw-region bound.
    #[arg(long)]
    board: Option<String>,
    /// Use the `*.conf` repart.d definitions in this directory (first usable byte 1 MiB).
    #[arg(long, value_name = "DIR")]
    definitions: Option<PathBuf>,
    /// `yes` prints the plan and what apply would write; `no` carries it out.
    #[arg(long, value_enum, default_value = "yes", value_name = "yes|no", num_args = 0..=1,
          require_equals = true, default_missing_value = "yes")]
    dry_run: YesNo,
    /// Print the plan (and pending work, and the report) as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Seed of new partition UUIDs [default: the disk GUID of the current table].
    #[arg(long, value_name = "UUID")]
    seed: Option<Guid>,
    /// A disk without a partition table: `refuse` it, `allow` a new table, or `require` a disk
    /// without partitions.
    #[arg(long, value_enum, default_value = "refuse")]
    empty: Empty,
    /// Image file or block device.
    target: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Empty {
    Refuse,
    Allow,
    Require,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    plan: &'a Plan,
    pending: &'a Pending,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a apply::ApplyReport>,
}

/// Runs the command; returns the exit code (errors are exit 1 through `main`).
pub fn run(args: RepartArgs) -> Result<u8> {
    let target = &args.target;
    if !target.exists() {
        eprintln!(
            "atomix: error: {}: no such image file or block device",
            target.display()
        );
        return Ok(EXIT_USAGE);
    }
    let (defs, first_usable) = load_definitions(&args)?;
    let current = apply::read_current(target)?;
    if let Some(refusal) = empty_rule(args.empty, &current, target) {
        eprintln!("atomix: refused: {refusal}");
        return Ok(EXIT_REFUSED);
    }
    let plan = match apply::plan_current(&defs, &current, args.seed, first_usable) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("atomix: refused: {}: {e}", target.display());
            return Ok(EXIT_REFUSED);
        }
    };
    let pending = apply::pending(&plan, target)?;
    if !args.json {
        print!("{plan}");
        print_pending(&pending);
    }
    if args.dry_run == YesNo::Yes {
        if args.json {
            print_json(&JsonOut {
                plan: &plan,
                pending: &pending,
                report: None,
            })?;
        } else if !pending.is_empty() {
            println!("dry run: nothing written; --dry-run=no carries this out");
        }
        return Ok(0);
    }
    let opts = ApplyOptions {
        reproducible: reproducible_from_env()?,
        ..ApplyOptions::default()
    };
    match apply::apply(&plan, target, &opts, &mut |step| {
        eprintln!("atomix repart: {step}");
    }) {
        Ok(report) => {
            if args.json {
                print_json(&JsonOut {
                    plan: &plan,
                    pending: &pending,
                    report: Some(&report),
                })?;
            } else {
                print!("{report}");
            }
            Ok(0)
        }
        Err(error) => {
            atomix_errchain::eprint_report("atomix", &error);
            let state = after_failure(&current, &defs, args.seed, first_usable, target);
            eprintln!("atomix: {state}");
            Ok(EXIT_FAILED)
        }
    }
}

/// The definitions and the first usable byte for a new table.
fn load_definitions(args: &RepartArgs) -> Result<(Vec<Definition>, u64)> {
    // AtomixOS boards are arm64: `Type=root` means root-arm64.
    let arch = Arch::Arm64;
    if let Some(name) = &args.board {
        let board = Board::builtin(name)?;
        let defs = board
            .repart
            .definitions
            .iter()
            .map(|(file, text)| definitions::parse_definition(file, text, arch))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("board {name}: definitions {}", board.repart.set))?;
        return Ok((defs, board.repart.first_usable_bytes));
    }
    let dir = args.definitions.as_deref().unwrap_or(Path::new("."));
    let defs = definitions::load_dir(dir, arch)?;
    Ok((defs, DEFAULT_FIRST_USABLE))
}

/// systemd-repart's `--empty=`: refuse a disk without a table, allow one, or require a disk
/// without partitions.
fn empty_rule(rule: Empty, current: &Current, target: &Path) -> Option<String> {
    match (rule, &current.table) {
        (Empty::Refuse, None) => Some(format!(
            "{} has no partition table (--empty=allow creates one)",
            target.display()
        )),
        (Empty::Require, Some(t)) if !t.partitions.is_empty() => Some(format!(
            "{} has {} partitions and --empty=require wants a disk without any",
            target.display(),
            t.partitions.len()
        )),
        _ => None,
    }
}

fn print_pending(pending: &Pending) {
    if pending.is_empty() {
        println!("pending: nothing (apply writes no byte)");
        return;
    }
    if pending.table {
        println!("pending: write the partition table");
    }
    for f in &pending.format {
        println!(
            "pending: format partition {} ({}) as {} ({})",
            f.number, f.label, f.format, f.reason
        );
    }
}

/// SOURCE_DATE_EPOCH, when set, makes file-system UUIDs and times reproducible.
fn reproducible_from_env() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970")
            })?))
        }
        _ => Ok(None),
    }
}

/// After a failed apply: read the disk again and say whether it is unchanged or resumable.
fn after_failure(
    before: &Current,
    defs: &[Definition],
    seed: Option<Guid>,
    first_usable: u64,
    target: &Path,
) -> String {
    let Ok(now) = apply::read_current(target) else {
        return format!(
            "{} cannot be read back; run the same command again to resume",
            target.display()
        );
    };
    if now.table == before.table && now.repaired_from_backup == before.repaired_from_backup {
        return format!(
            "the partition table of {} is unchanged (only free space may have been written); \
             running the same command again starts over",
            target.display()
        );
    }
    let done = apply::plan_current(defs, &now, seed, first_usable)
        .ok()
        .and_then(|plan| apply::pending(&plan, target).ok())
        .is_some_and(|p| p.is_empty());
    if done {
        format!(
            "the disk {} is complete; only telling the kernel failed",
            target.display()
        )
    } else {
        format!(
            "{} is partly updated and consistent: run the same command again to complete it",
            target.display()
        )
    }
}
