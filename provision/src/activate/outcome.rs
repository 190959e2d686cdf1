//! The typed events, failures and results of an activation.

use std::fmt;
use std::time::Duration;

use super::systemd::{ActiveState, JobResult, SystemdOp};
use crate::store::StoreError;
use crate::store::quadlet_sync::Mode;

/// `service-deploy` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployStatus {
    /// A `.build` unit.
    Building,
    /// Any other unit.
    Starting,
}

/// `service-status` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    /// `active`.
    Running,
    /// `failed`.
    Failed,
    /// Anything else, or the state could not be read.
    Unknown,
}

/// An apply step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading the runtime metadata or the policy.
    Load,
    /// Users (spec 5.1).
    Users,
    /// The rootless user's preparation (spec 4.4: directories, linger, user manager).
    Rootless,
    /// Quadlet sync (spec 4.3).
    QuadletSync,
    /// A daemon-reload after the sync.
    DaemonReload,
    /// LAN and host network (spec 5.2), including its try-restarts.
    Network,
    /// Provisioned inbound firewall rules (spec 5.3).
    Firewall,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Load => "load",
            Self::Users => "users",
            Self::Rootless => "rootless preparation",
            Self::QuadletSync => "quadlet sync",
            Self::DaemonReload => "daemon-reload",
            Self::Network => "network",
            Self::Firewall => "firewall",
        })
    }
}

/// Something the engine reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A runtime unit is about to be deployed.
    ServiceDeploy {
        /// The service.
        unit: String,
        /// Building or starting.
        status: DeployStatus,
    },
    /// A restart job ended.
    ServiceRestart {
        /// The service.
        unit: String,
        /// Its manager.
        mode: Mode,
        /// The job's result.
        result: JobResult,
    },
    /// A runtime unit kept running: its file and the shared inputs are unchanged and it is
    /// active (ours; the original restarted every unit).
    ServiceUnchanged {
        /// The service.
        unit: String,
        /// Its manager.
        mode: Mode,
    },
    /// The health window starts.
    Settle {
        /// The settle window.
        seconds: u64,
    },
    /// A required unit's verdict at the end of the health window.
    HealthCheck {
        /// The service.
        unit: String,
        /// Active for the settle window before the deadline.
        healthy: bool,
    },
    /// The state of a runtime unit after the health window.
    ServiceStatus {
        /// The service.
        unit: String,
        /// Its status.
        status: ServiceStatus,
    },
    /// A non-fatal problem (a stale unit that did not stop, a non-required unit whose job
    /// failed).
    Warning(String),
    /// The activation failed; the previous config is being restored.
    Rollback,
    /// The activation succeeded; the rollback is being deleted.
    Cleanup,
}

impl fmt::Display for Event {
    /// One line for a log: the original's step name, then what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceDeploy { unit, status } => {
                let status = match status {
                    DeployStatus::Building => "building",
                    DeployStatus::Starting => "starting",
                };
                write!(f, "service-deploy: {unit} {status}")
            }
            Self::ServiceRestart { unit, mode, result } => {
                write!(f, "service-restart: {unit} ({}) {result}", mode.as_str())
            }
            Self::ServiceUnchanged { unit, mode } => {
                write!(
                    f,
                    "service-restart: {unit} ({}) unchanged, kept running",
                    mode.as_str()
                )
            }
            Self::Settle { seconds } => write!(f, "settle: {seconds} s"),
            Self::HealthCheck { unit, healthy } => write!(
                f,
                "health-check: {unit} {}",
                if *healthy { "healthy" } else { "unhealthy" }
            ),
            Self::ServiceStatus { unit, status } => {
                let status = match status {
                    ServiceStatus::Running => "running",
                    ServiceStatus::Failed => "failed",
                    ServiceStatus::Unknown => "unknown",
                };
                write!(f, "service-status: {unit} {status}")
            }
            Self::Warning(w) => write!(f, "warning: {w}"),
            Self::Rollback => f.write_str("rollback: restoring the previous config"),
            Self::Cleanup => f.write_str("cleanup: committing the new config"),
        }
    }
}

/// Why an activation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An apply step failed.
    Step {
        /// Which.
        step: Step,
        /// Its error.
        reason: String,
    },
    /// A required or `restart` unit's job did not end `done`.
    Job {
        /// The service.
        unit: String,
        /// Its manager.
        mode: Mode,
        /// The job's result.
        result: JobResult,
    },
    /// A systemd call for a required or `restart` unit failed.
    Systemd {
        /// The service.
        unit: String,
        /// The call.
        op: SystemdOp,
        /// The error.
        reason: String,
    },
    /// A `restart` name is not a runtime unit.
    UnknownUnit(String),
    /// A required unit entered `failed` during the health window.
    UnitFailed {
        /// The service.
        unit: String,
    },
    /// The settle window does not fit in the time left after the apply (the original's
    /// `activation timed out before health checks`); no health window ran.
    NoTimeToSettle {
        /// The settle window.
        settle: Duration,
        /// The time left before the deadline.
        left: Duration,
    },
    /// A required unit was not active for the settle window by the deadline.
    Timeout {
        /// The service.
        unit: String,
        /// Its last state.
        last: ActiveState,
    },
    /// A failed unit neither required nor allowed degraded, with `allow_degraded` configured.
    Degraded {
        /// The service.
        unit: String,
    },
}

impl Failure {
    /// The unit it is about, if it is about one.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Self::Job { unit, .. }
            | Self::Systemd { unit, .. }
            | Self::UnitFailed { unit }
            | Self::Timeout { unit, .. }
            | Self::Degraded { unit } => Some(unit),
            Self::UnknownUnit(name) => Some(name),
            Self::Step { .. } | Self::NoTimeToSettle { .. } => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Step { step, reason } => write!(f, "{step} failed: {reason}"),
            Self::Job { unit, result, .. } => write!(f, "{unit} job {result}"),
            Self::Systemd { unit, op, reason } => write!(f, "{unit} {op}: {reason}"),
            Self::UnknownUnit(name) => write!(f, "unknown unit {name}"),
            Self::UnitFailed { unit } => write!(f, "{unit} failed"),
            Self::NoTimeToSettle { settle, left } => write!(
                f,
                "activation timed out before health checks (settle {} s, {} s left)",
                settle.as_secs(),
                left.as_secs()
            ),
            Self::Timeout { unit, last } => {
                write!(f, "{unit} not healthy before the deadline (last {last})")
            }
            Self::Degraded { unit } => write!(f, "{unit} failed and is not allowed degraded"),
        }
    }
}

/// The result of one activation run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Empty if the activation succeeded.
    pub failures: Vec<Failure>,
    /// Failed units that were only reported (not required, `allow_degraded` not configured or
    /// the unit allowed).
    pub degraded: Vec<String>,
}

impl Outcome {
    /// No failures.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// `activation failed: <comma-joined failures>` (the original's message).
    pub fn message(&self) -> String {
        let list: Vec<String> = self.failures.iter().map(Failure::to_string).collect();
        format!("activation failed: {}", list.join(", "))
    }
}

/// What happened to the previous config after a failure (the API's `rollback_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackStatus {
    /// Restored and re-activated.
    Completed,
    /// Restored, but its re-activation failed (or the restore itself failed).
    Failed,
    /// Nothing to roll back (success, or no rollback directory).
    Skipped,
    /// An initial import was discarded; the device is back in bootstrap mode.
    Discarded,
}

impl fmt::Display for RollbackStatus {
    /// The API's `rollback_status` values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Discarded => "discarded",
        })
    }
}

/// Proof that an activation committed; only [`super::engine::complete`] makes one.
#[derive(Debug)]
pub struct Committed {
    pub(super) _private: (),
}

/// The result of [`super::engine::complete`].
#[derive(Debug)]
pub struct Completion {
    /// The new config's activation.
    pub outcome: Outcome,
    /// What happened to the previous config.
    pub rollback: RollbackStatus,
    /// The previous config's re-activation, if it ran.
    pub rollback_outcome: Option<Outcome>,
    /// A store operation (cleanup, restore, discard) that failed.
    pub store_error: Option<StoreError>,
    /// Present iff the activation succeeded and was committed.
    pub committed: Option<Committed>,
}

impl Completion {
    /// The failures to report: the activation's, then the rollback's re-activation's.
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .outcome
            .failures
            .iter()
            .map(Failure::to_string)
            .collect();
        if let Some(rb) = &self.rollback_outcome
            && !rb.ok()
        {
            let list: Vec<String> = rb.failures.iter().map(Failure::to_string).collect();
            out.push(format!(
                "rollback activation/health failed: {}",
                list.join(", ")
            ));
        }
        if let Some(e) = &self.store_error {
            out.push(e.to_string());
        }
        out
    }
}
