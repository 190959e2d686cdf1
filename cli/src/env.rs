//! `atomix env --board B TARGET print|set|mark-good`: the board's A/B store on an image file or
//! block device, as `fw_printenv` / `fw_setenv` and RAUC's mark-good see it. All reading,
//! writing and the default-environment rule are `atomix_image::bootenv`'s; this file validates
//! the arguments, prints and picks exit codes.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use atomix_board::env::{AbView, Env};
use atomix_board::{Board, Slot};
use atomix_image::bootenv::{self, AbState, Base, BootEnvError, Source};
use clap::{Args, Subcommand};

use crate::print_json;

/// Exit code: bad usage.
const EXIT_USAGE: u8 = 2;
/// Exit code: reading, decoding or writing failed.
const EXIT_FAILED: u8 = 1;

pub const ABOUT: &str = "\
Reads and writes the A/B boot counters (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT) where the board \
keeps them on TARGET, an image file or a block device:
  rock64     the binary U-Boot environment (CRC32) at 0x3F8000, 0x8000 bytes, as saveenv writes it
  qemu-virt  abstate.txt (env export -t text) in the FAT root of partition 1 (boot-a)

A blank U-Boot environment means nothing was saved and U-Boot runs on its built-in default. A \
saved environment replaces that default completely, so `set` and `mark-good` on a blank area \
start from the default environment of the U-Boot on TARGET (found in its loader files) and \
refuse when there is none. A damaged environment (CRC mismatch) is reported by `print`; `set` \
and `mark-good` refuse it unless --from-default, which starts from U-Boot's built-in default \
instead (for qemu-virt: from an empty state file). Writes replace the whole area or file and \
are fsynced.

Exit codes:
  0  done
  1  reading, decoding or writing failed (a CRC mismatch, a missing partition, an I/O error)
  2  bad usage: unknown board, TARGET missing, a malformed KEY=VALUE";

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Board profile: where its counters live (see `atomix boards`).
    #[arg(long)]
    board: String,
    /// Image file or block device.
    #[arg(value_parser = crate::existing_path)]
    target: PathBuf,
    #[command(subcommand)]
    action: EnvAction,
}

#[derive(Debug, Subcommand)]
enum EnvAction {
    /// Print every variable, then the A/B view: the order, tries left and the slot the next
    /// boot picks.
    Print {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Set variables (`KEY=` deletes KEY). BOOT_ORDER takes A and B; BOOT_A_LEFT and
    /// BOOT_B_LEFT take 0 up to the board's tries.
    Set {
        /// The assignments.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// RAUC's mark-good: the slot gets all its tries back (BOOT_<slot>_LEFT = the board's
    /// tries).
    MarkGood {
        /// a or b.
        #[arg(value_name = "a|b")]
        slot: Slot,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// RAUC's custom bootloader backend, with the semantics of RAUC's U-Boot backend: the
    /// device's /etc/rauc/system.conf names a script that runs `atomix env --board B DISK rauc
    /// "$@"`. Slots are RAUC bootnames (A, B).
    #[command(subcommand)]
    Rauc(RaucCmd),
}

#[derive(Debug, Subcommand)]
enum RaucCmd {
    /// Print the bootname the next boot picks (the first slot in BOOT_ORDER with tries left).
    GetPrimary,
    /// Put the slot first in BOOT_ORDER with all its tries.
    SetPrimary {
        /// A or B.
        slot: Slot,
    },
    /// Print `good` (in BOOT_ORDER with tries left) or `bad`.
    GetState {
        /// A or B.
        slot: Slot,
    },
    /// good: all tries back (mark-good); bad: out of BOOT_ORDER with no tries (mark-bad).
    SetState {
        /// A or B.
        slot: Slot,
        /// good or bad.
        state: RaucState,
    },
    /// Print the bootname of the running slot, from rauc.slot= on /proc/cmdline.
    GetCurrent,
}

/// A slot state as RAUC's custom backend protocol spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RaucState {
    Good,
    Bad,
}

#[derive(Debug, Args)]
struct WriteOpts {
    /// Start from U-Boot's built-in default environment (found in the loader on TARGET)
    /// instead of the saved one: replaces a damaged (CRC mismatch) environment. qemu-virt:
    /// start from an empty state file.
    #[arg(long)]
    from_default: bool,
    /// Print the result as one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: EnvArgs) -> Result<u8> {
    let EnvArgs {
        board,
        target,
        action,
    } = args;
    let board = match Board::builtin(&board) {
        Ok(board) => board,
        Err(e) => {
            eprintln!("atomix: error: --board: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let target = target.as_path();
    match action {
        EnvAction::Print { json } => match bootenv::read(target, &board) {
            Ok(state) => {
                if json {
                    print_json(&state)?;
                } else {
                    print_state(&state);
                }
                Ok(0)
            }
            Err(e) => Ok(failed(&e)),
        },
        EnvAction::Set { assignments, write } => {
            let mut pairs = Vec::new();
            for item in &assignments {
                match parse_assignment(item, board.ab.tries) {
                    Ok(pair) => pairs.push(pair),
                    Err(problem) => {
                        eprintln!("atomix: error: {problem}");
                        return Ok(EXIT_USAGE);
                    }
                }
            }
            update(target, &board, &write, &mut |env: &mut Env| {
                for (k, v) in &pairs {
                    env.set(k, v)?;
                }
                Ok(())
            })
        }
        EnvAction::MarkGood { slot, write } => {
            let tries = board.ab.tries;
            update(target, &board, &write, &mut |env: &mut Env| {
                atomix_board::env::mark_good(env, slot, tries)
            })
        }
        EnvAction::Rauc(cmd) => rauc(target, &board, cmd),
    }
}

/// One call of RAUC's custom backend protocol: answers on stdout, nothing else there.
fn rauc(target: &Path, board: &Board, cmd: RaucCmd) -> Result<u8> {
    use atomix_board::env::{is_good, mark_bad, mark_good, set_primary};
    let tries = board.ab.tries;
    let read = || bootenv::read(target, board);
    let write = |change: &mut dyn FnMut(&mut Env) -> Result<(), atomix_board::env::EnvError>| {
        match bootenv::update(target, board, Base::Saved, fat_time()?, change) {
            Ok(_) => Ok(0),
            Err(e) => Ok(failed(&e)),
        }
    };
    match cmd {
        RaucCmd::GetPrimary => match read() {
            Ok(state) => match state.ab.next {
                Some(slot) => {
                    println!("{slot}");
                    Ok(0)
                }
                None => {
                    eprintln!("atomix: error: no slot in BOOT_ORDER has tries left");
                    Ok(EXIT_FAILED)
                }
            },
            Err(e) => Ok(failed(&e)),
        },
        RaucCmd::GetState { slot } => match read() {
            Ok(state) => {
                println!(
                    "{}",
                    if is_good(&state.ab, slot) {
                        "good"
                    } else {
                        "bad"
                    }
                );
                Ok(0)
            }
            Err(e) => Ok(failed(&e)),
        },
        RaucCmd::SetPrimary { slot } => write(&mut |env| set_primary(env, slot, tries)),
        RaucCmd::SetState { slot, state } => write(&mut |env| match state {
            RaucState::Good => mark_good(env, slot, tries),
            RaucState::Bad => mark_bad(env, slot, tries),
        }),
        RaucCmd::GetCurrent => {
            let cmdline = std::fs::read_to_string("/proc/cmdline")?;
            match booted_slot(&cmdline) {
                Some(slot) => {
                    println!("{slot}");
                    Ok(0)
                }
                None => {
                    eprintln!("atomix: error: /proc/cmdline has no rauc.slot=boot.0|boot.1");
                    Ok(EXIT_FAILED)
                }
            }
        }
    }
}

/// The slot `rauc.slot=` names on a kernel command line (boot.scr passes boot.0 or boot.1).
fn booted_slot(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("rauc.slot="))
        .and_then(|value| value.parse().ok())
}

fn update(
    target: &Path,
    board: &Board,
    write: &WriteOpts,
    change: &mut dyn FnMut(&mut Env) -> Result<(), atomix_board::env::EnvError>,
) -> Result<u8> {
    let base = if write.from_default {
        Base::BuiltinDefault
    } else {
        Base::Saved
    };
    match bootenv::update(target, board, base, fat_time()?, change) {
        Ok(updated) => {
            if write.json {
                print_json(&updated)?;
            } else {
                match &updated.started_from {
                    Source::BuiltinDefault {
                        found_in: Some(from),
                        ..
                    } => println!(
                        "# started from U-Boot's built-in default environment ({} variables, \
                         found in {from})",
                        updated.state.env.len()
                    ),
                    Source::NoStateFile => {
                        println!("# started from an empty state file (boot.scr's defaults)")
                    }
                    _ => {}
                }
                print_state(&updated.state);
            }
            Ok(0)
        }
        Err(e) => Ok(failed(&e)),
    }
}

/// Prints the error chain (and what to do about a damaged environment); exit code 1.
fn failed(e: &BootEnvError) -> u8 {
    atomix_errchain::eprint_report("atomix", e);
    if matches!(
        e,
        BootEnvError::Crc { .. }
            | BootEnvError::Decode { .. }
            | BootEnvError::DecodeStateFile { .. }
    ) {
        eprintln!(
            "atomix: set and mark-good refuse to build on it; --from-default starts from U-Boot's \
             built-in default instead (the saved variables are lost)"
        );
    }
    EXIT_FAILED
}

/// `KEY=VALUE` checked: a name U-Boot can hold, a value without NUL or newline, and the A/B
/// variables in their ranges. An empty value deletes.
fn parse_assignment(item: &str, tries: u32) -> Result<(String, String), String> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| format!("{item:?}: expected KEY=VALUE (KEY= deletes KEY)"))?;
    Env::new()
        .set(key, value)
        .map_err(|e| format!("{item:?}: {e}"))?;
    if value.is_empty() {
        return Ok((key.to_owned(), String::new()));
    }
    if key == "BOOT_ORDER" {
        let mut seen = Vec::new();
        for word in value.split_whitespace() {
            let slot = match word {
                "A" => Slot::A,
                "B" => Slot::B,
                _ => return Err(format!("BOOT_ORDER={value:?}: slots are A and B")),
            };
            if seen.contains(&slot) {
                return Err(format!("BOOT_ORDER={value:?}: {word} is named twice"));
            }
            seen.push(slot);
        }
        if seen.is_empty() {
            return Err(format!("BOOT_ORDER={value:?}: name at least one slot"));
        }
        return Ok((
            key.to_owned(),
            seen.iter().map(|s| s.name()).collect::<Vec<_>>().join(" "),
        ));
    }
    if Slot::ALL.iter().any(|s| s.left_var() == key) {
        let ok = value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u32>().is_ok_and(|n| n <= tries);
        if !ok {
            return Err(format!(
                "{key}={value:?}: expected a number of tries from 0 to {tries} (the board's tries)"
            ));
        }
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// FAT timestamps of a write: SOURCE_DATE_EPOCH when set, else now.
pub fn fat_time() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => crate::epoch_from_env(),
        _ => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())),
    }
}

fn print_state(state: &AbState) {
    println!("# {}", state.summary());
    for (k, v) in state.env.iter() {
        println!("{k}={v}");
    }
    println!("{}", ab_line(&state.ab, state.tries));
}

/// The A/B view on one line, as boot.scr will act on it.
pub fn ab_line(view: &AbView, tries: u32) -> String {
    let order = view
        .order
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" ");
    let order = match &view.order_raw {
        Some(_) => format!("order {order}"),
        None => format!("order {order} (BOOT_ORDER unset: the default)"),
    };
    let left = view
        .left
        .iter()
        .map(|(slot, n)| format!("{slot} {n} of {tries} tries left"))
        .collect::<Vec<_>>()
        .join(", ");
    let next = match view.next {
        Some(slot) => format!("next boot: slot {slot}"),
        None => format!(
            "next boot: no slot has tries left, so boot.scr resets every counter to {tries} and \
             resets the board"
        ),
    };
    format!("# A/B: {order}; {left}; {next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_slot_comes_from_rauc_slot() {
        assert_eq!(
            booted_slot("console=ttyAMA0 atomixos.lowerdev=/dev/vda4 rauc.slot=boot.1 panic=-1\n"),
            Some(Slot::B)
        );
        assert_eq!(booted_slot("rauc.slot=boot.0"), Some(Slot::A));
        assert_eq!(booted_slot("rauc.slot=boot.7"), None);
        assert_eq!(booted_slot("console=ttyAMA0"), None);
    }

    #[test]
    fn assignments_are_validated() {
        assert_eq!(
            parse_assignment("bootdelay=0", 3),
            Ok(("bootdelay".into(), "0".into()))
        );
        assert_eq!(
            parse_assignment("BOOT_ORDER=B  A", 3),
            Ok(("BOOT_ORDER".into(), "B A".into()))
        );
        assert_eq!(
            parse_assignment("BOOT_A_LEFT=", 3),
            Ok(("BOOT_A_LEFT".into(), String::new()))
        );
        assert_eq!(parse_assignment("x=a=b", 3), Ok(("x".into(), "a=b".into())));
        for bad in [
            "novalue",
            "=1",
            "a b=1",
            "BOOT_ORDER=A C",
            "BOOT_ORDER=A A",
            "BOOT_B_LEFT=4",
            "BOOT_B_LEFT=-1",
            "BOOT_B_LEFT=two",
        ] {
            assert!(parse_assignment(bad, 3).is_err(), "{bad}");
        }
    }
}
