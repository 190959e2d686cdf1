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
//!
//! This file is the store ([`Jobs`]): the records, their files, the single-flight slot and the
//! confirmations; `handle` is the running side of one job ([`JobHandle`]).

mod handle;
#[cfg(test)]
mod tests;

pub use handle::JobHandle;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
