//! The provisioning API's wire protocol, shared by the device's server (`atomix-provision
//! serve`) and the operator's client (`atomix device`): the routes, the headers, the message an
//! admin signs (SSHSIG, namespace `atomixos-reapply`) and the JSON bodies. They are the
//! original AtomixOS service's (spec section 6), so clients made for it keep working.
//!
//! Owns: these facts, once, and (feature `sign`) how a client signs with a private key in its
//! process (`sign`). Must not: do I/O, verify (the server does, with `ssh-key`), or know about
//! the config model.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod message;
#[cfg(feature = "sign")]
pub mod sign;

pub use body::{
    ApiError, Finding, FrameworkError, JobEvent, JobResponse, JobState, NonceResponse,
    ProvisionResult, SubmitResponse, ValidationResponse, error_detail,
};
pub use message::{NAMESPACE, VERSION_LINE, sha256_hex, signed_message};

/// The nonce header.
pub const HEADER_NONCE: &str = "X-AtomixOS-Nonce";
/// The signature header: the strict base64 of the whole armored SSHSIG.
pub const HEADER_SIGNATURE: &str = "X-AtomixOS-Signature";
/// The optional file name of an upload (bundle detection).
pub const HEADER_FILENAME: &str = "X-Config-Filename";

/// The routes (spec 6.2); `{…}` are path parameters.
pub mod routes {
    /// `GET`: `{"status":"ok"}`.
    pub const HEALTH: &str = "/api/health";
    /// `GET`: a fresh nonce.
    pub const NONCE: &str = "/api/nonce";
    /// `POST`: submit a config or bundle; 202 and a job.
    pub const CONFIG: &str = "/api/config";
    /// `POST`: validate a config or bundle (signed).
    pub const VALIDATE: &str = "/api/validate";
    /// `GET`: the active config.toml (signed).
    pub const EXPORT: &str = "/api/config/export";
    /// `GET`: a job.
    pub const JOB: &str = "/api/jobs/{job_id}";
    /// Ours (confirm-or-revert), `POST`, signed over an empty body by an admin of the config
    /// the job applied: keep the config of a job in
    /// [`JobState::AwaitingConfirmation`](crate::JobState::AwaitingConfirmation); the job then
    /// commits and ends `succeeded`. Answered 200 with the job once it has ended; 404 for an
    /// unknown job, 409 for one that is not awaiting confirmation.
    pub const JOB_CONFIRM: &str = "/api/jobs/{job_id}/confirm";
    /// `PUT`/`DELETE`: one user.
    pub const USER: &str = "/api/config/users/{name}";
    /// `PATCH`: the network section.
    pub const NETWORK: &str = "/api/config/network";
    /// `PUT`/`DELETE`: one container.
    pub const CONTAINER: &str = "/api/config/containers/{name}";
    /// `PUT`/`DELETE`: one container network.
    pub const CONTAINER_NETWORK: &str = "/api/config/container-networks/{name}";
    /// `PUT`/`DELETE`: one container volume.
    pub const CONTAINER_VOLUME: &str = "/api/config/container-volumes/{name}";
    /// The OpenAPI document.
    pub const OPENAPI: &str = "/schema/openapi.json";

    /// A job's path.
    pub fn job(id: &str) -> String {
        JOB.replace("{job_id}", id)
    }

    /// A job's confirmation path.
    pub fn job_confirm(id: &str) -> String {
        JOB_CONFIRM.replace("{job_id}", id)
    }
}

/// Ours (confirm-or-revert): the query parameter of `POST /api/config?confirm=SECONDS` that
/// asks for the new config to be reverted unless confirmed ([`routes::JOB_CONFIRM`]) within
/// SECONDS of its activation. The query is not part of the signed path.
pub const CONFIRM_QUERY: &str = "confirm";
/// The confirmation window when none is given, in seconds (netplan try's).
pub const DEFAULT_CONFIRM_SECONDS: u64 = 120;
/// The shortest confirmation window, in seconds: less is not enough to reach a device whose
/// network just changed (LuCI raised its 30 s to 90 s for that).
pub const MIN_CONFIRM_SECONDS: u64 = 10;
/// The longest confirmation window, in seconds.
pub const MAX_CONFIRM_SECONDS: u64 = 3600;

#[cfg(test)]
mod tests {
    use super::routes;

    #[test]
    fn job_paths() {
        assert_eq!(routes::job("j1"), "/api/jobs/j1");
        assert_eq!(routes::job_confirm("j1"), "/api/jobs/j1/confirm");
    }
}
