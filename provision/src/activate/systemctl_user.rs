//! The real [`Systemd`] of the `appsvc` user's manager, through `systemctl --user`.
//!
//! zbus to `/run/user/<uid>/bus` as root is refused by the user bus's policy (it accepts only
//! its own uid), so root reaches the user manager through `systemctl`, in one of two ways:
//! - [`SystemctlUser::machine`]: `systemctl --user --machine=appsvc@.host ...` (systemd 248+,
//!   Debian 12 has 252), the default;
//! - [`SystemctlUser::runuser`]: the original's `runuser -u appsvc -- env XDG_RUNTIME_DIR=...
//!   DBUS_SESSION_BUS_ADDRESS=... systemctl --user ...`, for a system where the first is not
//!   available.
//!
//! `systemctl restart` waits for the job and exits non-zero on a failed job but says not which
//! result, so a non-zero exit maps to [`JobResult::Failed`].

use std::process::Command;

use super::systemd::{ActiveState, JobResult, Systemd, SystemdError, SystemdOp};

/// How `systemctl --user` reaches the user's manager.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Via {
    Machine,
    Runuser { uid: u32 },
}

/// `systemctl --user` for one user's manager.
#[derive(Debug, Clone)]
pub struct SystemctlUser {
    user: String,
    via: Via,
}

impl SystemctlUser {
    /// `systemctl --user --machine=<user>@.host`.
    pub fn machine(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            via: Via::Machine,
        }
    }

    /// `runuser -u <user> -- env XDG_RUNTIME_DIR=/run/user/<uid>
    /// DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/<uid>/bus systemctl --user`.
    pub fn runuser(user: &str, uid: u32) -> Self {
        Self {
            user: user.to_owned(),
            via: Via::Runuser { uid },
        }
    }

    /// The program and arguments for the `systemctl` arguments `args`.
    pub fn command_line(&self, args: &[&str]) -> (String, Vec<String>) {
        let mut out = Vec::new();
        let program = match self.via {
            Via::Machine => {
                out.push("--user".to_owned());
                out.push(format!("--machine={}@.host", self.user));
                "systemctl"
            }
            Via::Runuser { uid } => {
                out.extend(["-u", &self.user, "--", "env"].map(str::to_owned));
                out.push(format!("XDG_RUNTIME_DIR=/run/user/{uid}"));
                out.push(format!(
                    "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"
                ));
                out.extend(["systemctl", "--user"].map(str::to_owned));
                "runuser"
            }
        };
        out.extend(args.iter().map(|a| (*a).to_owned()));
        (program.to_owned(), out)
    }

    fn run(
        &self,
        op: SystemdOp,
        unit: &str,
        args: &[&str],
    ) -> Result<(bool, String), SystemdError> {
        let (program, args) = self.command_line(args);
        let out = Command::new(&program)
            .args(args)
            .output()
            .map_err(|e| SystemdError::new(op, unit, format!("{program}: {e}")))?;
        if out.status.success() {
            Ok((true, String::from_utf8_lossy(&out.stdout).trim().to_owned()))
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Ok((false, format!("{}: {}", out.status, stderr.trim())))
        }
    }

    fn job(&self, op: SystemdOp, verb: &str, unit: &str) -> Result<JobResult, SystemdError> {
        let (ok, _) = self.run(op, unit, &[verb, unit])?;
        Ok(if ok {
            JobResult::Done
        } else {
            JobResult::Failed
        })
    }
}

impl Systemd for SystemctlUser {
    fn daemon_reload(&mut self) -> Result<(), SystemdError> {
        let op = SystemdOp::DaemonReload;
        match self.run(op, "", &["daemon-reload"])? {
            (true, _) => Ok(()),
            (false, stderr) => Err(SystemdError::new(op, "", stderr)),
        }
    }

    fn start(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Start, "start", unit)
    }

    fn restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Restart, "restart", unit)
    }

    fn stop(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::Stop, "stop", unit)
    }

    fn try_restart(&mut self, unit: &str) -> Result<JobResult, SystemdError> {
        self.job(SystemdOp::TryRestart, "try-restart", unit)
    }

    fn active_state(&mut self, unit: &str) -> Result<ActiveState, SystemdError> {
        let op = SystemdOp::ActiveState;
        match self.run(
            op,
            unit,
            &["show", "--property=ActiveState", "--value", unit],
        )? {
            (true, state) => Ok(ActiveState::parse(&state)),
            (false, stderr) => Err(SystemdError::new(op, unit, stderr)),
        }
    }
}
