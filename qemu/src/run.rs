//! One QEMU run: spawn, watch the console, answer the script, decide the ending, clean up.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use crate::command::{args, command_line_string};
use crate::judge::{Scanner, is_panic_end, line_ending};
use crate::process::{Event, QemuProcess, Stream, spawn_reader};
use crate::{Ending, Outcome, QemuConfig, QemuError};

/// How often the run loop checks whether QEMU exited when the console is quiet.
const POLL: Duration = Duration::from_millis(20);
/// After a power-off, reset or panic marker: how long QEMU may take to exit by itself.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// After the closing line of a panic report (the guest hangs with `panic=0`).
const PANIC_END_GRACE: Duration = Duration::from_millis(300);
/// Between SIGTERM and SIGKILL when the run stops QEMU.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long to wait for the pipes to run dry once QEMU is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Boots `cfg` and watches it until it ends; `on_line` gets each console line as it arrives
/// (without the line ending; a last line without a newline comes at the end).
///
/// The run ends at the first of: a power-off / reset / panic marker on the console (QEMU then
/// gets a few seconds to exit by itself), a `stop_on` pattern, QEMU exiting, or the deadline
/// `cfg.timeout` after the spawn. QEMU is then stopped (SIGTERM to its process group, SIGKILL
/// after a second) and reaped before this returns, on every path including errors and a panic
/// in `on_line`.
///
/// # Errors
/// Only for failing to run QEMU at all (bad config, missing input, spawn, console log, wait);
/// how the guest fared is in [`Outcome::ending`].
pub fn run(cfg: &QemuConfig, on_line: &mut dyn FnMut(&str)) -> Result<Outcome, QemuError> {
    run_with(cfg, None, on_line)
}

/// [`run`] with a keyboard: each line received on `input` is typed into the guest's serial
/// console (with a newline) as soon as it arrives, whatever the console is doing, after the
/// expect script of [`QemuConfig::script`] has had its turn. For a conversation with the guest
/// from another thread: that thread sends commands and reads the lines `on_line` passes on.
/// Closing `input` (dropping every sender) ends the run with [`crate::Ending::Stopped`] and
/// stops QEMU, so a caller that gives up (or panics) never leaves a guest running.
///
/// # Errors
/// As [`run`].
pub fn run_interactive(
    cfg: &QemuConfig,
    input: &Receiver<String>,
    on_line: &mut dyn FnMut(&str),
) -> Result<Outcome, QemuError> {
    run_with(cfg, Some(input), on_line)
}

fn run_with(
    cfg: &QemuConfig,
    input: Option<&Receiver<String>>,
    on_line: &mut dyn FnMut(&str),
) -> Result<Outcome, QemuError> {
    validate(cfg)?;
    let mut log = match &cfg.console_log {
        Some(path) => Some(ConsoleLog::create(path)?),
        None => None,
    };
    if let Some(log) = &mut log {
        log.note(&format!("command: {}", command_line_string(cfg)))?;
    }

    let mut command = Command::new(&cfg.binary);
    command.args(args(cfg));
    let start = Instant::now();
    let mut qemu = QemuProcess::spawn(&mut command).map_err(|source| QemuError::Spawn {
        binary: cfg.binary.clone(),
        source,
    })?;
    let pid = qemu.id();
    let wait_error = |source| QemuError::Wait { pid, source };
    let (stdin, stdout, stderr) = qemu.take_pipes();
    let (events, received) = mpsc::channel();
    if let Some(stdout) = stdout {
        spawn_reader(Stream::Stdout, stdout, events.clone())
            .map_err(|source| QemuError::ReaderThread { source })?;
    }
    if let Some(stderr) = stderr {
        spawn_reader(Stream::Stderr, stderr, events.clone())
            .map_err(|source| QemuError::ReaderThread { source })?;
    }
    drop(events);

    let mut session = Session::new(cfg, stdin, log);
    session.run_script();
    let deadline = start + cfg.timeout;

    // Watch until QEMU exits, the deadline passes, or a decided ending's grace runs out.
    let exited_by_itself = loop {
        if qemu.has_exited().map_err(wait_error)? {
            break true;
        }
        let stop_at = match &session.decided {
            Some(decided) => (decided.at + decided.grace).min(deadline),
            None => deadline,
        };
        let now = Instant::now();
        if now >= stop_at {
            if session.decided.is_none() {
                log::info!("qemu (pid {pid}): deadline of {:?} passed", cfg.timeout);
                session.decide(Ending::Timeout, Duration::ZERO);
            }
            break false;
        }
        if let Some(input) = input {
            loop {
                match input.try_recv() {
                    Ok(text) => {
                        session.type_line(&text);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        session.decide(Ending::Stopped, Duration::ZERO);
                        break;
                    }
                }
            }
        }
        match received.recv_timeout(POLL.min(stop_at - now)) {
            Ok(event) => {
                session.handle(event, on_line)?;
                while let Ok(event) = received.try_recv() {
                    session.handle(event, on_line)?;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Both pipes closed but QEMU still runs: keep polling for its exit.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(POLL.min(stop_at - now)),
        }
    };

    let status = if exited_by_itself {
        qemu.reap()
    } else {
        qemu.terminate(TERM_GRACE)
    }
    .map_err(wait_error)?;
    let wall = start.elapsed();
    // Closed only now: a guest reading its console must not see end of file before it is
    // stopped.
    session.stdin = None;

    // QEMU is gone; its last output may still sit in the pipes.
    let drain_until = Instant::now() + DRAIN_GRACE;
    while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
        match received.recv_timeout(left) {
            Ok(event) => session.handle(event, on_line)?,
            Err(_) => break,
        }
    }
    session.finish(status, wall, on_line)
}

/// Rejects configs that cannot work before anything is started.
fn validate(cfg: &QemuConfig) -> Result<(), QemuError> {
    if cfg.kernel.is_none() && cfg.bios.is_none() {
        return Err(QemuError::NothingToBoot);
    }
    let inputs = [
        ("kernel", cfg.kernel.as_ref()),
        ("initramfs", cfg.initramfs.as_ref()),
        ("bios", cfg.bios.as_ref()),
        ("flash bank 1", cfg.flash_bank1.as_ref()),
    ]
    .into_iter()
    .filter_map(|(what, path)| path.map(|path| (what, path)))
    .chain(cfg.disks.iter().map(|disk| ("disk", disk)));
    for (what, path) in inputs {
        if !path.exists() {
            return Err(QemuError::MissingInput {
                what,
                path: path.clone(),
            });
        }
    }
    if let Some(index) = cfg.stop_on.iter().position(String::is_empty) {
        return Err(QemuError::EmptyStopPattern { index });
    }
    if let Some(arg) = cfg.extra_args.iter().find(|arg| is_network_option(arg)) {
        return Err(QemuError::NetworkInExtraArgs { arg: arg.clone() });
    }
    Ok(())
}

/// Whether `arg` is a QEMU network option, in any of the spellings QEMU accepts (`-netdev`,
/// `--netdev`, `-netdev=...`).
fn is_network_option(arg: &str) -> bool {
    let name = arg.split('=').next().unwrap_or(arg);
    let name = format!("-{}", name.trim_start_matches('-'));
    crate::net::NETWORK_OPTIONS.contains(&name.as_str())
}

/// An ending that has been decided, and how long QEMU may still run after it.
#[derive(Debug)]
struct Decided {
    ending: Ending,
    at: Instant,
    grace: Duration,
}

/// The console state of one run.
struct Session<'c> {
    cfg: &'c QemuConfig,
    stdin: Option<ChildStdin>,
    log: Option<ConsoleLog>,
    /// Every stdout byte so far (patterns are matched here, across line boundaries).
    stream: Vec<u8>,
    /// The stdout line being assembled.
    line: Vec<u8>,
    console: String,
    /// The stderr line being assembled.
    err_line: Vec<u8>,
    stderr: String,
    stop_scanners: Vec<Scanner>,
    step: usize,
    step_scanner: Scanner,
    decided: Option<Decided>,
}

impl<'c> Session<'c> {
    fn new(cfg: &'c QemuConfig, stdin: Option<ChildStdin>, log: Option<ConsoleLog>) -> Self {
        Self {
            cfg,
            stdin,
            log,
            stream: Vec::new(),
            line: Vec::new(),
            console: String::new(),
            err_line: Vec::new(),
            stderr: String::new(),
            stop_scanners: cfg.stop_on.iter().map(|_| Scanner::default()).collect(),
            step: 0,
            step_scanner: Scanner::default(),
            decided: None,
        }
    }

    fn handle(&mut self, event: Event, on_line: &mut dyn FnMut(&str)) -> Result<(), QemuError> {
        match event {
            Event::Data(Stream::Stdout, bytes) => {
                for piece in bytes.split_inclusive(|&byte| byte == b'\n') {
                    self.stream.extend_from_slice(piece);
                    self.line.extend_from_slice(piece);
                    self.scan_stop_patterns();
                    self.run_script();
                    if piece.ends_with(b"\n") {
                        self.finish_line(on_line)?;
                    }
                }
            }
            Event::Data(Stream::Stderr, bytes) => {
                for piece in bytes.split_inclusive(|&byte| byte == b'\n') {
                    self.err_line.extend_from_slice(piece);
                    if piece.ends_with(b"\n") {
                        self.finish_err_line()?;
                    }
                }
            }
            Event::Closed(stream) => log::debug!("qemu closed its {stream:?}"),
        }
        Ok(())
    }

    fn decide(&mut self, ending: Ending, grace: Duration) {
        if self.decided.is_none() {
            log::debug!("run ending decided: {ending}");
            self.decided = Some(Decided {
                ending,
                at: Instant::now(),
                grace,
            });
        }
    }

    fn scan_stop_patterns(&mut self) {
        if self.decided.is_some() {
            return;
        }
        let matched = self
            .cfg
            .stop_on
            .iter()
            .zip(&mut self.stop_scanners)
            .find_map(|(pattern, scanner)| {
                scanner
                    .next_match(&self.stream, pattern.as_bytes())
                    .map(|_| pattern.clone())
            });
        if let Some(pattern) = matched {
            self.decide(Ending::Matched(pattern), Duration::ZERO);
        }
    }

    /// Sends the answers whose prompts have appeared.
    fn run_script(&mut self) {
        while let Some(step) = self.cfg.script.get(self.step) {
            if self.decided.is_some() || self.stdin.is_none() {
                return;
            }
            if self
                .step_scanner
                .next_match(&self.stream, step.wait_for.as_bytes())
                .is_none()
            {
                return;
            }
            log::debug!(
                "console showed {:?}; sending {:?}",
                step.wait_for,
                step.send
            );
            if !self.type_line(&step.send) {
                return;
            }
            self.step += 1;
        }
    }

    /// Types `text` and a newline into the guest console. False once QEMU takes no more
    /// input (it is going away; its exit decides the ending).
    fn type_line(&mut self, text: &str) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        match stdin.write_all(&bytes).and_then(|()| stdin.flush()) {
            Ok(()) => true,
            Err(err) => {
                log::warn!("cannot type into the qemu console: {err}");
                self.stdin = None;
                false
            }
        }
    }

    fn finish_line(&mut self, on_line: &mut dyn FnMut(&str)) -> Result<(), QemuError> {
        let text = line_text(&std::mem::take(&mut self.line));
        self.console.push_str(&text);
        self.console.push('\n');
        if let Some(log) = &mut self.log {
            log.line(&text)?;
        }
        if let Some(ending) = line_ending(&text) {
            match ending {
                Ending::Reset | Ending::Panic { .. } if !self.cfg.no_reboot => {
                    log::info!("guest {ending}; it restarts (no_reboot is off)");
                }
                ending => self.decide(ending, EXIT_GRACE),
            }
        } else if is_panic_end(&text)
            && let Some(decided) = &mut self.decided
            && matches!(decided.ending, Ending::Panic { .. })
        {
            decided.grace = decided.grace.min(decided.at.elapsed() + PANIC_END_GRACE);
        }
        on_line(&text);
        Ok(())
    }

    fn finish_err_line(&mut self) -> Result<(), QemuError> {
        let text = line_text(&std::mem::take(&mut self.err_line));
        log::warn!("qemu: {text}");
        self.stderr.push_str(&text);
        self.stderr.push('\n');
        if let Some(log) = &mut self.log {
            log.note(&format!("qemu stderr: {text}"))?;
        }
        Ok(())
    }

    fn finish(
        mut self,
        status: ExitStatus,
        wall: Duration,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Outcome, QemuError> {
        if !self.line.is_empty() {
            self.finish_line(on_line)?;
        }
        if !self.err_line.is_empty() {
            self.finish_err_line()?;
        }
        let ending = match self.decided {
            Some(decided) => decided.ending,
            None => Ending::Exited {
                code: status.code(),
            },
        };
        log::info!("qemu run ended: {ending} after {:.2} s", wall.as_secs_f64());
        if let Some(log) = &mut self.log {
            log.note(&format!(
                "ending: {ending}; wall {:.2} s; qemu {status}",
                wall.as_secs_f64()
            ))?;
        }
        Ok(Outcome {
            ending,
            console: self.console,
            stderr: self.stderr,
            wall,
        })
    }
}

/// A console line as text: without `\n` and trailing `\r`, invalid UTF-8 replaced.
fn line_text(bytes: &[u8]) -> String {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The console log file, written line by line.
struct ConsoleLog {
    path: PathBuf,
    file: File,
}

impl ConsoleLog {
    fn create(path: &Path) -> Result<Self, QemuError> {
        let error = |source| QemuError::ConsoleLog {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs::create_dir_all(parent).map_err(error)?;
        }
        let file = File::create(path).map_err(error)?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    fn line(&mut self, text: &str) -> Result<(), QemuError> {
        writeln!(self.file, "{text}").map_err(|source| QemuError::ConsoleLog {
            path: self.path.clone(),
            source,
        })
    }

    /// A line of the runner's own, marked so it cannot be mistaken for console output.
    fn note(&mut self, text: &str) -> Result<(), QemuError> {
        self.line(&format!("### atomix-qemu: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_text_strips_crlf_and_replaces_bad_utf8() {
        assert_eq!(line_text(b"abc\r\n"), "abc");
        assert_eq!(line_text(b"abc\r\r\n"), "abc");
        assert_eq!(line_text(b"a\rb"), "a\rb");
        assert_eq!(line_text(b"caf\xff\n"), "caf\u{fffd}");
    }

    #[test]
    fn validate_names_what_is_missing() {
        let cfg = QemuConfig::default();
        assert!(matches!(validate(&cfg), Err(QemuError::NothingToBoot)));
        let cfg = QemuConfig {
            kernel: Some("/nonexistent/Image".into()),
            ..QemuConfig::default()
        };
        let err = validate(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel `/nonexistent/Image` does not exist"
        );
        let cfg = QemuConfig {
            bios: Some("/".into()),
            disks: vec!["/nonexistent/disk.img".into()],
            ..QemuConfig::default()
        };
        assert!(matches!(
            validate(&cfg),
            Err(QemuError::MissingInput { what: "disk", .. })
        ));
        let cfg = QemuConfig {
            bios: Some("/".into()),
            stop_on: vec!["x".into(), String::new()],
            ..QemuConfig::default()
        };
        assert!(matches!(
            validate(&cfg),
            Err(QemuError::EmptyStopPattern { index: 1 })
        ));
    }

    #[test]
    fn network_options_in_extra_args_are_refused() {
        for arg in [
            "-netdev",
            "--netdev",
            "-nic",
            "--nic=user",
            "-net",
            "-netdev=tap,id=x",
        ] {
            let cfg = QemuConfig {
                bios: Some("/".into()),
                extra_args: vec!["-s".into(), arg.into(), "user,id=n".into()],
                ..QemuConfig::default()
            };
            assert!(
                matches!(validate(&cfg), Err(QemuError::NetworkInExtraArgs { arg: a }) if a == arg),
                "{arg}"
            );
        }
        let cfg = QemuConfig {
            bios: Some("/".into()),
            extra_args: vec![
                "-device".into(),
                "virtio-rng-pci".into(),
                "-network-x".into(),
            ],
            ..QemuConfig::default()
        };
        assert!(validate(&cfg).is_ok());
    }
}
