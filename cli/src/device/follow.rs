//! Following a job to its end: `GET /api/jobs/{id}` at an interval that starts short and
//! backs off to a bound while nothing changes, each new event shown as a line (elapsed time,
//! step, then the service and its status, or the message), a job awaiting confirmation
//! confirmed once when asked to, and a device that stops answering after it answered given a
//! bounded grace period (its service may be restarting after an apply) before it is reported
//! unreachable.

use std::io::Write;
use std::time::{Duration, Instant};

use atomix_api::{JobEvent, JobResponse, JobState};

use super::client::{Device, RequestError};

/// The first and shortest interval between polls.
const POLL_MIN: Duration = Duration::from_millis(200);
/// The longest interval between polls.
const POLL_MAX: Duration = Duration::from_secs(2);
/// How long the device may stay unreachable while a job is followed.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);

/// One event as a progress line.
pub fn event_line(event: &JobEvent) -> String {
    let mut line = format!("{:>8.2}s  {:<21} ", event.elapsed_seconds, event.step);
    match (&event.service, &event.message) {
        (Some(service), _) => {
            line.push_str(service);
            if let Some(mode) = &event.mode {
                line.push_str(&format!(" ({mode})"));
            }
            if let Some(status) = &event.status {
                line.push_str(&format!(": {status}"));
            }
        }
        (None, Some(message)) => line.push_str(message),
        (None, None) => {}
    }
    line.trim_end().to_owned()
}

/// What has been shown of a job.
#[derive(Debug, Default)]
pub struct Progress {
    events: usize,
    state: Option<JobState>,
}

impl Progress {
    /// Writes what is new in `job` (events, a change of state other than the usual ones);
    /// whether anything was.
    pub fn show(&mut self, job: &JobResponse, out: &mut dyn Write) -> bool {
        let events = job.events.as_deref().unwrap_or_default();
        // Fewer events than shown: another job under the same id (the service restarted).
        if events.len() < self.events {
            self.events = 0;
        }
        for event in &events[self.events..] {
            let _ = writeln!(out, "{}", event_line(event));
        }
        let changed = events.len() != self.events || self.state != Some(job.state);
        if self.state != Some(job.state) && job.state == JobState::AwaitingConfirmation {
            let by = job
                .confirm_deadline
                .as_deref()
                .map(|deadline| format!(" by {deadline}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "atomix: job {} is applied and awaits confirmation{by} (else the device reverts it)",
                job.id
            );
        }
        self.events = events.len();
        self.state = Some(job.state);
        changed
    }
}

/// Follows job `id` on `device` until it ends, writing progress to `out`. When it awaits
/// confirmation, `confirm` (if any) is called once; its failure is shown and the job followed
/// on (the device reverts when the window closes).
pub fn follow(
    device: &Device,
    id: &str,
    out: &mut dyn Write,
    mut confirm: Option<&mut dyn FnMut() -> Result<(), RequestError>>,
) -> Result<JobResponse, RequestError> {
    let mut progress = Progress::default();
    let mut interval = POLL_MIN;
    let mut answered = false;
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match device.job(id) {
            Ok(job) => {
                answered = true;
                unreachable_since = None;
                let changed = progress.show(&job, out);
                if job.state.is_terminal() {
                    return Ok(job);
                }
                if job.state == JobState::AwaitingConfirmation
                    && let Some(confirm) = confirm.take()
                {
                    let _ = writeln!(out, "atomix: confirming job {id}");
                    match confirm() {
                        Ok(()) => {
                            let _ = writeln!(out, "atomix: confirmed job {id}");
                        }
                        Err(error) => {
                            super::write_error(out, &format!("cannot confirm job {id}: "), &error);
                        }
                    }
                    interval = POLL_MIN;
                    continue;
                }
                interval = if changed {
                    POLL_MIN
                } else {
                    (interval * 2).min(POLL_MAX)
                };
            }
            Err(error @ RequestError::Unreachable { .. }) if answered => {
                let since = *unreachable_since.get_or_insert_with(|| {
                    let _ = writeln!(
                        out,
                        "atomix: {error}; retrying for up to {} s",
                        UNREACHABLE_GRACE.as_secs()
                    );
                    Instant::now()
                });
                if since.elapsed() >= UNREACHABLE_GRACE {
                    return Err(error);
                }
                interval = POLL_MAX;
            }
            Err(error) => return Err(error),
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: &str, message: Option<&str>, service: Option<(&str, &str)>) -> JobEvent {
        JobEvent {
            step: step.into(),
            elapsed_seconds: 1.5,
            message: message.map(Into::into),
            service: service.map(|(s, _)| s.into()),
            mode: service.map(|_| "rootless".into()),
            status: service.map(|(_, s)| s.into()),
        }
    }

    #[test]
    fn event_lines_show_step_then_service_and_status_or_message() {
        assert_eq!(
            event_line(&event("prepare", Some("unpacking config.toml"), None)),
            "    1.50s  prepare               unpacking config.toml"
        );
        assert_eq!(
            event_line(&event(
                "service-status",
                Some("web.service (rootless) is failed"),
                Some(("web.service", "failed"))
            )),
            "    1.50s  service-status        web.service (rootless): failed"
        );
        assert_eq!(
            event_line(&event("running", None, None)),
            "    1.50s  running"
        );
    }

    #[test]
    fn progress_shows_each_event_once() {
        let mut job = JobResponse {
            id: "j".into(),
            state: JobState::Running,
            current_step: "prepare".into(),
            events: Some(vec![event("running", None, None)]),
            error: None,
            result: None,
            rollback_status: None,
            duration_seconds: None,
            confirm_deadline: None,
        };
        let mut progress = Progress::default();
        let mut out = Vec::new();
        assert!(progress.show(&job, &mut out));
        assert!(!progress.show(&job, &mut out));
        job.events
            .as_mut()
            .unwrap()
            .push(event("prepare", Some("unpacking"), None));
        job.state = JobState::AwaitingConfirmation;
        assert!(progress.show(&job, &mut out));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("running").count(), 1, "{text}");
        assert_eq!(text.matches("unpacking").count(), 1, "{text}");
        assert!(
            text.contains("job j is applied and awaits confirmation"),
            "{text}"
        );
    }
}
