//! A conversation with a booted AtomixOS root filesystem over its serial console, where the
//! qemu-virt board logs root in (`[rootfs] serial-autologin`): QEMU runs on its own thread
//! ([`atomix_qemu::run_interactive`]), the test types shell commands and reads what they print,
//! and checks the guest from the host in between (its forwarded ports) while it stays up.
//!
//! Every command runs as `{ CMD } </dev/null 2>&1 | cat` (with `pipefail`) between two marker
//! lines, so its output and exit status are told apart from the rest of the console, and it
//! writes to a pipe, not the terminal (no colours, no pager); the markers are typed split by
//! quotes, so the terminal's echo of a command never looks like its output. Dropping a
//! [`Guest`] stops QEMU and waits for it to be gone, on every path including a failed
//! assertion.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use atomix_qemu::{Outcome, QemuConfig, QemuError};

/// What agetty prints when it logs a user in by itself.
const AUTOLOGIN: &str = "(automatic login)";

/// What went wrong talking to the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The console did not show what was waited for in time.
    #[error("{boot}: no `{waited_for}` on the console within {timeout:?} (console: {log})")]
    Timeout {
        /// The boot's name.
        boot: String,
        /// What was waited for.
        waited_for: String,
        /// How long.
        timeout: Duration,
        /// The console log.
        log: String,
    },
    /// QEMU ended while the test still waited for the guest.
    #[error("{boot}: QEMU ended while waiting for `{waited_for}` (console: {log})")]
    Ended {
        /// The boot's name.
        boot: String,
        /// What was waited for.
        waited_for: String,
        /// The console log.
        log: String,
    },
    /// QEMU could not be run at all.
    #[error("{boot}: cannot run QEMU")]
    Qemu {
        /// The boot's name.
        boot: String,
        /// Why.
        #[source]
        source: QemuError,
    },
}

/// What one shell command printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The command's exit status.
    pub status: i32,
    /// Its output lines (stdout and stderr, interleaved as the console showed them).
    pub lines: Vec<String>,
}

impl Shell {
    /// The output as one string, lines joined by `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A booted guest with a root shell on its console.
#[derive(Debug)]
pub struct Guest {
    name: String,
    log: PathBuf,
    keys: Option<Sender<String>>,
    lines: Receiver<String>,
    runner: Option<JoinHandle<Result<Outcome, QemuError>>>,
    /// Every console line read so far.
    pub console: Vec<String>,
    commands: u32,
}

impl Guest {
    /// Starts QEMU with `cfg` (which should have a console log) on its own thread.
    pub fn boot(name: &str, cfg: QemuConfig) -> Self {
        let log = cfg.console_log.clone().unwrap_or_default();
        let (keys, input) = mpsc::channel::<String>();
        let (lines_out, lines) = mpsc::channel::<String>();
        let runner = thread::spawn(move || {
            atomix_qemu::run_interactive(&cfg, &input, &mut |line| {
                // The test may have stopped listening; QEMU still runs to its end.
                let _ = lines_out.send(line.to_owned());
            })
        });
        Self {
            name: name.to_owned(),
            log,
            keys: Some(keys),
            lines,
            runner: Some(runner),
            console: Vec::new(),
            commands: 0,
        }
    }

    /// The console log of this boot.
    pub fn log(&self) -> String {
        self.log.display().to_string()
    }

    /// Waits for a console line that contains `text`; returns it.
    ///
    /// # Errors
    /// The deadline passed, or QEMU ended first.
    pub fn wait_line(&mut self, text: &str, timeout: Duration) -> Result<String, GuestError> {
        self.wait_for(text, timeout, |line| line.contains(text))
    }

    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.console.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(GuestError::Timeout {
                        boot: self.name.clone(),
                        waited_for: what.to_owned(),
                        timeout,
                        log: self.log(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(GuestError::Ended {
                        boot: self.name.clone(),
                        waited_for: what.to_owned(),
                        log: self.log(),
                    });
                }
            }
        }
    }

    fn type_line(&self, text: &str) {
        if let Some(keys) = &self.keys {
            // A closed runner shows up as Ended at the next wait.
            let _ = keys.send(text.to_owned());
        }
    }

    /// Waits for agetty's automatic root login on the console and for the shell it starts,
    /// then makes that a plain shell for scripting (no echo, no prompt, `pipefail`, only
    /// emergency kernel messages on the console). Nothing is typed before the login: U-Boot
    /// would take it as an interrupted autoboot. The shell is asked every few seconds, since
    /// what is typed before it runs may be lost.
    ///
    /// # Errors
    /// No login or no shell in time.
    pub fn shell(&mut self, timeout: Duration) -> Result<(), GuestError> {
        let deadline = Instant::now() + timeout;
        self.wait_line(AUTOLOGIN, timeout)?;
        loop {
            self.type_line(
                "stty -echo; export PS1= PS2= TERM=dumb; set -o pipefail; dmesg -n 1; \
                 echo @@SHELL-\"READY\"",
            );
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait_for("the root shell", left.min(Duration::from_secs(5)), |l| {
                l.trim_end() == "@@SHELL-READY"
            }) {
                Ok(_) => return Ok(()),
                Err(GuestError::Timeout { .. }) if Instant::now() < deadline => continue,
                Err(e) => {
                    return Err(match e {
                        GuestError::Timeout { .. } => GuestError::Timeout {
                            boot: self.name.clone(),
                            waited_for: "a root shell".into(),
                            timeout,
                            log: self.log(),
                        },
                        other => other,
                    });
                }
            }
        }
    }

    /// Runs `command` (one or more lines of POSIX shell) in the root shell; returns its output
    /// and exit status. Its stdin is /dev/null.
    ///
    /// # Errors
    /// It did not finish in time, or QEMU ended.
    pub fn sh(&mut self, command: &str, timeout: Duration) -> Result<Shell, GuestError> {
        self.commands += 1;
        let n = self.commands;
        let begin = format!("@@BEGIN-{n}");
        let end = format!("@@END-{n} ");
        // The end marker starts on a line of its own even after output without a newline.
        self.type_line(&format!(
            "echo @@BEGIN-\"{n}\"; {{\n{command}\n}} </dev/null 2>&1 | cat; printf '\\n@@END-%s %s\\n' \"{n}\" $?"
        ));
        self.wait_for(&begin, timeout, |l| l.trim_end() == begin)?;
        let mut lines = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.wait_for(&format!("the end of `{command}`"), left, |_| true)?;
            if let Some(status) = line.strip_prefix(&end) {
                let status = status.trim().parse().unwrap_or(-1);
                // The newline printed before the marker, when the output ended in one.
                if lines.last().is_some_and(String::is_empty) {
                    lines.pop();
                }
                return Ok(Shell { status, lines });
            }
            // A service's output forwarded to the console (StandardOutput=journal+console)
            // lands between a command's lines; it is the console's, not the command's.
            if !is_forwarded_console_line(&line) {
                lines.push(line);
            }
        }
    }

    /// Powers the guest off (`systemctl poweroff`) and waits for QEMU to end.
    ///
    /// # Errors
    /// QEMU could not be run, or it did not end in time.
    pub fn power_off(mut self, timeout: Duration) -> Result<Outcome, GuestError> {
        self.type_line("systemctl poweroff");
        let deadline = Instant::now() + timeout;
        while let Some(runner) = &self.runner {
            if runner.is_finished() {
                break;
            }
            if Instant::now() > deadline {
                return Err(GuestError::Timeout {
                    boot: self.name.clone(),
                    waited_for: "power-off".into(),
                    timeout,
                    log: self.log(),
                });
            }
            while let Ok(line) = self.lines.try_recv() {
                self.console.push(line);
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.keys = None;
        match self.runner.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map_err(|source| GuestError::Qemu {
                boot: self.name.clone(),
                source,
            }),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(GuestError::Ended {
                boot: self.name.clone(),
                waited_for: "power-off".into(),
                log: self.log(),
            }),
        }
    }
}

/// Whether `line` is journald's console forwarding of a service's output:
/// `[   34.236966] atomix-activate[268]: …` (the kernel's clock, the identifier, the pid). A
/// `journalctl -o short-monotonic` line differs: the host name comes before the identifier.
fn is_forwarded_console_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, rest)) = rest.split_once("] ") else {
        return false;
    };
    let stamp_ok = stamp.trim_start().split_once('.').is_some_and(|(s, us)| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && us.len() == 6
            && us.bytes().all(|b| b.is_ascii_digit())
    });
    let Some((ident, rest)) = rest.split_once('[') else {
        return false;
    };
    let ident_ok = !ident.is_empty() && !ident.contains(' ');
    let pid_ok = rest
        .split_once("]: ")
        .is_some_and(|(pid, _)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    stamp_ok && ident_ok && pid_ok
}

impl Drop for Guest {
    fn drop(&mut self) {
        // Hanging up stops QEMU; the join waits until it is gone.
        self.keys = None;
        if let Some(runner) = self.runner.take() {
            let _ = runner.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_service_output_is_told_from_command_output() {
        for forwarded in [
            "[   34.236966] atomix-activate[268]: service-restart: probe.service (rootful) done",
            "[ 1234.000001] atomix-first-boot[1]: x",
        ] {
            assert!(is_forwarded_console_line(forwarded), "{forwarded}");
        }
        for output in [
            "running",
            "[   51.222579] atomixos atomix-first-boot[276]: marked the booted slot boot.0 good",
            "[   34.2369] atomix-activate[268]: short stamp",
            "[x] a[1]: y",
            "[   34.236966] atomix-activate: no pid",
        ] {
            assert!(!is_forwarded_console_line(output), "{output}");
        }
    }
}
