//! The QEMU child process: its own process group, killed and reaped on every path, and the
//! threads that read its stdout and stderr.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};

/// Which pipe a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The guest serial console.
    Stdout,
    /// QEMU's own messages.
    Stderr,
}

/// What a reader thread reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// Bytes read from a pipe.
    Data(Stream, Vec<u8>),
    /// The pipe reached end of file (or failed); nothing more will come from it.
    Closed(Stream),
}

/// A running QEMU. Dropping it before [`QemuProcess::reap`] kills its whole process group with
/// SIGKILL and reaps it, so no path (error, panic in a callback) leaves QEMU behind.
#[derive(Debug)]
pub(crate) struct QemuProcess {
    child: Child,
    /// The process group QEMU leads (its pid); `None` only if the pid does not fit a `Pid`.
    group: Option<Pid>,
    status: Option<ExitStatus>,
}

impl QemuProcess {
    /// Spawns `command` with piped stdio as the leader of a new process group.
    ///
    /// `ETXTBSY` is retried a few times: a program file that was just written (a wrapper script,
    /// a freshly built binary) can still be open for writing in a child that another thread of
    /// this process forked and has not yet exec'd (the close-on-exec window).
    pub(crate) fn spawn(command: &mut Command) -> io::Result<Self> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut attempts = 0;
        let child = loop {
            match command.spawn() {
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                        && attempts < 20 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                result => break result?,
            }
        };
        let group = Some(Pid::from_child(&child));
        log::debug!("qemu started, pid {}", child.id());
        Ok(Self {
            child,
            group,
            status: None,
        })
    }

    /// QEMU's pid.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Takes the three pipes (once).
    pub(crate) fn take_pipes(
        &mut self,
    ) -> (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>) {
        (
            self.child.stdin.take(),
            self.child.stdout.take(),
            self.child.stderr.take(),
        )
    }

    /// Whether QEMU has exited. It is not reaped, so its process group stays valid for
    /// [`QemuProcess::reap`] to sweep.
    pub(crate) fn has_exited(&self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        let Some(pid) = self.group else {
            return Ok(false);
        };
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        Ok(waitid(WaitId::Pid(pid), options)?.is_some())
    }

    /// Sends SIGTERM to the group, waits up to `grace` for QEMU to exit, then reaps it.
    pub(crate) fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.signal_group(Signal::TERM);
        let until = Instant::now() + grace;
        while !self.has_exited()? && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        self.reap()
    }

    /// Kills whatever is left in QEMU's process group (QEMU itself if it still runs, helpers it
    /// forked), then reaps QEMU.
    pub(crate) fn reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal_group(Signal::KILL);
        let status = self.child.wait()?;
        log::debug!("qemu (pid {}) gone: {status}", self.child.id());
        self.status = Some(status);
        Ok(status)
    }

    /// Signals QEMU's process group. Only called while QEMU is not reaped, so the group id
    /// cannot have been reused. A group that is already empty is not an error.
    fn signal_group(&self, signal: Signal) {
        if let Some(group) = self.group
            && let Err(err) = kill_process_group(group, signal)
            && err != rustix::io::Errno::SRCH
        {
            log::warn!("cannot signal qemu's process group {group:?}: {err}");
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.signal_group(Signal::KILL);
            // The group signal covers QEMU; kill() is the fallback when there is no group id.
            if let Err(err) = self.child.kill() {
                log::debug!("kill of qemu (pid {}): {err}", self.child.id());
            }
            if let Err(err) = self.child.wait() {
                log::warn!("cannot reap qemu (pid {}): {err}", self.child.id());
            }
        }
    }
}

/// Starts a thread that forwards everything read from `source` to `events`, then `Closed`.
pub(crate) fn spawn_reader(
    stream: Stream,
    mut source: impl Read + Send + 'static,
    events: Sender<Event>,
) -> io::Result<thread::JoinHandle<()>> {
    let name = match stream {
        Stream::Stdout => "qemu-console",
        Stream::Stderr => "qemu-stderr",
    };
    thread::Builder::new().name(name.into()).spawn(move || {
        let mut buf = vec![0u8; 8192];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if events.send(Event::Data(stream, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    log::warn!("reading qemu's {name}: {err}");
                    break;
                }
            }
        }
        // The receiver may be gone already; then nobody needs to know.
        events.send(Event::Closed(stream)).unwrap_or(());
    })
}
