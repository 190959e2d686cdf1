//! One submission, from the upload to the job's end, through the one mutation path
//! ([`crate::import`]): [`prepare`] reads and validates the upload before any job exists (a
//! refused config is a 400 with the whole report), [`submit`] starts the single job and runs
//! the import on a blocking thread under the config root's lock, its steps and the engine's
//! events appended to the job (and persisted) as they happen. A risky re-apply asked to be
//! confirmed is held there for its window ([`super::confirm`]).

use std::sync::Arc;
use std::time::Duration;

use atomix_api::{Finding, ProvisionResult, SubmitResponse, ValidationResponse, routes};
use atomix_config::bundle::Caller as InputCaller;

use super::auth::Caller;
use super::confirm;
use super::engine::{Engine, System};
use super::error::{self, BUSY, Reject};
use super::events::{engine_event, progress, written};
use super::jobs::{JobHandle, event};
use super::router::Api;
use crate::activate::Event;
use crate::activate::bootstrap::{self, BOOTSTRAP_PORT};
use crate::import::{self, Activation, Options, Progress};
use crate::source::Source;
use crate::store::candidate::PAYLOAD_DIR;
use crate::store::{Promotion, RealFs};
use crate::validate::{self, Valid};

/// An upload read and validated, ready to import.
#[derive(Debug)]
pub struct Submission {
    /// What the job's first event says was read (`unpacking <name>`, or the partial update).
    pub prepared: String,
    /// The config and its payload.
    pub source: Source,
    /// The validated config and its rendered root.
    pub valid: Valid,
    /// Who submitted it: an unauthenticated caller may only make the initial import.
    pub caller: Caller,
    /// A partial update: the active `config.toml` it was made from. The job refuses to import
    /// over another, and keeps the active bundle payload (`files/`).
    pub based_on: Option<Vec<u8>>,
    /// Confirm-or-revert (`?confirm=SECONDS`): the window a risky re-apply is held for.
    pub confirm: Option<Duration>,
}

/// The 400 of a refused config: `error` as the text, `errors` located.
pub fn refused(error: String, errors: Vec<Finding>) -> Reject {
    Reject::Invalid(ValidationResponse {
        ok: false,
        error: Some(error),
        warnings: None,
        errors: Some(errors),
    })
}

/// The 400 of one error, at TOML `path` if any.
pub fn refused_one(path: Option<&str>, message: String) -> Reject {
    let finding = Finding {
        path: path.map(str::to_owned),
        line: None,
        col: None,
        message: message.clone(),
        severity: "error".to_owned(),
    };
    refused(message, vec![finding])
}

/// The 409 while a job holds the slot: which job awaits confirmation, if one does.
pub fn conflict(api: &Api) -> Reject {
    Reject::Conflict(match api.jobs.awaiting() {
        Some(id) => error::awaiting(&id),
        None => BUSY.to_owned(),
    })
}

/// Reads `bytes` (a config.toml or a bundle, told apart by magic or `name`) and validates it
/// for this device's config root. Blocking (decompression, parsing): handlers call it through
/// [`super::handlers::prepare`], on a blocking thread, one per core at a time. A refusal is the
/// 400 of spec 6.7 with every error located.
pub fn prepare(api: &Api, bytes: &[u8], name: &str, caller: Caller) -> Result<Submission, Reject> {
    let source = Source::from_bytes(bytes, Some(name), InputCaller::Api, &api.limits)
        .map_err(|e| refused_one(None, format!("{:#}", anyhow::Error::new(e))))?;
    let runtime_root = api.root.active().to_string_lossy().into_owned();
    let valid = validate::validate(&source.toml, &runtime_root).map_err(|report| {
        let errors: Vec<Finding> = report
            .errors()
            .map(|d| Finding {
                path: (!d.path.is_empty()).then(|| d.path.clone()),
                line: Some(d.line as u64),
                col: Some(d.col as u64),
                message: d.message.clone(),
                severity: "error".to_owned(),
            })
            .collect();
        let count = errors.len();
        let text = format!(
            "{name}: {count} error{}\n{}",
            if count == 1 { "" } else { "s" },
            report.render_text(name, &source.toml).trim_end()
        );
        refused(text, errors)
    })?;
    Ok(Submission {
        prepared: format!("unpacking {name}"),
        source,
        valid,
        caller,
        based_on: None,
        confirm: None,
    })
}

/// Starts the job of `submission` (409 while another job holds the slot) and runs it on a
/// blocking thread; the 202 body.
pub fn submit(api: &Arc<Api>, submission: Submission) -> Result<SubmitResponse, Reject> {
    let first = vec![
        event("prepare", submission.prepared.clone()),
        event("validate", "parsing config: valid"),
    ];
    let job = api.jobs.start(first).map_err(|_| conflict(api))?;
    let id = job.id().to_owned();
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || run(&api, job, submission));
    Ok(SubmitResponse {
        job_url: routes::job(&id),
        job_id: id,
        state: "submitted".to_owned(),
    })
}

/// The job: connect the engine, import, then report the outcome (after the confirmation
/// window of a held re-apply).
fn run(api: &Api, job: JobHandle, s: Submission) {
    job.running();
    let mut system: Option<Box<dyn System>> = match &api.engine {
        Engine::None => None,
        Engine::Systemd(connect) => match connect() {
            Ok(system) => Some(system),
            Err(e) => return job.fail(&format!("cannot reach systemd: {e}"), None),
        },
    };
    let mut deps = system.as_mut().map(|s| s.deps());
    let options = Options {
        keep_pending: false,
        payload_owner: api.payload_owner,
        initial_only: s.caller == Caller::Bootstrap,
        unactivated_reapply: deps.is_none(),
        keep_payload: s.based_on.is_some(),
        based_on: s.based_on.as_deref(),
        hold_risky: s.confirm.is_some(),
    };
    // Whether `files/` is written: the bundle's, or the active one a partial update keeps.
    let payload = s.source.payload.is_some()
        || (s.based_on.is_some() && api.root.active().join(PAYLOAD_DIR).exists());
    // Without the engine, only the store's events come (a held change committed or
    // restored): nothing is activated.
    let mut said_activate = deps.is_none();
    let mut events = |e: Event| {
        if !said_activate {
            said_activate = true;
            job.event(event(
                "activate",
                "activating the new config: users, Quadlet units, network, firewall, health",
            ));
        }
        job.event(engine_event(&e));
    };
    let result = {
        let mut on_step = |p: Progress<'_>| {
            if let Progress::Promote(_) = p {
                for ev in written(&s.valid.root.files, payload) {
                    job.event(ev);
                }
            }
            for ev in progress(&p) {
                job.event(ev);
            }
        };
        let activation = deps.as_mut().map(|deps| Activation {
            deps,
            events: &mut events,
        });
        import::import_reporting(
            &RealFs,
            &api.root,
            &s.source,
            &s.valid,
            options,
            activation,
            &mut on_step,
        )
    };
    let imported = match result {
        Ok(imported) => imported,
        Err(e) => return job.fail(&format!("{:#}", anyhow::Error::new(e)), None),
    };
    let reapply = imported.kind == Promotion::Reapply;
    let outcome = ProvisionResult {
        warnings: s.valid.root.warnings.clone(),
        reapply: Some(reapply),
        rolled_back: reapply.then_some(false),
        forwarding_url: Some(format!(
            "http://{}:{BOOTSTRAP_PORT}",
            s.valid.config.network.lan.gateway_ip()
        )),
    };
    if let Some(held) = imported.held {
        let wait = s.confirm.unwrap_or(confirm::DEFAULT_WINDOW);
        let ended = confirm::hold(api, &job, held, deps.as_mut(), &mut events, wait, &outcome);
        // The listener follows the config that stays active.
        api.provisioning_changed();
        return match ended {
            Ok(()) => job.succeed(outcome),
            Err((error, rollback)) => job.fail(&error, rollback),
        };
    }
    match &imported.completion {
        Some(done) if done.committed.is_none() => {
            let error = format!("activation failed: {}", done.failures().join(", "));
            return job.fail(&error, Some(done.rollback.to_string()));
        }
        Some(_) => {}
        None => job.event(event(
            "activate",
            "skipped: --activation none, the engine is not run; committed without activation",
        )),
    }
    if s.confirm.is_some() {
        job.event(confirm::not_held(reapply));
    }
    if !reapply {
        let said = match deps.as_mut() {
            Some(deps) => {
                let ifaces = deps.interfaces.clone();
                match bootstrap::toggle(&RealFs, &api.root, deps.firewall, &ifaces) {
                    Ok(open) => format!(
                        "initial provisioning complete; bootstrap WAN tcp/{BOOTSTRAP_PORT} {}",
                        if open { "open" } else { "closed" }
                    ),
                    Err(e) => format!(
                        "initial provisioning complete; warning: bootstrap WAN toggle: {:#}",
                        anyhow::Error::new(e)
                    ),
                }
            }
            None => "initial provisioning complete (no bootstrap WAN toggle without activation)"
                .to_owned(),
        };
        job.event(event("complete", said));
    }
    job.succeed(outcome);
    api.provisioning_changed();
}
