//! The running side of one job ([`JobHandle`]): its events, its confirmation window, and its
//! end (a dropped handle fails the job).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use atomix_api::{JobEvent, JobState, ProvisionResult};

use super::{
    COMPLETED_STEP, CONFIRM_STEP, Confirmation, Decision, FAILED_STEP, Jobs, Live, NO_OUTCOME,
    RUNNING_STEP, event, fail, push, round2,
};

/// The running side of one job: its events and its end. Dropping it without
/// [`JobHandle::succeed`] or [`JobHandle::fail`] fails the job ([`NO_OUTCOME`]).
#[derive(Debug)]
pub struct JobHandle {
    pub(super) jobs: Arc<Jobs>,
    pub(super) id: String,
    pub(super) ended: bool,
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
