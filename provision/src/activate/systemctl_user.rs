//! The real [`Systemd`] of the `appsvc` user's manager: `systemctl --user --machine=appsvc@`.
//!
//! zbus to `/run/user/<uid>/bus` as root is refused by the user's bus policy (the bus only
//! accepts its own uid), so root reaches the user manager the way systemd does itself:
//! `systemctl --user --machine=<user>@` (systemd 248+, Debian 12 has 252). `systemctl restart`
//! waits for the job and exits non-zero on a failed job but says not which result, so a
//! non-zero exit maps to [`JobResult::Failed`]; an exit 0 of `try-restart` is `done`.

use std::process::Command;

use super::systemd::{ActiveState, JobResult, Systemd, SystemdError, SystemdOp};

/// `systemctl --user --machine=<user>@ ...`.
#[derive(Debug, Clone)]
pub struct SystemctlUser {
    user: String,
    program: String,
}

impl SystemctlUser {
    /// The manager of `user` (`appsvc`), through `systemctl` on `PATH`.
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            program: "systemctl".to_owned(),
        }
    }

    /// The command line for `args` (without the program), for logs and tests.
    pub fn args(&self, args: &[&str]) -> Vec<String> {
        let mut out = vec!["--user".to_owned(), format!("--machine={}@", self.user)];
        out.extend(args.iter().map(|a| (*a).to_owned()));
        out
    }

    fn run(
        &self,
        op: SystemdOp,
        unit: &str,
        args: &[&str],
    ) -> Result<(bool, String), SystemdError> {
        let out = Command::new(&self.program)
            .args(self.args(args))
            .output()
            .map_err(|e| SystemdError::new(op, unit, format!("{}: {e}", self.program)))?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            Ok((true, stdout))
        } else {
            Ok((false, stderr))
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
