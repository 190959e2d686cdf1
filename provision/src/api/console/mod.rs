//! The first-boot web console (spec 6.6): one page where whoever sets the device up uploads,
//! drops or pastes a config, watches the job's steps as they happen and reads the outcome
//! (every validation error with its line, the forwarding URL, the rollback status), with the
//! seeds first boot tried and why they failed. It is served only while the device is
//! unprovisioned: once `config.toml` or `admin-signers` exists every route answers 404, but
//! for the one read of a console job's terminal fragment and the fragment of a reconnect.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (the browser checks of [`super::origin`]) |
//! | `GET /assets/{name}` | its stylesheet, script and logo, compiled in |
//! | `POST /apply` | the form: `bootstrap_token`, then `config_file` or `config`; 202 the job's fragment, 400 the report, 401, 403, 409, 413 |
//! | `GET /ui/jobs/{job_id}` | a job's fragment |
//! | `GET /ui/jobs/{job_id}/events` | the same as server-sent events: `data: <fragment>` at each change, then `event: done` (its data `succeeded` or `failed`) |
//!
//! The page's script is ours (`assets/console.js`: `fetch` and `EventSource`, no library), so
//! the page has nothing to load from the network (the original loaded htmx from a CDN, which
//! an offline device cannot reach: spec 9.9), and its fragments carry data attributes rather
//! than inline scripts, so the page's Content-Security-Policy allows no inline script at all.
//! None of these routes is in the OpenAPI document.

mod form;
pub mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use atomix_api::{JobResponse, JobState};
use atomix_config::bundle::Caller as InputCaller;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use maud::Markup;
use tokio::sync::watch;

use super::apply::{self, Submission};
use super::auth::{self, Caller};
use super::error::{self, Reject};
use super::handlers::{DEFAULT_FILENAME, blocking, file_name};
use super::origin;
use super::router::Api;
use crate::firstboot::Status;
use crate::firstboot::settings::STATUS_FILE;
use crate::source::Source;

/// The page.
pub const PAGE: &str = "/";
/// The page's assets.
pub const ASSETS: &str = "/assets/{name}";
/// The form.
pub const APPLY: &str = "/apply";
/// A job's fragment.
pub const JOB: &str = "/ui/jobs/{job_id}";
/// A job's fragments as server-sent events.
pub const JOB_EVENTS: &str = "/ui/jobs/{job_id}/events";

/// A job's fragment path.
pub fn job_path(id: &str) -> String {
    JOB.replace("{job_id}", id)
}

/// A job's events path.
pub fn job_events_path(id: &str) -> String {
    JOB_EVENTS.replace("{job_id}", id)
}

/// The console's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// First boot's `provisioning-status.json` (`ATOMIXOS_PROVISIONING_STATUS`).
    pub status_file: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            status_file: PathBuf::from(STATUS_FILE),
        }
    }
}

/// The console's state beside the service's.
#[derive(Debug)]
struct Console {
    status_file: PathBuf,
    /// The jobs submitted through the console in this process, and whether their terminal
    /// fragment was read once the device was provisioned (it is readable once).
    jobs: Mutex<HashMap<String, bool>>,
}

/// Who may read a job's fragment.
enum Access {
    /// The job's fragment.
    Job(Box<JobResponse>),
    /// A job this process does not know (or not as the console's) on a provisioned device:
    /// the success of a reconnect after provisioning.
    Reconnected,
    /// An unknown job before provisioning: a 404 fragment.
    Missing,
    /// The console is closed: the framework's 404.
    Closed,
}

impl Console {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a job submitted through the console (and forgets the ones the job store no
    /// longer has).
    fn submitted(&self, api: &Api, id: &str) {
        let mut jobs = self.lock();
        jobs.retain(|id, _| api.jobs.get(id).is_some());
        jobs.insert(id.to_owned(), false);
    }

    /// Records that a console job's terminal fragment was read on a provisioned device.
    fn served(&self, id: &str) {
        if let Some(served) = self.lock().get_mut(id) {
            *served = true;
        }
    }

    fn access(&self, api: &Api, id: &str) -> Access {
        let job = api.jobs.get(id);
        if !closed(api) {
            return job.map_or(Access::Missing, |j| Access::Job(Box::new(j)));
        }
        let mut jobs = self.lock();
        match (job, jobs.get_mut(id)) {
            (Some(job), Some(_)) if !job.state.is_terminal() => Access::Job(Box::new(job)),
            (Some(_), Some(true)) => Access::Closed,
            (Some(job), Some(served)) => {
                *served = true;
                Access::Job(Box::new(job))
            }
            _ if api.root.active_config().exists() => Access::Reconnected,
            _ => Access::Closed,
        }
    }

    /// First boot's report (`Unknown` when it wrote none: it is not running here).
    fn status(&self) -> view::SeedStatus {
        let unreadable = |e: &dyn std::fmt::Display| {
            view::SeedStatus::Unreadable(format!("{}: {e}", self.status_file.display()))
        };
        // A few hundred bytes on a tmpfs: read in place.
        match std::fs::read(&self.status_file) {
            Ok(bytes) => serde_json::from_slice::<Status>(&bytes)
                .map_or_else(|e| unreadable(&e), view::SeedStatus::Known),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => view::SeedStatus::Unknown,
            Err(e) => unreadable(&e),
        }
    }
}

/// The console is closed once the device is provisioned: a `config.toml` or admin signers
/// (or either seen by this process).
fn closed(api: &Api) -> bool {
    api.provisioned()
        || api
            .root
            .active()
            .join(atomix_config::root_files::ADMIN_SIGNERS)
            .exists()
}

/// The console's routes, for [`super::router_with`].
pub fn routes(settings: Settings) -> Router<Arc<Api>> {
    let console = Arc::new(Console {
        status_file: settings.status_file,
        jobs: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route(PAGE, get(page))
        .route(ASSETS, get(asset))
        .route(APPLY, post(apply_form))
        .route(JOB, get(job))
        .route(JOB_EVENTS, get(job_events))
        .layer(Extension(console))
}

/// The security headers of every HTML answer: nothing but this origin's script, style and
/// images; no framing; no sniffing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

fn html(status: StatusCode, markup: Markup) -> Response {
    let headers = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (CACHE_CONTROL, "no-store"),
        (HeaderName::from_static("content-security-policy"), CSP),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
        (HeaderName::from_static("referrer-policy"), "same-origin"),
    ];
    (status, headers, markup.into_string()).into_response()
}

fn not_found() -> Response {
    error::framework(StatusCode::NOT_FOUND)
}

/// `GET /`: the page.
async fn page(
    State(api): State<Arc<Api>>,
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
) -> Response {
    if closed(&api) {
        return not_found();
    }
    if let Err(detail) = origin::check(&headers) {
        return Reject::Unauthorized(detail).into_response();
    }
    html(
        StatusCode::OK,
        view::page(&api.bootstrap_token, &console.status()),
    )
}

/// The assets, compiled in: (name, content type, bytes).
const ASSET_FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    ("logo.svg", "image/svg+xml", view::LOGO),
];

/// `GET /assets/{name}`.
async fn asset(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Response {
    if closed(&api) {
        return not_found();
    }
    let Some((_, content_type, body)) = ASSET_FILES.iter().find(|(n, _, _)| *n == name) else {
        return not_found();
    };
    let headers = [
        (CONTENT_TYPE, *content_type),
        (CACHE_CONTROL, "no-cache"),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
    ];
    (headers, *body).into_response()
}

/// How a refused upload is shown: the report, and the config's text for its lines.
type Refusal = (atomix_api::ValidationResponse, Option<String>);

/// Validates an upload; a refusal comes with the config's text (read again from a bundle)
/// so that the report can show each error's line.
fn prepare(api: &Api, bytes: &[u8], name: &str) -> Result<Result<Submission, Refusal>, Reject> {
    match apply::prepare(api, bytes, name, Caller::Bootstrap) {
        Ok(submission) => Ok(Ok(submission)),
        Err(Reject::Invalid(report)) => {
            let text = Source::from_bytes(bytes, Some(name), InputCaller::Api, &api.limits)
                .ok()
                .map(|s| s.toml);
            Ok(Err((report, text)))
        }
        Err(other) => Err(other),
    }
}

/// `POST /apply`: the form.
async fn apply_form(
    State(api): State<Arc<Api>>,
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if closed(&api) {
        return not_found();
    }
    if let Err(detail) = origin::check(&headers) {
        return Reject::Unauthorized(detail).into_response();
    }
    let bytes = match auth::read_body(body, api.limits.max_upload_bytes).await {
        Ok(bytes) => bytes,
        Err(reject) => return reject.into_response(),
    };
    let form = match form::read(&headers, bytes).await {
        Ok(form) => form,
        Err(e) => return html(StatusCode::BAD_REQUEST, view::unreadable_form(&e)),
    };
    if !auth::token_matches(&api.bootstrap_token, &form.token) {
        return html(StatusCode::FORBIDDEN, view::bad_token());
    }
    let (name, config) = match form.config {
        Some(form::Config::File { name, bytes }) => (file_name(&name), bytes),
        Some(form::Config::Pasted(text)) => (DEFAULT_FILENAME.to_owned(), text.into()),
        None => return html(StatusCode::BAD_REQUEST, view::no_config()),
    };
    let prepared = {
        let (api, name) = (Arc::clone(&api), name.clone());
        blocking(move || prepare(&api, &config, &name)).await
    };
    let submission = match prepared {
        Ok(Ok(submission)) => submission,
        Ok(Err((report, text))) => {
            return html(
                StatusCode::BAD_REQUEST,
                view::refused(&name, &report, text.as_deref()),
            );
        }
        Err(reject) => return reject.into_response(),
    };
    match apply::submit(&api, submission) {
        Ok(accepted) => {
            console.submitted(&api, &accepted.job_id);
            match api.jobs.get(&accepted.job_id) {
                Some(job) => html(StatusCode::ACCEPTED, view::job(&job)),
                None => Reject::Internal.into_response(),
            }
        }
        Err(Reject::Conflict(_)) => html(StatusCode::CONFLICT, view::busy()),
        Err(reject) => reject.into_response(),
    }
}

/// `GET /ui/jobs/{job_id}`: a job's fragment.
async fn job(
    State(api): State<Arc<Api>>,
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<String>,
) -> Response {
    match console.access(&api, &id) {
        Access::Job(job) => html(StatusCode::OK, view::job(&job)),
        Access::Reconnected => html(StatusCode::OK, view::reconnected()),
        Access::Missing => html(StatusCode::NOT_FOUND, view::job_not_found()),
        Access::Closed => not_found(),
    }
}

/// `GET /ui/jobs/{job_id}/events`: the fragment at each change of the job, then `done`.
async fn job_events(
    State(api): State<Arc<Api>>,
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<String>,
) -> Response {
    // Subscribed before the job is read: no change is missed between the two.
    let changes = api.jobs.subscribe();
    match console.access(&api, &id) {
        Access::Job(_) => sse(follow(api, console, id, changes)),
        Access::Reconnected => sse(stream::iter([
            Ok(Event::default().data(view::reconnected().into_string())),
            Ok(done("succeeded")),
        ])),
        Access::Missing => html(StatusCode::NOT_FOUND, view::job_not_found()),
        Access::Closed => not_found(),
    }
}

fn sse(
    events: impl Stream<Item = Result<Event, std::convert::Infallible>> + Send + 'static,
) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The last event of a stream: `done`, its data the job's end (a browser ignores an event
/// without data).
fn done(end: &str) -> Event {
    Event::default().event("done").data(end)
}

/// Where a job's stream is.
enum Phase {
    /// Sending the fragment when it changes.
    Following,
    /// The terminal fragment was sent: `done` is next.
    Done,
    /// Ended.
    End,
}

/// A job's fragments: the current one, then each one that differs from the last sent, until
/// the job ends (or is no longer kept); then `done`.
fn follow(
    api: Arc<Api>,
    console: Arc<Console>,
    id: String,
    changes: watch::Receiver<u64>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> + Send + 'static {
    struct Follow {
        api: Arc<Api>,
        console: Arc<Console>,
        id: String,
        changes: watch::Receiver<u64>,
        last: String,
        phase: Phase,
        /// How the job ended (`done`'s data).
        end: &'static str,
    }
    let start = Follow {
        api,
        console,
        id,
        changes,
        last: String::new(),
        phase: Phase::Following,
        end: "failed",
    };
    stream::unfold(start, |mut f| async move {
        loop {
            match f.phase {
                Phase::End => return None,
                Phase::Done => {
                    f.phase = Phase::End;
                    return Some((Ok(done(f.end)), f));
                }
                Phase::Following => {}
            }
            let (body, terminal) = match f.api.jobs.get(&f.id) {
                Some(job) => {
                    if job.state == JobState::Succeeded {
                        f.end = "succeeded";
                    }
                    (view::job(&job).into_string(), job.state.is_terminal())
                }
                None => (view::job_not_found().into_string(), true),
            };
            if terminal {
                f.phase = Phase::Done;
                if closed(&f.api) {
                    f.console.served(&f.id);
                }
            }
            if body != f.last {
                f.last.clone_from(&body);
                return Some((Ok(Event::default().data(body)), f));
            }
            // Unchanged and still running: wait for the next change of any job (the sender
            // lives as long as the job store, so an error cannot happen while `api` is held).
            if !terminal && f.changes.changed().await.is_err() {
                f.phase = Phase::Done;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(job_path("j"), "/ui/jobs/j");
        assert_eq!(job_events_path("j"), "/ui/jobs/j/events");
    }
}
