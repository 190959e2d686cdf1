//! The typed partial routes (spec 6.8): a user put or deleted, the network patched, a
//! container, container network or container volume put or deleted. Each is signed, like every
//! route that changes the config, and goes through the one import path as a re-apply that keeps
//! the active bundle payload (`files/`).
//!
//! The active `config.toml` is edited as text ([`atomix_config::edit`]: comments, order and
//! non-ASCII kept, spec 9.13) and the result validated before any job is made: a body that is
//! not JSON is a 400 in the framework's shape, a refused request (an unsupported or missing
//! key, a bad name) or a config the change makes invalid is a 400 with the report, every error
//! located in the new text (the original answered 202 and failed the job, spec 9.7). The job
//! then imports it only over the config it was made from. `?confirm=SECONDS` holds a risky
//! change for confirmation as on `POST /api/config` ([`super::confirm`]).

use std::convert::Infallible;
use std::sync::Arc;

use atomix_api::routes;
use atomix_config::edit::{Edit, EditError, UnitKind};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{patch, put};

use super::apply::{self, Submission};
use super::auth;
use super::auth::Caller;
use super::confirm;
use super::error::Reject;
use super::handlers::{self, DEFAULT_FILENAME, NO_CONFIG, blocking};
use super::router::Api;

/// The partial routes.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(routes::USER, put(put_user).delete(delete_user))
        .route(routes::NETWORK, patch(patch_network))
        .route(
            routes::CONTAINER,
            put(put_container).delete(delete_container),
        )
        .route(
            routes::CONTAINER_NETWORK,
            put(put_container_network).delete(delete_container_network),
        )
        .route(
            routes::CONTAINER_VOLUME,
            put(put_container_volume).delete(delete_container_volume),
        )
}

/// The request of a partial route, as its handler takes it (the name aside).
#[derive(Debug)]
pub struct Partial {
    api: Arc<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
}

impl FromRequest<Arc<Api>> for Partial {
    type Rejection = Infallible;

    async fn from_request(request: Request, api: &Arc<Api>) -> Result<Self, Infallible> {
        let (parts, body) = request.into_parts();
        Ok(Self {
            api: Arc::clone(api),
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

impl Partial {
    /// Checks the signature, makes the edit from the body, edits and validates the active
    /// config, and submits the job: 202, or 400, 401, 404 (no config), 409.
    async fn submit(
        self,
        make: impl FnOnce(&[u8]) -> Result<Edit, EditError> + Send + 'static,
    ) -> Result<Response, Reject> {
        let bytes = auth::admin(&self.api, &self.headers, self.uri.path(), self.body).await?;
        let window = confirm::window(&self.uri)?;
        let edit = make(&bytes).map_err(refused)?;
        let what = format!(
            "{} {}: editing the active config.toml",
            self.method,
            self.uri.path()
        );
        let api = Arc::clone(&self.api);
        let mut submission = blocking(move || prepare(&api, &edit, what)).await?;
        submission.confirm = window;
        Ok(handlers::accepted(apply::submit(&self.api, submission)?))
    }
}

/// The active config with `edit` made, validated, ready to import over that config.
fn prepare(api: &Api, edit: &Edit, what: String) -> Result<Submission, Reject> {
    // A job holds the slot (maybe for a confirmation window, with the root's lock): 409 now
    // rather than wait for the lock.
    if api.jobs.busy() {
        return Err(apply::conflict(api));
    }
    let base =
        handlers::active_config(&api.root)?.ok_or_else(|| Reject::NotFound(NO_CONFIG.into()))?;
    let text = String::from_utf8_lossy(&base);
    let edited = edit.apply(&text).map_err(refused)?;
    let mut submission = apply::prepare(api, edited.as_bytes(), DEFAULT_FILENAME, Caller::Admin)?;
    submission.prepared = what;
    submission.based_on = Some(base);
    Ok(submission)
}

/// The refusal of an edit: a body that is not JSON in the framework's shape, the active config
/// that cannot be edited as a 500 (it was valid when it was imported), else the report.
fn refused(e: EditError) -> Reject {
    let path = e.path().map(str::to_owned);
    let unreadable = matches!(e, EditError::Current(_));
    let json = matches!(e, EditError::Json(_));
    let message = format!("{:#}", anyhow::Error::new(e));
    if json {
        Reject::Malformed(message)
    } else if unreadable {
        eprintln!("api: {message}");
        Reject::Internal
    } else {
        apply::refused_one(path.as_deref(), message)
    }
}

/// `PUT /api/config/users/{name}`.
pub async fn put_user(Path(name): Path<String>, r: Partial) -> Result<Response, Reject> {
    r.submit(move |body| Edit::put_user(&name, body)).await
}

/// `DELETE /api/config/users/{name}`.
pub async fn delete_user(Path(name): Path<String>, r: Partial) -> Result<Response, Reject> {
    r.submit(move |_| Edit::delete_user(&name)).await
}

/// `PATCH /api/config/network`.
pub async fn patch_network(r: Partial) -> Result<Response, Reject> {
    r.submit(Edit::patch_network).await
}

/// `PUT /api/config/containers/{name}`.
pub async fn put_container(Path(name): Path<String>, r: Partial) -> Result<Response, Reject> {
    r.submit(move |body| Edit::put_unit(UnitKind::Container, &name, body))
        .await
}

/// `DELETE /api/config/containers/{name}`.
pub async fn delete_container(Path(name): Path<String>, r: Partial) -> Result<Response, Reject> {
    r.submit(move |_| Edit::delete_unit(UnitKind::Container, &name))
        .await
}

/// `PUT /api/config/container-networks/{name}`.
pub async fn put_container_network(
    Path(name): Path<String>,
    r: Partial,
) -> Result<Response, Reject> {
    r.submit(move |body| Edit::put_unit(UnitKind::Network, &name, body))
        .await
}

/// `DELETE /api/config/container-networks/{name}`.
pub async fn delete_container_network(
    Path(name): Path<String>,
    r: Partial,
) -> Result<Response, Reject> {
    r.submit(move |_| Edit::delete_unit(UnitKind::Network, &name))
        .await
}

/// `PUT /api/config/container-volumes/{name}`.
pub async fn put_container_volume(
    Path(name): Path<String>,
    r: Partial,
) -> Result<Response, Reject> {
    r.submit(move |body| Edit::put_unit(UnitKind::Volume, &name, body))
        .await
}

/// `DELETE /api/config/container-volumes/{name}`.
pub async fn delete_container_volume(
    Path(name): Path<String>,
    r: Partial,
) -> Result<Response, Reject> {
    r.submit(move |_| Edit::delete_unit(UnitKind::Volume, &name))
        .await
}
