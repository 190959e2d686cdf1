//! The handlers of spec 6.2 but the typed partial routes ([`super::partial`]) and the
//! confirmation ([`super::confirm`]): health, nonce, submit, validate, export and job. Each
//! guards itself ([`super::auth`]) and answers in the original's shapes; blocking work
//! (parsing an upload, the lock) runs off the async threads.

use std::net::SocketAddr;
use std::sync::Arc;

use atomix_api::{HEADER_FILENAME, JobResponse, NonceResponse, SubmitResponse, ValidationResponse};
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::apply::{self, Submission};
use super::auth::{self, Caller};
use super::confirm;
use super::error::{JOB_NOT_FOUND, Reject};
use super::router::Api;
use crate::store::{self, ConfigRoot, RealFs};

/// The longest `X-Config-Filename` kept.
const MAX_FILENAME_CHARS: usize = 255;
/// The name of an upload without a usable `X-Config-Filename`.
pub const DEFAULT_FILENAME: &str = "config.toml";
/// The 404 of an export without a config.
pub const NO_CONFIG: &str = "no config.toml: the device is not provisioned";

/// `X-Config-Filename`, as [`file_name`] keeps it.
pub fn upload_name(headers: &HeaderMap) -> String {
    file_name(
        headers
            .get(HEADER_FILENAME)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(DEFAULT_FILENAME),
    )
}

/// An upload's file name (`X-Config-Filename`, the console's file field), trimmed and cut to
/// 255 characters; `config.toml` unless it is made of word characters, `-`, `.` and spaces
/// only.
pub fn file_name(raw: &str) -> String {
    let name: String = raw.trim().chars().take(MAX_FILENAME_CHARS).collect();
    let safe = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    if safe {
        name
    } else {
        DEFAULT_FILENAME.to_owned()
    }
}

/// Runs blocking `work` on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Reject> + Send + 'static,
) -> Result<T, Reject> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        eprintln!("api: a blocking task failed: {e}");
        Reject::Internal
    })?
}

/// Reads and validates an upload ([`apply::prepare`]) on a blocking thread, at most
/// [`Api::validations`] at once: the work is CPU-bound, so more would only add threads, and
/// the memory of the uploads in flight, without answering sooner.
pub async fn prepare(
    api: &Arc<Api>,
    headers: &HeaderMap,
    bytes: axum::body::Bytes,
    caller: Caller,
) -> Result<Submission, Reject> {
    let name = upload_name(headers);
    let slot = Arc::clone(&api.validations)
        .acquire_owned()
        .await
        .map_err(|_| Reject::Internal)?;
    let api = Arc::clone(api);
    blocking(move || {
        let _slot = slot;
        apply::prepare(&api, &bytes, &name, caller)
    })
    .await
}

/// `GET /api/health`.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/nonce`: a nonce for the client's address.
pub async fn nonce(State(api): State<Arc<Api>>, request: Request) -> Result<Response, Reject> {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let nonce = api.nonces.issue(&client).map_err(|e| {
        eprintln!("api: {e}");
        Reject::Internal
    })?;
    Ok(Json(NonceResponse { nonce }).into_response())
}

/// The 202 of a route that made a job, with its `Location`.
pub fn accepted(accepted: SubmitResponse) -> Response {
    let location = accepted.job_url.clone();
    (StatusCode::ACCEPTED, [(LOCATION, location)], Json(accepted)).into_response()
}

/// `POST /api/config[?confirm=SECONDS]`: 202 and a job, 400 with the report (or for a bad
/// `confirm`), 401, 409, 413.
pub async fn submit(
    State(api): State<Arc<Api>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    let (caller, bytes) = auth::submitter(&api, &headers, uri.path(), body).await?;
    let window = confirm::window(&uri)?;
    let mut submission = prepare(&api, &headers, bytes, caller).await?;
    submission.confirm = window;
    Ok(accepted(apply::submit(&api, submission)?))
}

/// `POST /api/validate`: 200 with the warnings, 400 with the report.
pub async fn validate(
    State(api): State<Arc<Api>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    let bytes = auth::admin(&api, &headers, uri.path(), body).await?;
    let submission = prepare(&api, &headers, bytes, Caller::Admin).await?;
    let ok = ValidationResponse {
        ok: true,
        error: None,
        warnings: Some(submission.valid.root.warnings),
        errors: None,
    };
    Ok(Json(ok).into_response())
}

/// The active `config.toml`, read under the lock after recovery; `None` when there is none.
/// Blocking.
pub fn active_config(root: &ConfigRoot) -> Result<Option<Vec<u8>>, Reject> {
    let internal = |e: &dyn std::fmt::Display| {
        eprintln!("api: reading the active config: {e}");
        Reject::Internal
    };
    let _lock = root.lock().map_err(|e| internal(&e))?;
    store::recover(&RealFs, root).map_err(|e| internal(&e))?;
    match std::fs::read(root.active_config()) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(internal(&e)),
    }
}

/// `GET /api/config/export`: the active `config.toml`, read under the lock after recovery;
/// 404 when there is none (the original failed with a 500); 409 while a job awaits
/// confirmation (the config is not settled, and its window holds the lock).
pub async fn export(
    State(api): State<Arc<Api>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    auth::admin(&api, &headers, uri.path(), body).await?;
    if api.jobs.awaiting().is_some() {
        return Err(apply::conflict(&api));
    }
    let root = api.root.clone();
    let config = blocking(move || active_config(&root)).await?;
    let bytes = config.ok_or_else(|| Reject::NotFound(NO_CONFIG.to_owned()))?;
    Ok((
        [
            (CONTENT_TYPE, "application/toml"),
            (CONTENT_DISPOSITION, "attachment; filename=\"config.toml\""),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/jobs/{job_id}`: the job, 404 when unknown.
pub async fn job(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, Reject> {
    api.jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| Reject::NotFound(JOB_NOT_FOUND.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn upload_names_are_sanitised() {
        let name = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(HEADER_FILENAME, HeaderValue::from_str(v).unwrap());
            }
            upload_name(&h)
        };
        assert_eq!(name(None), "config.toml");
        assert_eq!(name(Some("  seed.tar.zst ")), "seed.tar.zst");
        assert_eq!(name(Some("../etc/passwd")), "config.toml");
        assert_eq!(name(Some("")), "config.toml");
        assert_eq!(name(Some(&"a".repeat(300))).len(), 255);
    }
}
