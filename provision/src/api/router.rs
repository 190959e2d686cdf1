//! The service's shared state ([`Api`]) and its routes ([`routes`](fn@routes), [`router`](fn@router)).
//!
//! To add routes: write the handlers (they take `State<Arc<Api>>`, guard themselves with
//! [`super::auth::admin`], and submit work with [`super::handlers::prepare`] and
//! [`super::apply::submit`]), pass them to [`router_with`] with their paths from
//! `atomix_api::routes`, and add their operations to [`super::openapi::document`]; the tests
//! check that every documented operation is routed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atomix_api::routes;
use atomix_config::bundle::Limits;
use axum::Router;
use axum::routing::{get, post};
use base64ct::{Base64UrlUnpadded, Encoding as _};
use tokio::sync::{Notify, Semaphore};

use super::engine::Engine;
use super::error;
use super::handlers;
use super::jobs::{JOBS_DIR, Jobs, JobsError};
use super::nonces::{NonceLimits, Nonces, RandomError};
use super::openapi;
use super::{confirm, partial};
use crate::store::{ConfigRoot, Owner};

/// What the service is made with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config root (`/data/config`).
    pub root: ConfigRoot,
    /// The upload and bundle limits (`ATOMIXOS_MAX_*`); the body limit is the upload's.
    pub limits: Limits,
    /// The nonce TTL and limits (`ATOMIXOS_NONCE_TTL`, …).
    pub nonces: NonceLimits,
    /// How jobs activate.
    pub engine: Engine,
    /// The owner of a bundle's payload (`appsvc`), if that user exists.
    pub payload_owner: Option<Owner>,
    /// Where jobs are kept; `None`: `<root's parent>/provision-jobs`.
    pub jobs_dir: Option<PathBuf>,
}

impl Settings {
    /// The defaults for `root`: the default limits, no engine, no payload owner.
    pub fn new(root: ConfigRoot) -> Self {
        Self {
            root,
            limits: Limits::default(),
            nonces: NonceLimits::default(),
            engine: Engine::None,
            payload_owner: None,
            jobs_dir: None,
        }
    }
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The job store.
    #[error("the job store")]
    Jobs(#[from] JobsError),
    /// No random bytes for the form token.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The state every handler shares.
#[derive(Debug)]
pub struct Api {
    /// The config root.
    pub root: ConfigRoot,
    /// The upload and bundle limits.
    pub limits: Limits,
    /// The outstanding nonces.
    pub nonces: Nonces,
    /// The jobs.
    pub jobs: Arc<Jobs>,
    /// How jobs activate.
    pub engine: Engine,
    /// The owner of a bundle's payload.
    pub payload_owner: Option<Owner>,
    /// The uploads that may be read and validated at once ([`super::handlers::prepare`]): one
    /// per core.
    pub validations: Arc<Semaphore>,
    /// The web console's per-process form token (compare with
    /// [`super::auth::token_matches`]).
    pub bootstrap_token: String,
    /// The device is or was provisioned in this process: admin signers were seen, a job
    /// committed a config, or the root had either at the start.
    was_provisioned: AtomicBool,
    /// Signalled when a job committed a config (the listening address may change).
    provisioned: Notify,
}

impl Api {
    /// Opens the job store and makes the state, then settles any confirmation window a
    /// stopped service left open ([`confirm::settle`]: it may revert the config, through the
    /// engine).
    pub fn new(settings: Settings) -> Result<Arc<Self>, StartError> {
        let jobs_dir = settings
            .jobs_dir
            .unwrap_or_else(|| settings.root.parent().join(JOBS_DIR));
        let jobs = Jobs::open(&jobs_dir)?;
        let mut token = [0u8; 32];
        getrandom::fill(&mut token).map_err(|e| RandomError(e.to_string()))?;
        let was_provisioned = settings
            .root
            .active()
            .join(atomix_config::root_files::ADMIN_SIGNERS)
            .exists()
            || settings.root.active_config().exists();
        let api = Arc::new(Self {
            nonces: Nonces::new(settings.nonces),
            root: settings.root,
            limits: settings.limits,
            jobs,
            engine: settings.engine,
            payload_owner: settings.payload_owner,
            validations: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            )),
            bootstrap_token: Base64UrlUnpadded::encode_string(&token),
            was_provisioned: AtomicBool::new(was_provisioned),
            provisioned: Notify::new(),
        });
        confirm::settle(&api);
        Ok(api)
    }

    /// Records that the device is provisioned (admin signers were seen): from now on,
    /// missing signers fail closed.
    pub fn saw_signers(&self) {
        self.was_provisioned.store(true, Ordering::SeqCst);
    }

    /// Whether the device is provisioned (a `config.toml`) or was in this process: then
    /// nothing is unauthenticated.
    pub fn provisioned(&self) -> bool {
        self.was_provisioned.load(Ordering::SeqCst) || self.root.active_config().exists()
    }

    /// Records that a job changed the active config (committed it, or holds it for
    /// confirmation, or restored the previous one), and tells the listener (its address may
    /// change).
    pub fn provisioning_changed(&self) {
        self.was_provisioned.store(true, Ordering::SeqCst);
        self.provisioned.notify_one();
    }

    /// Waits until a job commits a config.
    pub async fn provisioning_changes(&self) {
        self.provisioned.notified().await;
    }
}

/// The routes of this service (the partial routes included), without their state and
/// fallbacks.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(routes::HEALTH, get(handlers::health))
        .route(routes::NONCE, get(handlers::nonce))
        .route(routes::CONFIG, post(handlers::submit))
        .route(routes::VALIDATE, post(handlers::validate))
        .route(routes::EXPORT, get(handlers::export))
        .route(routes::JOB, get(handlers::job))
        .route(routes::JOB_CONFIRM, post(confirm::confirm))
        .route(routes::OPENAPI, get(openapi::serve))
        .merge(partial::routes())
}

/// The service's router over `api`, with `more` routes (the web console)
/// merged in; unknown routes and methods answer in the framework's shape (after the merge, so
/// `more` gets them too).
pub fn router_with(api: Arc<Api>, more: Router<Arc<Api>>) -> Router {
    routes()
        .merge(more)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(api)
}

/// The service's router over `api`.
pub fn router(api: Arc<Api>) -> Router {
    router_with(api, Router::new())
}
