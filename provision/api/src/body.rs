//! The JSON bodies of spec 6 (fields that are `None` are left out, as the original does).

use serde::{Deserialize, Serialize};

/// `GET /api/nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceResponse {
    /// Single use, valid for the nonce TTL.
    pub nonce: String,
}

/// 202 of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The job's id (a UUID).
    pub job_id: String,
    /// `submitted`.
    pub state: String,
    /// `/api/jobs/<id>`.
    pub job_url: String,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Accepted, not started.
    Submitted,
    /// Running.
    Running,
    /// Applied and committed.
    Succeeded,
    /// Failed (the error and the rollback status say how).
    Failed,
    /// Ours (confirm-or-revert): applied and healthy, reverted unless confirmed in time.
    AwaitingConfirmation,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Its name on the wire (`submitted`, …, `awaiting-confirmation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::AwaitingConfirmation => "awaiting-confirmation",
        }
    }
}

/// One event of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The step (`prepare`, `validate`, `service-restart`, …).
    pub step: String,
    /// Seconds since the job was submitted (two decimals).
    pub elapsed_seconds: f64,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The systemd service it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `rootful` / `rootless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `building`, `starting`, `running`, `failed`, `unknown`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The result of a provisioning job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionResult {
    /// What rendering changed.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A re-apply (or the first provisioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reapply: Option<bool>,
    /// Whether it was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<bool>,
    /// `http://<gateway>:8080`: where the service listens after provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_url: Option<String>,
}

/// `GET /api/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResponse {
    /// The id.
    pub id: String,
    /// The state.
    pub state: JobState,
    /// The last step reached.
    pub current_step: String,
    /// The events so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<JobEvent>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result of a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ProvisionResult>,
    /// `completed`, `failed`, `skipped` or `discarded`; absent when it failed before the
    /// promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_status: Option<String>,
    /// From start to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Ours (confirm-or-revert): once the job awaited confirmation, when its window closes
    /// (RFC 3339, UTC): confirmed by then, the config is kept, else it is reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_deadline: Option<String>,
}

/// `POST /api/validate`: 200 `{"ok":true,"warnings":[…]}` or 400 `{"ok":false,"error":…}`;
/// also the 400 of a submission whose config is refused before any job is made (ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationResponse {
    /// Valid.
    pub ok: bool,
    /// Why not: the whole report as text (every error, `file:line:col: path: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What rendering would change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// Ours: every error, located (the `--json` report's entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Finding>>,
}

/// One located finding of a validation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The TOML path (`users.admin.ssh_key`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 1-based line, when located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column, when located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub col: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// `error` or `warning`.
    pub severity: String,
}

/// The service's own errors (409, 404): `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

/// The framework's errors (401, 413, 400 of a bad body): `{"status_code": …, "detail": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameworkError {
    /// The HTTP status.
    pub status_code: u16,
    /// What went wrong.
    pub detail: String,
}

/// The message of an error body in any of the service's shapes ([`ApiError`],
/// [`FrameworkError`], or a refused [`ValidationResponse`]); `None` for anything else.
pub fn error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Api { error: String },
        Framework { detail: String },
    }
    match serde_json::from_slice(body).ok()? {
        Shape::Api { error } => Some(error),
        Shape::Framework { detail } => Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_leave_out_what_is_not_set() {
        let job = JobResponse {
            id: "j".into(),
            state: JobState::AwaitingConfirmation,
            current_step: "health-check".into(),
            events: None,
            error: None,
            result: None,
            rollback_status: None,
            duration_seconds: None,
            confirm_deadline: None,
        };
        assert_eq!(
            serde_json::to_string(&job).unwrap_or_default(),
            r#"{"id":"j","state":"awaiting-confirmation","current_step":"health-check"}"#
        );
        let back: JobResponse =
            serde_json::from_str(r#"{"id":"j","state":"failed","current_step":"x","error":"e"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.state, JobState::Failed);
        assert!(back.state.is_terminal());
        for state in [
            JobState::Submitted,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::AwaitingConfirmation,
        ] {
            assert_eq!(
                serde_json::to_value(state).unwrap_or_default(),
                state.as_str()
            );
        }
    }

    #[test]
    fn error_details_of_every_shape() {
        assert_eq!(
            error_detail(br#"{"error":"job not found"}"#).as_deref(),
            Some("job not found")
        );
        assert_eq!(
            error_detail(br#"{"status_code":401,"detail":"invalid or expired nonce"}"#).as_deref(),
            Some("invalid or expired nonce")
        );
        assert_eq!(
            error_detail(br#"{"ok":false,"error":"bad toml"}"#).as_deref(),
            Some("bad toml")
        );
        assert_eq!(error_detail(b"<html>502</html>"), None);
        assert_eq!(error_detail(br#"{"status":"ok"}"#), None);
    }
}
