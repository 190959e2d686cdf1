//! The store on a temporary directory: single flight, events, the terminal event, durability
//! across a restart, confirmation windows, trimming.

use std::sync::Arc;
use std::time::Duration;

use atomix_api::{JobState, ProvisionResult};

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
