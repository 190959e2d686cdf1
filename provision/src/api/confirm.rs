//! Confirm-or-revert (ours; anchors: `netplan try`, nmstate's checkpoints, IncusOS's
//! `confirmation_timeout`, LuCI's apply-confirm). A re-apply sent with `?confirm=SECONDS` that
//! changes what can cut the operator off the device (the admin signers, the LAN, the host
//! network or the firewall: [`crate::import::RISKY`]) is activated and health-checked, then
//! held: the job awaits confirmation until a signed `POST /api/jobs/{id}/confirm` keeps it, or
//! the deadline restores the previous config. A failed activation or health check reverts at
//! once, as any re-apply does.
//!
//! - [`window`]: the `?confirm` query (default 120 s, 10 to 3600).
//! - [`hold`]: the window of a held re-apply, in its job; the config root stays locked, so the
//!   CLI, first boot and recovery wait for it to close.
//! - [`confirm`]: the route. Its signer must be an admin of the *held* config (the active one):
//!   the confirmation proves that the device, as changed, still answers and still trusts the
//!   operator's key.
//! - [`settle`]: at the service's start, a window a stopped service left open. The promotion
//!   stays pending on disk for the whole window, so a reboot reverts it by itself (boot-time
//!   recovery restores the rollback); after a restart of the service alone it is reverted
//!   here. Either way the job is reported failed and reverted.

use std::sync::Arc;
use std::time::Duration;

use atomix_api::{
    DEFAULT_CONFIRM_SECONDS, JobEvent, JobResponse, MAX_CONFIRM_SECONDS, MIN_CONFIRM_SECONDS,
    ProvisionResult, routes, sha256_hex,
};
use atomix_config::root_files::LAN_SETTINGS;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};

use super::auth;
use super::engine::{Engine, System};
use super::error::{JOB_NOT_FOUND, Reject};
use super::events::engine_event;
use super::jobs::{
    AWAITING_STEP, CONFIRM_STEP, ConfirmError, Confirmation, Decision, JobHandle, event,
};
use super::router::Api;
use crate::activate::{self, Deps, Event, Outcome, RollbackStatus};
use crate::import::Held;
use crate::store::{Fs, RealFs};

/// The window when `?confirm` has no value.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(DEFAULT_CONFIRM_SECONDS);
/// How long a confirmation waits for its job to commit before it answers the job as it is.
const COMMIT_WAIT: Duration = Duration::from_secs(30);
/// The error of a job whose window the service did not see close, reverted at its start.
pub const REVERTED_AT_START: &str =
    "the service stopped while the job awaited confirmation: the previous config is restored";
/// The error of a job whose window a reboot closed (boot-time recovery restored the rollback).
pub const REVERTED_AT_BOOT: &str = "the device restarted while the job awaited confirmation: \
                                    recovery restored the previous config at boot";

/// The `confirm` query parameter of `uri`: `None` without one, the default window for a bare
/// `?confirm`, else its seconds, which must be 10 to 3600 (400 otherwise).
pub fn window(uri: &Uri) -> Result<Option<Duration>, Reject> {
    let Some(value) = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == atomix_api::CONFIRM_QUERY).then_some(value)
        })
    else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(Some(DEFAULT_WINDOW));
    }
    match value.parse::<u64>() {
        Ok(seconds) if (MIN_CONFIRM_SECONDS..=MAX_CONFIRM_SECONDS).contains(&seconds) => {
            Ok(Some(Duration::from_secs(seconds)))
        }
        _ => Err(Reject::Malformed(format!(
            "confirm: the window is a whole number of seconds from {MIN_CONFIRM_SECONDS} to \
             {MAX_CONFIRM_SECONDS}, not {value:?}"
        ))),
    }
}

/// The event of a job asked to be confirmed that was not held: nothing risky changed, or there
/// is nothing to go back to.
pub fn not_held(reapply: bool) -> JobEvent {
    event(
        CONFIRM_STEP,
        if reapply {
            "not needed: the admin signers, the LAN, the host network and the firewall are as \
             they were; committed"
        } else {
            "not needed for the first provisioning: there is no previous config to go back to"
        },
    )
}

/// The window of `held` in `job`: awaits confirmation for `wait`, then commits it, or restores
/// the previous config (re-activated with `deps`). `Err` is the job's error and rollback
/// status.
pub fn hold(
    api: &Api,
    job: &JobHandle,
    held: Held,
    deps: Option<&mut Deps<'_>>,
    events: &mut dyn FnMut(Event),
    wait: Duration,
    result: &ProvisionResult,
) -> Result<(), (String, Option<String>)> {
    let what: Vec<&str> = held.risky().iter().map(|r| r.what).collect();
    let mut said = format!(
        "{} changed: confirm with a signed POST {} within {} s, or the previous config is \
         restored",
        what.join(", "),
        routes::job_confirm(job.id()),
        wait.as_secs()
    );
    // Where the device answers once its LAN changed (LuCI's lesson: say the new address).
    if held.risky().iter().any(|r| r.file == LAN_SETTINGS)
        && let Some(url) = &result.forwarding_url
    {
        said.push_str(&format!("; the LAN gateway is {url}"));
    }
    if !held.activated() {
        said.push_str("; applied without activation (--activation none): no health check ran");
    }
    let confirmation = Confirmation {
        config_sha256: config_digest(&RealFs, api).unwrap_or_default(),
        result: result.clone(),
    };
    // The listener follows the active config (a new gateway) while the window is open.
    api.provisioning_changed();
    match job.await_confirmation(wait, confirmation, event(AWAITING_STEP, said)) {
        Decision::Confirmed => {
            let done = held.commit(&RealFs, &api.root, events);
            match done.store_error {
                None => Ok(()),
                Some(e) => Err((
                    format!(
                        "confirmed, but the commit failed: {:#}",
                        anyhow::Error::new(e)
                    ),
                    None,
                )),
            }
        }
        Decision::Lapsed => {
            let done = held.revert(&RealFs, &api.root, deps, events);
            let mut error = format!(
                "not confirmed within {} s: the previous config is restored",
                wait.as_secs()
            );
            let failures = done.failures();
            if !failures.is_empty() {
                error.push_str(&format!(" ({})", failures.join(", ")));
            }
            Err((error, Some(done.rollback.to_string())))
        }
    }
}

/// The SHA-256 of the active `config.toml`.
fn config_digest(fs: &dyn Fs, api: &Api) -> Option<String> {
    fs.read(&api.root.active_config())
        .ok()
        .map(|bytes| sha256_hex(&bytes))
}

/// `POST /api/jobs/{job_id}/confirm`, signed over an empty body by an admin of the held
/// config: 200 with the job once it has committed (or after 30 s, as it is), 404
/// for an unknown job, 409 for one that is not awaiting confirmation.
pub async fn confirm(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<JobResponse>, Reject> {
    auth::admin(&api, &headers, uri.path(), body).await?;
    let not_found = || Reject::NotFound(JOB_NOT_FOUND.to_owned());
    let mut changes = api.jobs.subscribe();
    api.jobs.confirm(&id).map_err(|e| match e {
        ConfirmError::NotFound => not_found(),
        e @ ConfirmError::NotAwaiting { .. } => Reject::Conflict(e.to_string()),
    })?;
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        let job = api.jobs.get(&id).ok_or_else(not_found)?;
        if job.state.is_terminal() {
            return Ok(Json(job));
        }
        if !matches!(
            tokio::time::timeout_at(deadline, changes.changed()).await,
            Ok(Ok(()))
        ) {
            return Ok(Json(job));
        }
    }
}

/// Settles every window a stopped service left open (before the service serves): still
/// pending on disk, it is reverted now (re-activated through the engine when there is one);
/// gone with the config it held active, it was committed; gone otherwise, recovery reverted
/// it at boot.
pub fn settle(api: &Api) {
    for (id, confirmation) in api.jobs.open_windows() {
        if let Some(job) = api.jobs.resume(&id) {
            settle_one(api, job, confirmation);
        }
    }
}

fn settle_one(api: &Api, job: JobHandle, confirmation: Confirmation) {
    let root = &api.root;
    let _lock = match root.lock() {
        Ok(lock) => lock,
        Err(e) => {
            let error = format!("{REVERTED_AT_START}: {:#}", anyhow::Error::new(e));
            return job.fail(&error, None);
        }
    };
    let fs = RealFs;
    let pending =
        fs.exists(&root.marker()).unwrap_or(false) && fs.exists(&root.rollback()).unwrap_or(false);
    if pending {
        job.event(event(
            CONFIRM_STEP,
            "the service stopped while the job awaited confirmation: restoring the previous config",
        ));
        let mut system: Option<Box<dyn System>> = match &api.engine {
            Engine::None => None,
            Engine::Systemd(connect) => connect()
                .inspect_err(|e| {
                    job.event(event(
                        "warning",
                        format!("cannot reach systemd ({e}): restoring without activation"),
                    ));
                })
                .ok(),
        };
        let mut deps = system.as_mut().map(|s| s.deps());
        let mut events = |e: Event| job.event(engine_event(&e));
        let done = activate::revert(&fs, root, deps.as_mut(), &mut events, Outcome::default());
        let failures = done.failures();
        let error = if failures.is_empty() {
            REVERTED_AT_START.to_owned()
        } else {
            format!("{REVERTED_AT_START} ({})", failures.join(", "))
        };
        job.fail(&error, Some(done.rollback.to_string()));
    } else if config_digest(&fs, api).as_deref() == Some(confirmation.config_sha256.as_str()) {
        job.event(event(
            CONFIRM_STEP,
            "the service stopped once the job was confirmed: the new config is committed",
        ));
        job.succeed(confirmation.result);
    } else {
        job.event(event(CONFIRM_STEP, REVERTED_AT_BOOT));
        job.fail(
            REVERTED_AT_BOOT,
            Some(RollbackStatus::Completed.to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<Option<Duration>, Reject> {
        window(&format!("/api/config{q}").parse().unwrap())
    }

    #[test]
    fn the_confirm_query() {
        assert_eq!(query("").unwrap(), None);
        assert_eq!(query("?other=1").unwrap(), None);
        assert_eq!(query("?confirm").unwrap(), Some(DEFAULT_WINDOW));
        assert_eq!(query("?confirm=").unwrap(), Some(DEFAULT_WINDOW));
        assert_eq!(
            query("?a=b&confirm=10").unwrap(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            query("?confirm=3600").unwrap(),
            Some(Duration::from_secs(3600))
        );
        for bad in ["?confirm=9", "?confirm=3601", "?confirm=2m", "?confirm=-5"] {
            let err = query(bad).unwrap_err();
            assert!(
                matches!(&err, Reject::Malformed(m) if m.starts_with("confirm: ")),
                "{bad}: {err:?}"
            );
        }
    }
}
