//! `atomix flash IMAGE TARGET`: write a disk image to a block device (or, with `--to-file`, a
//! regular file) so that the wrong disk cannot be destroyed. Every check and the writing itself
//! are `atomix_flash`'s; this file shows the target, asks, prints progress, turns SIGINT and
//! SIGTERM into the library's cancel flag, and maps outcomes to exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Result;
use atomix_blockdev::size::{Style, human};
use atomix_flash::{
    FailureKind, FlashError, Found, Host, Options, Phase, Plan, Progress, Refusal, Report,
    TargetKind, WriteOptions,
};
use clap::Args;
use serde::Serialize;

use crate::print_json;

/// Exit code: flashed (and verified, unless `--no-verify`).
pub const EXIT_OK: u8 = 0;
/// Exit code: an I/O error; the message says what state the target is in.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage, a missing image or target.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: refused by a safety check, or declined at the prompt; nothing written.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code: the target read back differs from the image.
pub const EXIT_MISMATCH: u8 = 4;
/// Exit code: interrupted (SIGINT/SIGTERM); the message says what state the target is in.
pub const EXIT_INTERRUPTED: u8 = 130;

/// `atomix flash --help`.
pub const ABOUT: &str = "\
Writes IMAGE to TARGET, a whole disk such as /dev/sdb or /dev/mmcblk0 (any path to it works, \
e.g. /dev/disk/by-id/...), then fsyncs and verifies by reading TARGET back past the page cache \
and comparing SHA-256. Every byte is written (holes in a sparse image as zeros), with O_DIRECT.

Refused (exit 3, nothing written): a target that is mounted, holds mounted partitions, is a \
swap or under dm/md; the disk holding /; a target smaller than the image; a read-only one; \
anything but a block device unless --to-file (and with --to-file, anything but a regular \
file); the image itself. TARGET is shown (model, size, by-id names, partitions) and the \
command asks for `yes` unless --yes; without a terminal on stdin it needs --yes. Ctrl-C stops \
after the current 4 MiB chunk, flushes, and says what TARGET holds (a second Ctrl-C exits at \
once).

Exit codes:
  0    flashed and verified (or flashed, with --no-verify)
  1    failed (I/O); the message says what state TARGET is in
  2    bad usage, or IMAGE or TARGET does not exist
  3    refused by a safety check, or declined at the prompt; TARGET is unchanged
  4    verification failed: TARGET reads back differently from IMAGE
  130  interrupted (SIGINT/SIGTERM); the message says what state TARGET is in";

#[derive(Debug, Args)]
pub struct FlashArgs {
    /// Write without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// TARGET is a regular file (created, or truncated and rewritten), not a block device.
    #[arg(long)]
    to_file: bool,
    /// Do not read TARGET back to verify it (the write is still fsynced).
    #[arg(long)]
    no_verify: bool,
    /// Print the final report as JSON on stdout (progress and questions go to stderr).
    #[arg(long)]
    json: bool,
    /// The raw disk image (e.g. from `atomix image build`).
    image: PathBuf,
    /// The block device to write it to (with --to-file: the file).
    target: PathBuf,
}

/// The `--json` report.
#[derive(Serialize)]
struct JsonReport<'a> {
    target: &'a std::path::Path,
    image: &'a std::path::Path,
    bytes: u64,
    seconds: f64,
    mb_per_s: f64,
    verify_seconds: Option<f64>,
    sha256: Option<&'a str>,
    verified: bool,
    direct_io: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: FlashArgs) -> Result<u8> {
    let opts = Options {
        to_file: args.to_file,
        host: Host::real(),
    };
    let plan = match atomix_flash::plan(&args.image, &args.target, &opts) {
        Ok(plan) => plan,
        Err(error) => return Ok(failed(&error)),
    };
    eprint!("{}", describe(&plan));
    if !args.yes
        && let Some(code) = confirm(&plan)?
    {
        return Ok(code);
    }

    // Ctrl-C / SIGTERM: the first sets the flag (the write stops after the current chunk and
    // says what the target holds); a second one exits at once with 130.
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&cancel),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&cancel))?;
    }

    let mut meter = Meter::new(std::io::stderr().is_terminal());
    let write_opts = WriteOptions {
        verify: !args.no_verify,
    };
    let result = atomix_flash::write(&plan, &write_opts, &mut |p| meter.show(p), &cancel);
    meter.finish();
    match result {
        Ok(report) => {
            if args.json {
                print_json(&JsonReport {
                    target: &report.target,
                    image: &report.image,
                    bytes: report.bytes,
                    seconds: report.write_seconds,
                    mb_per_s: report.write_mb_per_s(),
                    verify_seconds: report.verify_seconds,
                    sha256: report.sha256.as_deref(),
                    verified: report.verified,
                    direct_io: report.direct_io,
                })?;
            } else {
                println!("{}", summary(&report));
            }
            Ok(EXIT_OK)
        }
        Err(error) => Ok(failed(&error)),
    }
}

/// Prints `error` (and its causes) and returns its exit code.
fn failed(error: &FlashError) -> u8 {
    let code = exit_code(error);
    match error {
        FlashError::Refused(refusal) => {
            eprintln!("atomix: refused: {refusal}; nothing was written");
            if let Some(hint) = hint(refusal) {
                eprintln!("atomix: {hint}");
            }
        }
        FlashError::Interrupted { .. } => eprintln!("atomix: {error}"),
        _ => atomix_errchain::eprint_report("atomix", error),
    }
    code
}

/// The exit code of a failure.
fn exit_code(error: &FlashError) -> u8 {
    match error.kind() {
        FailureKind::Usage => EXIT_USAGE,
        FailureKind::Refused => EXIT_REFUSED,
        FailureKind::Io => EXIT_FAILED,
        FailureKind::Mismatch => EXIT_MISMATCH,
        FailureKind::Interrupted => EXIT_INTERRUPTED,
    }
}

/// What to do about a refusal, where the CLI has an option for it.
fn hint(refusal: &Refusal) -> Option<&'static str> {
    match refusal {
        Refusal::NotBlockDevice {
            what: Found::RegularFile | Found::Missing,
            ..
        } => Some("to write the image into a file, pass --to-file"),
        Refusal::NotAFile {
            what: Found::BlockDevice,
            ..
        } => Some("--to-file is for files: drop it to flash a block device"),
        Refusal::InUse { .. } | Refusal::Busy { .. } => {
            Some("unmount it (and its partitions) first, or pick another target")
        }
        Refusal::NotBlockDevice { .. }
        | Refusal::NotAFile { .. }
        | Refusal::SameAsImage { .. }
        | Refusal::RootDisk { .. }
        | Refusal::ReadOnly { .. }
        | Refusal::TooSmall { .. } => None,
    }
}

/// The image and the target, as shown before asking.
fn describe(plan: &Plan) -> String {
    let image = &plan.image;
    let target = &plan.target;
    let mut out = format!(
        "image   {}: {} ({} bytes)\n",
        image.path.display(),
        human(image.bytes, Style::Flash),
        image.bytes
    );
    let shown = if target.resolved == target.path {
        target.path.display().to_string()
    } else {
        format!("{} ({})", target.path.display(), target.resolved.display())
    };
    match &target.kind {
        TargetKind::Block(info) => {
            let mut flags = String::new();
            if info.removable {
                flags.push_str(", removable");
            }
            if info.disk != info.name {
                flags.push_str(&format!(", a partition of {}", info.disk));
            }
            out.push_str(&format!(
                "target  {shown}: block device {} ({}), {} ({} bytes){flags}\n",
                info.name,
                info.dev,
                human(target.bytes, Style::Flash),
                target.bytes
            ));
            let model = info.model.as_deref().unwrap_or("unknown");
            match &info.serial {
                Some(serial) => out.push_str(&format!("        model: {model}, serial {serial}\n")),
                None => out.push_str(&format!("        model: {model}\n")),
            }
            let ids = if info.by_id.is_empty() {
                "none".to_owned()
            } else {
                info.by_id.join(", ")
            };
            out.push_str(&format!("        by-id: {ids}\n"));
            let parts: Vec<String> = info
                .partitions
                .iter()
                .map(|p| format!("{} ({})", p.name, human(p.bytes, Style::Flash)))
                .collect();
            let parts = if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            };
            out.push_str(&format!("        partitions: {parts}\n"));
        }
        TargetKind::File => out.push_str(&format!(
            "target  {shown}: regular file of {}, truncated and rewritten\n",
            human(target.bytes, Style::Flash)
        )),
        TargetKind::Missing => {
            out.push_str(&format!("target  {shown}: new regular file\n"));
        }
        TargetKind::Other { what } => out.push_str(&format!("target  {shown}: {what}\n")),
    }
    out
}

/// Asks for `yes` on the terminal. `None` to go on, or the exit code to stop with.
fn confirm(plan: &Plan) -> Result<Option<u8>> {
    let target = plan.target.path.display();
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "atomix: refused: not asking for confirmation, standard input is not a terminal; \
             pass --yes to write {target} anyway; nothing was written"
        );
        return Ok(Some(EXIT_REFUSED));
    }
    let what = if plan.to_file {
        format!("{target} will be overwritten.")
    } else {
        format!("Everything on {target} will be overwritten.")
    };
    eprint!("{what} Type yes to continue: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        return Ok(None);
    }
    eprintln!("atomix: declined; nothing was written to {target}");
    Ok(Some(EXIT_REFUSED))
}

/// The last line after a successful flash.
fn summary(report: &Report) -> String {
    let head = format!(
        "flashed {} to {}: {} in {:.1} s ({:.0} MB/s)",
        report.image.display(),
        report.target.display(),
        human(report.bytes, Style::Flash),
        report.write_seconds,
        report.write_mb_per_s()
    );
    match (report.verify_seconds, &report.sha256) {
        (Some(secs), Some(sha)) if report.verified => {
            format!("{head}; verified: read back in {secs:.1} s, sha256 {sha} matches")
        }
        _ => format!("{head}; not verified (--no-verify)"),
    }
}

/// Progress on stderr: one line rewritten in place on a terminal (5 times a second), a line
/// every 5 seconds otherwise; always a line at the end of each phase.
struct Meter {
    tty: bool,
    last: Option<Instant>,
    open_line: bool,
}

impl Meter {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            last: None,
            open_line: false,
        }
    }

    fn show(&mut self, p: &Progress) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let end = p.done == p.total;
        let due = self.last.is_none_or(|t| t.elapsed() >= every);
        if !(end || due || p.done == 0) {
            return;
        }
        self.last = Some(Instant::now());
        let line = progress_line(p);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if end {
                let _ = writeln!(err);
                self.open_line = false;
            } else {
                self.open_line = true;
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends an unfinished terminal line (after an interruption or error).
    fn finish(&mut self) {
        if self.open_line {
            eprintln!();
            self.open_line = false;
        }
    }
}

fn progress_line(p: &Progress) -> String {
    let pct = if p.total > 0 {
        p.done as f64 * 100.0 / p.total as f64
    } else {
        100.0
    };
    let rate = p.bytes_per_sec();
    let eta = if rate > 0.0 && p.done < p.total {
        format!(", {:.0} s left", (p.total - p.done) as f64 / rate)
    } else {
        String::new()
    };
    let verb = match p.phase {
        Phase::Write => "writing",
        Phase::Verify => "verifying",
    };
    format!(
        "{verb}: {} of {} ({pct:.0}%), {:.0} MB/s{eta}",
        human(p.done, Style::Flash),
        human(p.total, Style::Flash),
        rate / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes = [
            EXIT_OK,
            EXIT_FAILED,
            EXIT_USAGE,
            EXIT_REFUSED,
            EXIT_MISMATCH,
            EXIT_INTERRUPTED,
        ];
        for (i, c) in codes.iter().enumerate() {
            assert!(!codes[..i].contains(c));
            assert!(ABOUT.contains(&format!("\n  {c} ")), "{c} not in --help");
        }
        let refused = FlashError::Refused(Refusal::TooSmall {
            target: "/dev/loop3".into(),
            target_bytes: 100 << 20,
            image_bytes: 1169 << 20,
        });
        assert_eq!(exit_code(&refused), EXIT_REFUSED);
        let missing = FlashError::Image {
            path: "/nope".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(exit_code(&missing), EXIT_USAGE);
        let mismatch = FlashError::Mismatch {
            path: "/dev/x".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(exit_code(&mismatch), EXIT_MISMATCH);
    }

    #[test]
    fn progress_lines() {
        let p = Progress {
            phase: Phase::Write,
            done: 512 << 20,
            total: 1024 << 20,
            elapsed: Duration::from_secs(2),
        };
        let line = progress_line(&p);
        assert!(
            line.starts_with("writing: 512 MiB of 1024 MiB (50%), 268 MB/s"),
            "{line}"
        );
        assert!(line.ends_with(", 2 s left"), "{line}");
        let done = Progress {
            phase: Phase::Verify,
            done: 1024 << 20,
            ..p
        };
        assert_eq!(
            progress_line(&done),
            "verifying: 1024 MiB of 1024 MiB (100%), 537 MB/s"
        );
    }

    #[test]
    fn summaries() {
        let mut r = Report {
            target: "/dev/loop3".into(),
            image: "disk.img".into(),
            bytes: 1 << 30,
            write_seconds: 2.0,
            verify_seconds: Some(1.0),
            sha256: Some("ab".into()),
            verified: true,
            direct_io: true,
        };
        assert_eq!(
            summary(&r),
            "flashed disk.img to /dev/loop3: 1024 MiB in 2.0 s (537 MB/s); verified: read \
             back in 1.0 s, sha256 ab matches"
        );
        r.verified = false;
        r.verify_seconds = None;
        r.sha256 = None;
        assert!(summary(&r).ends_with("; not verified (--no-verify)"));
    }
}
