//! The provisioning jobs (spec 6.4), durable: every change to a job (its events as they
//! happen, its end) is written atomically, with fsync, to `<dir>/<id>.json` (by default
//! `/data/provision-jobs`, beside the config root), so that a client polling across a restart
//! of the service reads the real outcome. One job at a time (single flight); at most
//! [`MAX_JOBS`] are kept, the oldest finished ones deleted first.
//!
//! Every failure ends with an explicit terminal event (step [`FAILED_STEP`]); a job that was
//! running when the service stopped is reported failed that way at the next start.
//!
//! Confirm-or-revert: a job can await confirmation ([`JobHandle::await_confirmation`]) until
//! [`Jobs::confirm`] or its deadline, holding the single-flight slot. One a stopped service left
//! awaiting is kept with what settles it ([`Confirmation`]) for the next start
//! ([`Jobs::open_windows`], [`Jobs::resume`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atomix_api::{JobEvent, JobResponse, JobState, ProvisionResult};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store::tree::write_atomic;
use crate::store::{Fs, FsError, RealFs};

/// Jobs kept (the original keeps 64 in memory).
pub const MAX_JOBS: usize = 64;
/// The directory of the jobs, beside the config root.
pub const JOBS_DIR: &str = "provision-jobs";
/// The step of the event the job store adds when a job starts running.
pub const RUNNING_STEP: &str = "running";
/// The step of the terminal event of a success (the original's).
pub const COMPLETED_STEP: &str = "completed";
/// The step of the terminal event of a failure (ours; the original added none).
pub const FAILED_STEP: &str = "failed";
/// The step of the event that opens a confirmation window (ours).
pub const AWAITING_STEP: &str = "awaiting-confirmation";
/// The step of the event that closes it: confirmed, or not in time (ours).
pub const CONFIRM_STEP: &str = "confirm";
/// The error of a job that was running when the service stopped.
pub const INTERRUPTED: &str = "the service stopped while the job ran";
/// The error of a job whose work ended without an outcome (a bug: it panicked).
pub const NO_OUTCOME: &str = "the job ended without an outcome";
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// A job as stored: the response a client reads, and when it was submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    job: JobResponse,
    /// Seconds since the epoch.
    submitted_at: f64,
    /// While the job awaits confirmation: what settles it after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmation: Option<Confirmation>,
}

/// What settles a confirmation window that a stopped service did not see close: which config
/// the window holds, and the result its confirmation gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The lowercase hex SHA-256 of the held `config.toml`.
    pub config_sha256: String,
    /// The job's result once confirmed.
    pub result: ProvisionResult,
}

/// How a confirmation window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// [`Jobs::confirm`] came in time.
    Confirmed,
    /// The deadline passed first.
    Lapsed,
}

/// Why a job cannot be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// No such job.
    #[error("job not found")]
    NotFound,
    /// The job is not awaiting confirmation.
    #[error("job {id} is not awaiting confirmation: it is {state}")]
    NotAwaiting {
        /// The job.
        id: String,
        /// Its state.
        state: &'static str,
    },
}

#[derive(Debug)]
struct Live {
    record: Record,
    /// This process's clock for the elapsed times; `None` for a job loaded from disk.
    submitted: Option<Instant>,
    started: Option<Instant>,
    /// A confirmation came while it awaited one.
    confirmed: bool,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, Live>,
    /// The job holding the single-flight slot.
    current: Option<String>,
}

/// The job store.
#[derive(Debug)]
pub struct Jobs {
    dir: PathBuf,
    state: Mutex<State>,
    /// Serializes the writes of job files, so that the state's lock is never held across an
    /// fsync (a client reading a job never waits for a disk) and a file never goes back to an
    /// older record.
    writer: Mutex<()>,
    /// Wakes a job awaiting confirmation.
    confirmed: Condvar,
    changed: watch::Sender<u64>,
}

/// Why the store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The directory cannot be made or read.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Another job is submitted or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a provision job is already running")]
pub struct Busy;

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// An event of `step` saying `message` (its elapsed time is set when it is added).
pub fn event(step: &str, message: impl Into<String>) -> JobEvent {
    JobEvent {
        step: step.to_owned(),
        elapsed_seconds: 0.0,
        message: Some(message.into()),
        service: None,
        mode: None,
        status: None,
    }
}

fn is_job_file(name: &str) -> Option<&str> {
    let id = name.strip_suffix(".json")?;
    uuid::Uuid::try_parse(id).ok().map(|_| id)
}

impl Jobs {
    /// Opens the store in `dir` (made if missing): loads every job, reports the ones left
    /// running by a stopped service as failed (persisted), and trims to [`MAX_JOBS`]. A file
    /// that does not parse is logged and left alone.
    pub fn open(dir: &Path) -> Result<Arc<Self>, JobsError> {
        let fs = RealFs;
        if !fs.exists(dir)? {
            if let Some(parent) = dir.parent()
                && !fs.exists(parent)?
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| FsError::new(crate::store::FsOp::CreateDir, parent, e))?;
            }
            fs.create_dir(dir, DIR_MODE)?;
        }
        let mut state = State::default();
        for name in fs.read_dir(dir)? {
            let Some(id) = is_job_file(&name) else {
                continue;
            };
            let path = dir.join(&name);
            let record: Record = match serde_json::from_slice(&fs.read(&path)?) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("jobs: ignoring {}: {e}", path.display());
                    continue;
                }
            };
            if record.job.id != id {
                eprintln!(
                    "jobs: ignoring {}: it holds job {}",
                    path.display(),
                    record.job.id
                );
                continue;
            }
            state.jobs.insert(
                id.to_owned(),
                Live {
                    record,
                    submitted: None,
                    started: None,
                    confirmed: false,
                },
            );
        }
        let (changed, _) = watch::channel(0);
        let jobs = Arc::new(Self {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            writer: Mutex::new(()),
            confirmed: Condvar::new(),
            changed,
        });
        {
            let mut state = jobs.lock();
            let interrupted: Vec<String> = state
                .jobs
                .iter()
                .filter(|(_, l)| !l.record.job.state.is_terminal() && !open_window(l))
                .map(|(id, _)| id.clone())
                .collect();
            for id in interrupted {
                if let Some(live) = state.jobs.get_mut(&id) {
                    let elapsed = (now_epoch() - live.record.submitted_at).max(0.0);
                    let last = live
                        .record
                        .job
                        .events
                        .as_ref()
                        .and_then(|e| e.last())
                        .map_or(0.0, |e| e.elapsed_seconds);
                    let mut ev = event(FAILED_STEP, INTERRUPTED);
                    ev.elapsed_seconds = round2(elapsed.max(last));
                    fail(&mut live.record.job, ev, INTERRUPTED, None);
                    jobs.persist(&live.record);
                }
            }
            jobs.trim(&mut state, MAX_JOBS);
        }
        Ok(jobs)
    }

    /// Starts a job if none is submitted or running: it holds the single-flight slot until
    /// its handle ends it. `first` are events that happened before the job existed (the
    /// upload read and validated).
    pub fn start(self: &Arc<Self>, first: Vec<JobEvent>) -> Result<JobHandle, Busy> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut state = self.lock();
        if state.current.is_some() {
            return Err(Busy);
        }
        self.trim(&mut state, MAX_JOBS - 1);
        let events: Vec<JobEvent> = first;
        let current_step = events
            .last()
            .map_or_else(|| "submitted".to_owned(), |e| e.step.clone());
        let record = Record {
            confirmation: None,
            job: JobResponse {
                id: id.clone(),
                state: JobState::Submitted,
                current_step,
                events: (!events.is_empty()).then_some(events),
                error: None,
                result: None,
                rollback_status: None,
                duration_seconds: None,
                confirm_deadline: None,
            },
            submitted_at: now_epoch(),
        };
        self.persist(&record);
        state.jobs.insert(
            id.clone(),
            Live {
                record,
                submitted: Some(Instant::now()),
                started: None,
                confirmed: false,
            },
        );
        state.current = Some(id.clone());
        drop(state);
        self.notify();
        Ok(JobHandle {
            jobs: Arc::clone(self),
            id,
            ended: false,
        })
    }

    /// A job as a client reads it.
    pub fn get(&self, id: &str) -> Option<JobResponse> {
        self.lock().jobs.get(id).map(|l| l.record.job.clone())
    }

    /// Whether a job holds the single-flight slot.
    pub fn busy(&self) -> bool {
        self.lock().current.is_some()
    }

    /// The job holding the slot, if it awaits confirmation.
    pub fn awaiting(&self) -> Option<String> {
        let state = self.lock();
        let id = state.current.as_ref()?;
        let live = state.jobs.get(id)?;
        (live.record.job.state == JobState::AwaitingConfirmation).then(|| id.clone())
    }

    /// Confirms job `id`, which must await confirmation: its window closes (event
    /// [`CONFIRM_STEP`]; it runs again, to commit) and [`JobHandle::await_confirmation`]
    /// returns [`Decision::Confirmed`].
    pub fn confirm(&self, id: &str) -> Result<(), ConfirmError> {
        let mut state = self.lock();
        let live = state.jobs.get(id).ok_or(ConfirmError::NotFound)?;
        let now = live.record.job.state;
        if now != JobState::AwaitingConfirmation {
            return Err(ConfirmError::NotAwaiting {
                id: id.to_owned(),
                state: now.as_str(),
            });
        }
        self.change(&mut state, id, |live, elapsed| {
            live.confirmed = true;
            live.record.job.state = JobState::Running;
            push(
                &mut live.record.job,
                JobEvent {
                    elapsed_seconds: elapsed,
                    ..event(
                        CONFIRM_STEP,
                        "confirmed by an admin: committing the new config",
                    )
                },
            );
        });
        drop(state);
        self.persist_latest(id);
        self.confirmed.notify_all();
        self.notify();
        Ok(())
    }

    /// The jobs a stopped service left awaiting confirmation, with what settles each: the
    /// service settles them with [`Jobs::resume`] before it serves.
    pub fn open_windows(&self) -> Vec<(String, Confirmation)> {
        self.lock()
            .jobs
            .iter()
            .filter(|(_, l)| open_window(l))
            .filter_map(|(id, l)| Some((id.clone(), l.record.confirmation.clone()?)))
            .collect()
    }

    /// Takes the single-flight slot for job `id`, loaded from disk, to settle it; `None` if the
    /// slot is taken or there is no such job.
    pub fn resume(self: &Arc<Self>, id: &str) -> Option<JobHandle> {
        let mut state = self.lock();
        if state.current.is_some() || !state.jobs.contains_key(id) {
            return None;
        }
        state.current = Some(id.to_owned());
        Some(JobHandle {
            jobs: Arc::clone(self),
            id: id.to_owned(),
            ended: false,
        })
    }

    /// Ticks at every change of any job (for streaming a job's events: wait for a change,
    /// then [`Jobs::get`] it again).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes a record; a failure is logged (the job goes on in memory).
    fn persist(&self, record: &Record) {
        let result = serde_json::to_vec_pretty(record)
            .map_err(|e| e.to_string())
            .and_then(|mut json| {
                json.push(b'\n');
                write_atomic(&RealFs, &self.path(&record.job.id), FILE_MODE, &json)
                    .map_err(|e| format!("{e:#}"))
            });
        if let Err(e) = result {
            eprintln!("jobs: cannot persist job {}: {e}", record.job.id);
        }
    }

    /// Deletes the oldest finished jobs until at most `keep` are left.
    fn trim(&self, state: &mut State, keep: usize) {
        if state.jobs.len() <= keep {
            return;
        }
        let mut finished: Vec<(f64, String)> = state
            .jobs
            .iter()
            .filter(|(_, l)| l.record.job.state.is_terminal())
            .map(|(id, l)| (l.record.submitted_at, id.clone()))
            .collect();
        finished.sort_by(|a, b| a.0.total_cmp(&b.0));
        let excess = state.jobs.len() - keep;
        for (_, id) in finished.into_iter().take(excess) {
            state.jobs.remove(&id);
            let path = self.path(&id);
            if let Err(e) = RealFs.remove_file(&path) {
                eprintln!("jobs: cannot delete {}: {e:#}", path.display());
            }
        }
        if let Err(e) = RealFs.fsync_dir(&self.dir) {
            eprintln!("jobs: {e:#}");
        }
    }

    /// Applies `change` to job `id` with its clock, persists it and tells the subscribers.
    fn update(&self, id: &str, change: impl FnOnce(&mut Live, f64)) {
        let mut state = self.lock();
        self.change(&mut state, id, change);
        drop(state);
        self.persist_latest(id);
        self.notify();
    }

    /// Writes job `id` as it is now (after the state's lock was let go).
    fn persist_latest(&self, id: &str) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let record = self.lock().jobs.get(id).map(|l| l.record.clone());
        if let Some(record) = record {
            self.persist(&record);
        }
    }

    /// [`Jobs::update`]'s change under a lock already held; the caller persists
    /// ([`Jobs::persist_latest`]) and tells the subscribers once it let the lock go.
    fn change(&self, state: &mut State, id: &str, change: impl FnOnce(&mut Live, f64)) {
        let Some(live) = state.jobs.get_mut(id) else {
            return;
        };
        let elapsed = match live.submitted {
            Some(t) => t.elapsed().as_secs_f64(),
            None => (now_epoch() - live.record.submitted_at).max(0.0),
        };
        change(live, round2(elapsed));
    }

    fn release(&self, id: &str) {
        let mut state = self.lock();
        if state.current.as_deref() == Some(id) {
            state.current = None;
        }
    }
}

/// Whether the job awaits confirmation with what settles it (kept across a restart).
fn open_window(live: &Live) -> bool {
    live.record.job.state == JobState::AwaitingConfirmation && live.record.confirmation.is_some()
}

fn push(job: &mut JobResponse, ev: JobEvent) {
    job.current_step.clone_from(&ev.step);
    job.events.get_or_insert_with(Vec::new).push(ev);
}

fn fail(job: &mut JobResponse, ev: JobEvent, error: &str, rollback: Option<String>) {
    job.state = JobState::Failed;
    job.error = Some(error.to_owned());
    job.rollback_status = rollback;
    push(job, ev);
}

/// The running side of one job: its events and its end. Dropping it without
/// [`JobHandle::succeed`] or [`JobHandle::fail`] fails the job ([`NO_OUTCOME`]).
#[derive(Debug)]
pub struct JobHandle {
    jobs: Arc<Jobs>,
    id: String,
    ended: bool,
}

impl JobHandle {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Marks the job running (event [`RUNNING_STEP`]).
    pub fn running(&self) {
        self.jobs.update(&self.id, |live, elapsed| {
            live.started = Some(Instant::now());
            live.record.job.state = JobState::Running;
            push(
                &mut live.record.job,
                JobEvent {
                    elapsed_seconds: elapsed,
                    message: None,
                    ..event(RUNNING_STEP, "")
                },
            );
        });
    }

    /// Adds an event (its elapsed time is set here); persisted before this returns.
    pub fn event(&self, ev: JobEvent) {
        self.jobs.update(&self.id, |live, elapsed| {
            push(
                &mut live.record.job,
                JobEvent {
                    elapsed_seconds: elapsed,
                    ..ev
                },
            );
        });
    }

    /// Opens a confirmation window of `wait` (state awaiting-confirmation, its deadline, the
    /// event `opened`, `confirmation` kept for a restart) and waits for it to close: a
    /// [`Jobs::confirm`] in time, or the deadline (then event [`CONFIRM_STEP`]: the window
    /// closed unconfirmed, and the job runs again, to revert).
    pub fn await_confirmation(
        &self,
        wait: Duration,
        confirmation: Confirmation,
        opened: JobEvent,
    ) -> Decision {
        let until = Instant::now() + wait;
        let deadline = humantime::format_rfc3339_seconds(SystemTime::now() + wait).to_string();
        self.jobs.update(&self.id, |live, elapsed| {
            live.confirmed = false;
            live.record.confirmation = Some(confirmation);
            let job = &mut live.record.job;
            job.state = JobState::AwaitingConfirmation;
            job.confirm_deadline = Some(deadline);
            push(
                job,
                JobEvent {
                    elapsed_seconds: elapsed,
                    ..opened
                },
            );
        });
        let mut state = self.jobs.lock();
        loop {
            let confirmed = state.jobs.get(&self.id).is_none_or(|l| l.confirmed);
            if confirmed {
                return Decision::Confirmed;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let message = format!(
                    "not confirmed within {} s: restoring the previous config",
                    wait.as_secs()
                );
                self.jobs.change(&mut state, &self.id, |live, elapsed| {
                    live.record.job.state = JobState::Running;
                    push(
                        &mut live.record.job,
                        JobEvent {
                            elapsed_seconds: elapsed,
                            ..event(CONFIRM_STEP, message)
                        },
                    );
                });
                drop(state);
                self.jobs.persist_latest(&self.id);
                self.jobs.notify();
                return Decision::Lapsed;
            }
            state = match self.jobs.confirmed.wait_timeout(state, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Ends the job as succeeded (event [`COMPLETED_STEP`]).
    pub fn succeed(mut self, result: ProvisionResult) {
        self.end(
            |live, ev| {
                let job = &mut live.record.job;
                job.state = JobState::Succeeded;
                job.result = Some(result);
                push(
                    job,
                    JobEvent {
                        message: None,
                        ..ev
                    },
                );
            },
            COMPLETED_STEP,
        );
    }

    /// Ends the job as failed with `error` (event [`FAILED_STEP`] saying it) and what became
    /// of the previous config (`None`: it failed before the promotion).
    pub fn fail(mut self, error: &str, rollback: Option<String>) {
        self.end(
            |live, ev| {
                let message = match &rollback {
                    Some(r) => format!("{error} (rollback {r})"),
                    None => error.to_owned(),
                };
                fail(
                    &mut live.record.job,
                    JobEvent {
                        message: Some(message),
                        ..ev
                    },
                    error,
                    rollback.clone(),
                );
            },
            FAILED_STEP,
        );
    }

    fn end(&mut self, finish: impl FnOnce(&mut Live, JobEvent), step: &str) {
        self.ended = true;
        self.jobs.update(&self.id, |live, elapsed| {
            live.record.confirmation = None;
            live.record.job.duration_seconds =
                live.started.map(|t| round2(t.elapsed().as_secs_f64()));
            finish(
                live,
                JobEvent {
                    elapsed_seconds: elapsed,
                    ..event(step, "")
                },
            );
        });
        self.jobs.release(&self.id);
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if !self.ended {
            self.end(
                |live, ev| {
                    fail(
                        &mut live.record.job,
                        JobEvent {
                            message: Some(NO_OUTCOME.to_owned()),
                            ..ev
                        },
                        NO_OUTCOME,
                        None,
                    );
                },
                FAILED_STEP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> ProvisionResult {
        ProvisionResult {
            warnings: vec![],
            reapply: Some(false),
            rolled_back: None,
            forwarding_url: None,
        }
    }

    #[test]
    fn single_flight_events_and_the_terminal_event() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(&dir.path().join("jobs")).unwrap();
        let job = jobs.start(vec![event("prepare", "read")]).unwrap();
        let id = job.id().to_owned();
        assert_eq!(jobs.start(vec![]).unwrap_err(), Busy);
        job.running();
        job.event(event("promote", "swap"));
        assert_eq!(jobs.get(&id).unwrap().current_step, "promote");
        job.fail("boom", Some("completed".into()));
        assert!(!jobs.busy());
        let got = jobs.get(&id).unwrap();
        assert_eq!(got.state, JobState::Failed);
        assert_eq!(got.error.as_deref(), Some("boom"));
        assert_eq!(got.rollback_status.as_deref(), Some("completed"));
        let steps: Vec<_> = got.events.unwrap().iter().map(|e| e.step.clone()).collect();
        assert_eq!(steps, ["prepare", "running", "promote", "failed"]);
        assert_eq!(got.current_step, "failed");
        // Durable: a new store over the directory reads the same job.
        let again = Jobs::open(&dir.path().join("jobs")).unwrap();
        assert_eq!(again.get(&id).unwrap().error.as_deref(), Some("boom"));
        let ok = jobs.start(vec![]).unwrap();
        let ok_id = ok.id().to_owned();
        ok.succeed(result());
        let got = jobs.get(&ok_id).unwrap();
        assert_eq!(got.state, JobState::Succeeded);
        assert_eq!(got.current_step, "completed");
    }

    #[test]
    fn a_window_closes_by_confirmation_or_deadline_and_stays_open_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path()).unwrap();
        let confirmation = Confirmation {
            config_sha256: "ab".into(),
            result: result(),
        };
        let job = jobs.start(vec![]).unwrap();
        let id = job.id().to_owned();
        assert_eq!(
            jobs.confirm(&id).unwrap_err().to_string(),
            format!("job {id} is not awaiting confirmation: it is submitted")
        );
        let confirmer = {
            let (jobs, id) = (Arc::clone(&jobs), id.clone());
            std::thread::spawn(move || {
                while jobs.awaiting().is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let at = jobs.get(&id).unwrap();
                assert!(at.confirm_deadline.is_some());
                jobs.confirm(&id).unwrap();
            })
        };
        let opened = event(AWAITING_STEP, "held");
        let decision = job.await_confirmation(
            Duration::from_secs(30),
            confirmation.clone(),
            opened.clone(),
        );
        confirmer.join().unwrap();
        assert_eq!(decision, Decision::Confirmed);
        assert_eq!(jobs.get(&id).unwrap().state, JobState::Running);
        assert!(jobs.confirm(&id).is_err(), "once");
        job.succeed(result());
        assert_eq!(jobs.confirm("nope").unwrap_err(), ConfirmError::NotFound);

        let job = jobs.start(vec![]).unwrap();
        let decision = job.await_confirmation(
            Duration::from_millis(50),
            confirmation.clone(),
            opened.clone(),
        );
        assert_eq!(decision, Decision::Lapsed);
        let lapsed = jobs.get(job.id()).unwrap();
        assert_eq!(lapsed.state, JobState::Running);
        assert_eq!(lapsed.current_step, CONFIRM_STEP);
        assert!(jobs.confirm(job.id()).is_err(), "too late");
        job.fail("reverted", Some("completed".into()));

        // The service stops inside a window: the next start keeps it open, to settle it.
        let job = jobs.start(vec![]).unwrap();
        let id = job.id().to_owned();
        let waiter = std::thread::spawn(move || {
            let _ = job.await_confirmation(Duration::from_secs(3600), confirmation, opened);
            std::mem::forget(job);
        });
        while jobs.awaiting().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = Jobs::open(dir.path()).unwrap();
        assert_eq!(
            after.get(&id).unwrap().state,
            JobState::AwaitingConfirmation
        );
        let open = after.open_windows();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, id);
        assert_eq!(open[0].1.config_sha256, "ab");
        assert!(!after.busy());
        let handle = after.resume(&id).unwrap();
        assert!(after.resume(&id).is_none(), "the slot is taken");
        handle.fail("settled", None);
        assert!(after.open_windows().is_empty());
        // Release the first store's waiter.
        jobs.confirm(&id).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn a_dropped_handle_fails_its_job() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path()).unwrap();
        let id = {
            let job = jobs.start(vec![]).unwrap();
            job.id().to_owned()
        };
        let got = jobs.get(&id).unwrap();
        assert_eq!(got.state, JobState::Failed);
        assert_eq!(got.error.as_deref(), Some(NO_OUTCOME));
        assert!(!jobs.busy());
    }

    #[test]
    fn a_job_left_running_is_failed_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path()).unwrap();
        let job = jobs.start(vec![]).unwrap();
        job.running();
        let id = job.id().to_owned();
        // The service dies: the handle is never dropped.
        std::mem::forget(job);
        let after = Jobs::open(dir.path()).unwrap();
        let got = after.get(&id).unwrap();
        assert_eq!(got.state, JobState::Failed);
        assert_eq!(got.error.as_deref(), Some(INTERRUPTED));
        let last = got.events.unwrap().pop().unwrap();
        assert_eq!(
            (last.step.as_str(), last.message.as_deref()),
            (FAILED_STEP, Some(INTERRUPTED))
        );
        assert!(!after.busy());
        // And persisted so.
        let reread = Jobs::open(dir.path()).unwrap();
        assert_eq!(reread.get(&id).unwrap().state, JobState::Failed);
    }

    #[test]
    fn at_most_max_jobs_are_kept_oldest_finished_first() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..MAX_JOBS + 3 {
            let job = jobs.start(vec![]).unwrap();
            ids.push(job.id().to_owned());
            job.succeed(result());
        }
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, MAX_JOBS);
        for gone in &ids[..3] {
            assert!(jobs.get(gone).is_none());
            assert!(!dir.path().join(format!("{gone}.json")).exists());
        }
        assert!(jobs.get(&ids[3]).is_some());
        assert!(jobs.get(ids.last().unwrap()).is_some());
    }
}
