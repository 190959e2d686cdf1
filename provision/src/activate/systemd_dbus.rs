//! The real [`Systemd`] of the system manager: zbus (blocking API) on the system bus, service
//! `org.freedesktop.systemd1`.
//!
//! A job is tracked race-free: `Subscribe`, open the `JobRemoved` stream, call
//! `RestartUnit(name, "replace")` (or `StopUnit`, `TryRestartUnit`), then wait for the
//! `JobRemoved` whose job path is the one returned. The wait has no timeout of its own: systemd
//! ends every job (its `JobTimeoutSec`/`TimeoutStartSec`), and the engine's health window then
//! enforces the activation deadline.

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

/// The system manager over D-Bus.
#[derive(Debug)]
pub struct DbusSystemd {
    conn: Connection,
}

impl DbusSystemd {
    /// Connects to the system bus.
    pub fn system() -> Result<Self, SystemdError> {
        let conn = Connection::system()
            .map_err(|e| SystemdError::new(SystemdOp::Connect, "", e.to_string()))?;
        Ok(Self { conn })
    }

    /// Uses an existing connection (a private bus in tests, or another manager's bus).
    pub fn with_connection(conn: Connection) -> Self {
        Self { conn }
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
        manager.subscribe().map_err(err)?;
        let signals = manager.receive_job_removed().map_err(err)?;
        let job = call(&manager).map_err(err)?;
        for signal in signals {
            let args = signal.args().map_err(err)?;
            if args.job.as_str() != job.as_str() {
                continue;
            }
            return JobResult::parse(args.result).ok_or_else(|| {
                SystemdError::new(op, unit, format!("unknown job result {:?}", args.result))
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
