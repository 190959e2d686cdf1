//! The [`Systemd`] trait (one per manager: the system one and `appsvc`'s), its typed results and
//! [`FakeSystemd`], which records calls and plays scripted outcomes.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// How a systemd job ended (`JobRemoved`'s `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobResult {
    /// `done`: the job succeeded.
    Done,
    /// `failed`.
    Failed,
    /// `timeout`.
    Timeout,
    /// `canceled`.
    Canceled,
    /// `dependency`: a dependency failed.
    Dependency,
    /// `skipped`: nothing to do (for example a try-restart of a stopped unit).
    Skipped,
}

impl JobResult {
    /// Parses systemd's result string; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "done" => Self::Done,
            "failed" => Self::Failed,
            "timeout" => Self::Timeout,
            "canceled" => Self::Canceled,
            "dependency" => Self::Dependency,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }

    /// `done` or `skipped`.
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Done | Self::Skipped)
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
            Self::Dependency => "dependency",
            Self::Skipped => "skipped",
        })
    }
}

/// A unit's `ActiveState`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActiveState {
    /// `active`.
    Active,
    /// `reloading`.
    Reloading,
    /// `inactive`.
    Inactive,
    /// `failed`.
    Failed,
    /// `activating`.
    Activating,
    /// `deactivating`.
    Deactivating,
    /// Any other value (`maintenance`, `refreshing`, ...).
    Other(String),
}

impl ActiveState {
    /// Parses systemd's string.
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "reloading" => Self::Reloading,
            "inactive" => Self::Inactive,
            "failed" => Self::Failed,
            "activating" => Self::Activating,
            "deactivating" => Self::Deactivating,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Inactive => "inactive",
            Self::Failed => "failed",
            Self::Activating => "activating",
            Self::Deactivating => "deactivating",
            Self::Other(s) => s,
        })
    }
}

/// What a systemd call was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdOp {
    /// `Reload` (daemon-reload).
    DaemonReload,
    /// `StartUnit`.
    Start,
    /// `RestartUnit`.
    Restart,
    /// `StopUnit`.
    Stop,
    /// `TryRestartUnit`.
    TryRestart,
    /// Reading `ActiveState`.
    ActiveState,
    /// Connecting to the manager.
    Connect,
}

impl fmt::Display for SystemdOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DaemonReload => "daemon-reload",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Stop => "stop",
            Self::TryRestart => "try-restart",
            Self::ActiveState => "active-state",
            Self::Connect => "connect",
        })
    }
}

/// A systemd call that could not be made or answered.
#[derive(Debug, thiserror::Error)]
#[error("systemd {op} of {unit:?} failed: {reason}")]
pub struct SystemdError {
    /// The operation.
    pub op: SystemdOp,
    /// The unit (empty for daemon-reload and connect).
    pub unit: String,
    /// What went wrong (the D-Bus error or the command's stderr).
    pub reason: String,
}

impl SystemdError {
    /// Builds an error.
    pub fn new(op: SystemdOp, unit: &str, reason: impl Into<String>) -> Self {
        Self {
            op,
            unit: unit.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One service manager.
pub trait Systemd {
    /// `daemon-reload`.
    fn daemon_reload(&mut self) -> Result<(), SystemdError>;
    /// Starts `unit` (mode `replace`) and waits for its job.
    fn start(&mut self, unit: &str) -> Result<JobResult, SystemdError>;
    /// Restarts `unit` (mode `replace`) and waits for its job.
    fn restart(&mut self, unit: &str) -> Result<JobResult, SystemdError>;
    /// Stops `unit` and waits for its job.
    fn stop(&mut self, unit: &str) -> Result<JobResult, SystemdError>;
    /// Restarts `unit` only if it is running, and waits for the job.
    fn try_restart(&mut self, unit: &str) -> Result<JobResult, SystemdError>;
    /// The unit's `ActiveState` now.
    fn active_state(&mut self, unit: &str) -> Result<ActiveState, SystemdError>;
}

/// A call [`FakeSystemd`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemdCall {
    /// [`Systemd::daemon_reload`].
    DaemonReload,
    /// [`Systemd::start`].
    Start(String),
    /// [`Systemd::restart`].
    Restart(String),
    /// [`Systemd::stop`].
    Stop(String),
    /// [`Systemd::try_restart`].
    TryRestart(String),
    /// [`Systemd::active_state`].
    ActiveState(String),
}

/// A scripted manager: job results per unit (default `done`), `ActiveState` sequences per unit
/// (each query takes the next; the last repeats; default `active`), and failing operations.
#[derive(Debug, Default)]
pub struct FakeSystemd {
    /// Every call, in order.
    pub calls: Vec<SystemdCall>,
    jobs: BTreeMap<String, JobResult>,
    states: BTreeMap<String, VecDeque<ActiveState>>,
    fail_reload: bool,
}

impl FakeSystemd {
    /// A manager where everything succeeds and every unit is active.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts, restarts and try-restarts of `unit` end with `result`.
    pub fn job(&mut self, unit: &str, result: JobResult) -> &mut Self {
        self.jobs.insert(unit.to_owned(), result);
        self
    }

    /// Successive `ActiveState` answers for `unit`.
    pub fn states(&mut self, unit: &str, states: &[ActiveState]) -> &mut Self {
        self.states
            .insert(unit.to_owned(), states.iter().cloned().collect());
        self
    }

    /// Makes `daemon_reload` fail.
    pub fn fail_reload(&mut self) -> &mut Self {
        self.fail_reload = true;
        self
    }

    /// The units restarted, in order.
    pub fn restarted(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                SystemdCall::Restart(u) => Some(u.clone()),
                _ => None,
            })
            .collect()
    }

    fn job_of(&self, unit: &str) -> JobResult {
        self.jobs.get(unit).copied().unwrap_or(JobResult::Done)
    }
}

impl Systemd for FakeSystemd {
    fn daemon_reload(&mut self) -> Result<(), SystemdError> {
        self.calls.push(SystemdCall::DaemonReload);
        if self.fail_reload {
            return Err(SystemdError::new(SystemdOp::DaemonReload, "", "scripted"));
        }
        Ok(())
    }

    fn start(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.calls.push(SystemdCall::Start(unit.to_owned()));
        Ok(self.job_of(unit))
    }

    fn restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.calls.push(SystemdCall::Restart(unit.to_owned()));
        Ok(self.job_of(unit))
    }

    fn stop(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.calls.push(SystemdCall::Stop(unit.to_owned()));
        Ok(JobResult::Done)
    }

    fn try_restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.calls.push(SystemdCall::TryRestart(unit.to_owned()));
        Ok(self.job_of(unit))
    }

    fn active_state(&mut self, unit: &str) -> Result<ActiveState, SystemdError> {
        self.calls.push(SystemdCall::ActiveState(unit.to_owned()));
        let Some(queue) = self.states.get_mut(unit) else {
            return Ok(ActiveState::Active);
        };
        let state = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        Ok(state.unwrap_or(ActiveState::Active))
    }
}
