//! The provisioning jobs (spec 6.4), durable: every change to a job (its events as they
//! happen, its end) is written atomically, with fsync, to `<dir>/<id>.json` (by default
//! `/data/provision-jobs`, beside the config root), so that a client polling across a restart
//! of the service reads the real outcome. One job at a time (single flight); at most
//! [`MAX_JOBS`] are kept, the oldest finished ones deleted first.
//!
//! Every failure ends with an explicit terminal event (step [`FAILED_STEP`]); a job that was
//! running when the service stopped is reported failed that way at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
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
}

#[derive(Debug)]
struct Live {
    record: Record,
    /// This process's clock for the elapsed times; `None` for a job loaded from disk.
    submitted: Option<Instant>,
    started: Option<Instant>,
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
                },
            );
        }
        let (changed, _) = watch::channel(0);
        let jobs = Arc::new(Self {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            changed,
        });
        {
            let mut state = jobs.lock();
            let interrupted: Vec<String> = state
                .jobs
                .iter()
                .filter(|(_, l)| !l.record.job.state.is_terminal())
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
            job: JobResponse {
                id: id.clone(),
                state: JobState::Submitted,
                current_step,
                events: (!events.is_empty()).then_some(events),
                error: None,
                result: None,
                rollback_status: None,
                duration_seconds: None,
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

    /// Ticks at every change of any job (for streaming a job's events: wait for a change,
    /// then [`Jobs::get`] it again).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
        let Some(live) = state.jobs.get_mut(id) else {
            return;
        };
        let elapsed = live
            .submitted
            .map_or(0.0, |t| round2(t.elapsed().as_secs_f64()));
        change(live, elapsed);
        self.persist(&live.record);
        drop(state);
        self.notify();
    }

    fn release(&self, id: &str) {
        let mut state = self.lock();
        if state.current.as_deref() == Some(id) {
            state.current = None;
        }
    }
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
