//! The real [`Systemd`] of the system manager: zbus (blocking API) on the system bus, service
//! `org.freedesktop.systemd1`.
//!
//! A job is tracked race-free: `Subscribe`, open the `JobRemoved` stream, call
//! `RestartUnit(name, "replace")` (or `StopUnit`, `TryRestartUnit`), then wait for the
//! `JobRemoved` whose job path is the one returned. systemd ends every job itself (its
//! `JobTimeoutSec`/`TimeoutStartSec`); the wait is bounded anyway ([`DEFAULT_JOB_TIMEOUT`], or
//! [`DbusSystemd::with_job_timeout`]) so that a lost signal cannot hang an activation. The
//! signals are read on a helper thread that ends at the first signal after the wait is over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use super::systemd::{ActiveState, JobResult, Systemd, SystemdError, SystemdOp};

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    blocking_name = "ManagerProxy"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn try_restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    blocking_name = "UnitProxy"
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
}

/// How long a method call (not the job it starts) may take on the system bus.
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a job is waited for by default (quadlet-sync's `TimeoutStartSec`).
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// The system manager over D-Bus.
#[derive(Debug)]
pub struct DbusSystemd {
    conn: Connection,
    job_timeout: Duration,
    /// `Subscribe` was called on this connection (systemd refuses a second one).
    subscribed: AtomicBool,
}

impl DbusSystemd {
    /// Connects to the system bus; method calls time out after [`METHOD_TIMEOUT`].
    pub fn system() -> Result<Self, SystemdError> {
        let err = |e: zbus::Error| SystemdError::new(SystemdOp::Connect, "", e.to_string());
        let conn = zbus::blocking::connection::Builder::system()
            .map_err(err)?
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .map_err(err)?;
        Ok(Self::with_connection(conn))
    }

    /// Uses an existing connection (a private bus in tests, or another manager's bus).
    pub fn with_connection(conn: Connection) -> Self {
        Self {
            conn,
            job_timeout: DEFAULT_JOB_TIMEOUT,
            subscribed: AtomicBool::new(false),
        }
    }

    /// Sets how long a job is waited for.
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    fn manager(&self, op: SystemdOp, unit: &str) -> Result<ManagerProxy<'_>, SystemdError> {
        ManagerProxy::new(&self.conn).map_err(|e| SystemdError::new(op, unit, e.to_string()))
    }

    /// Starts a job with `call` and waits for its `JobRemoved`.
    fn job(
        &self,
        op: SystemdOp,
        unit: &str,
        call: impl FnOnce(&ManagerProxy<'_>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<JobResult, SystemdError> {
        let err = |e: zbus::Error| SystemdError::new(op, unit, e.to_string());
        let manager = self.manager(op, unit)?;
        // Job signals are sent to subscribed clients only; once per connection is enough.
        if !self.subscribed.load(Ordering::Relaxed) {
            manager.subscribe().map_err(err)?;
            self.subscribed.store(true, Ordering::Relaxed);
        }
        let signals = manager.receive_job_removed().map_err(err)?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for signal in signals {
                let item = signal
                    .args()
                    .map(|a| (a.job.to_string(), a.result.to_owned()))
                    .map_err(|e| e.to_string());
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        let job = call(&manager).map_err(err)?;
        let deadline = Instant::now() + self.job_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (path, result) = match rx.recv_timeout(left) {
                Ok(item) => item.map_err(|e| SystemdError::new(op, unit, e))?,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let secs = self.job_timeout.as_secs_f32();
                    let reason = format!("no JobRemoved for {} within {secs} s", job.as_str());
                    return Err(SystemdError::new(op, unit, reason));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if path != job.as_str() {
                continue;
            }
            return JobResult::parse(&result).ok_or_else(|| {
                SystemdError::new(op, unit, format!("unknown job result {result:?}"))
            });
        }
        Err(SystemdError::new(op, unit, "the JobRemoved stream ended"))
    }
}

impl Systemd for DbusSystemd {
    fn daemon_reload(&mut self) -> Result<(), SystemdError> {
        let op = SystemdOp::DaemonReload;
        self.manager(op, "")?
            .reload()
            .map_err(|e| SystemdError::new(op, "", e.to_string()))
    }

    fn start(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Start, unit, |m| m.start_unit(unit, "replace"))
    }

    fn restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Restart, unit, |m| {
            m.restart_unit(unit, "replace")
        })
    }

    fn stop(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Stop, unit, |m| m.stop_unit(unit, "replace"))
    }

    fn try_restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::TryRestart, unit, |m| {
            m.try_restart_unit(unit, "replace")
        })
    }

    fn active_state(&mut self, unit: &str) -> Result<ActiveState, SystemdError> {
        let op = SystemdOp::ActiveState;
        let err = |e: zbus::Error| SystemdError::new(op, unit, e.to_string());
        let path = self.manager(op, unit)?.load_unit(unit).map_err(err)?;
        let proxy = UnitProxy::builder(&self.conn)
            .path(path)
            .map_err(err)?
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(err)?;
        Ok(ActiveState::parse(&proxy.active_state().map_err(err)?))
    }
}
