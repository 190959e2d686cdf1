//! T0 tests of the activation engine with fakes: success, job failure, failure inside the
//! settle window, timeout, apply-step failures, rollback outcomes, restart order,
//! `allow_degraded`, and the mark-good gate.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_provision::activate::FakeSystemd;
use atomix_provision::activate::Rootless;
use atomix_provision::activate::accounts::{Existing, Shells};
use atomix_provision::activate::rauc::RaucCall;
use atomix_provision::activate::{
    AccountOp, ActiveState, Clock, Completion, DeployStatus, Deps, Event, Failure, FakeAccounts,
    FakeClock, FakeFirewall, FakeNetwork, FakeRauc, FakeTimeSync, Gate, Interfaces, JobResult,
    NetworkChanges, RollbackStatus, ServiceStatus, Step, SystemdCall, complete, mark_good_gate,
};
use atomix_provision::store::Owner;
use atomix_provision::store::quadlet_sync::{MANIFEST, Mode};
use atomix_provision::store::{ConfigRoot, Promotion, RealFs, promote};
use serde_json::{Value, json};

/// The fakes and the directories of one test.
struct World {
    dir: tempfile::TempDir,
    system: FakeSystemd,
    user: FakeSystemd,
    accounts: FakeAccounts,
    network: FakeNetwork,
    firewall: FakeFirewall,
    clock: FakeClock,
    time_sync: FakeTimeSync,
    events: Vec<Event>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The rootless user's home goes under it, as under /var/lib on the device.
        fs::create_dir(dir.path().join("home")).unwrap();
        Self {
            dir,
            system: FakeSystemd::new(),
            user: FakeSystemd::new(),
            accounts: FakeAccounts::default(),
            network: FakeNetwork::default(),
            firewall: FakeFirewall::default(),
            clock: FakeClock::new(),
            time_sync: FakeTimeSync::default(),
            events: Vec::new(),
        }
    }

    fn root(&self) -> ConfigRoot {
        ConfigRoot::unchecked(&self.dir.path().join("data/config")).unwrap()
    }

    fn rootful(&self) -> PathBuf {
        self.dir.path().join("etc/containers/systemd")
    }

    fn complete(&mut self, kind: Promotion) -> Completion {
        let root = self.root();
        let rootful = self.rootful();
        let me = std::fs::metadata(self.dir.path()).unwrap();
        let rootless = Rootless {
            user: "appsvc".to_owned(),
            owner: Owner {
                uid: me.uid(),
                gid: me.gid(),
            },
            home: self.dir.path().join("home/appsvc"),
        };
        let mut deps = Deps {
            fs: &RealFs,
            system: &mut self.system,
            user: &mut self.user,
            accounts: &mut self.accounts,
            network: &mut self.network,
            firewall: &mut self.firewall,
            clock: &self.clock,
            time_sync: &mut self.time_sync,
            shells: Shells::detect(|_| false),
            interfaces: Interfaces::default(),
            rootful_target: rootful,
            rootless: Some(rootless),
        };
        let events = &mut self.events;
        complete(&root, kind, &mut deps, &mut |e| events.push(e))
    }

    /// Writes `old` as the active root and `new` as the candidate, and promotes (re-apply).
    fn reapply(&mut self, old: &Config, new: &Config) -> Completion {
        let root = self.root();
        old.write(root.active());
        new.write(&root.candidate());
        promote(&RealFs, &root, Promotion::Reapply).unwrap();
        self.complete(Promotion::Reapply)
    }

    fn restart_events(&self) -> Vec<(String, Mode)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ServiceRestart { unit, mode, .. } => Some((unit.clone(), *mode)),
                _ => None,
            })
            .collect()
    }
}

/// A config root's files.
struct Config {
    units: Vec<(&'static str, &'static str)>,
    policy: Value,
    extra: Vec<(&'static str, Value)>,
    /// Unit texts other than the default `[X]\n<file>\n`.
    texts: Vec<(&'static str, &'static str)>,
    /// Files of the bundle payload (`files/<name>`).
    payload: Vec<(&'static str, &'static str)>,
}

impl Config {
    fn new(units: &[(&'static str, &'static str)], required: &[&str]) -> Self {
        Self {
            units: units.to_vec(),
            policy: json!({
                "required": required, "timeout_seconds": 60, "settle_seconds": 5,
                "restart": [], "allow_degraded": [], "allow_degraded_configured": false,
                "strategy": "rollback"
            }),
            extra: Vec::new(),
            texts: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn text(mut self, file: &'static str, text: &'static str) -> Self {
        self.texts.push((file, text));
        self
    }

    fn payload(mut self, name: &'static str, text: &'static str) -> Self {
        self.payload.push((name, text));
        self
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        self.policy[key] = value;
        self
    }

    fn file(mut self, name: &'static str, value: Value) -> Self {
        self.extra.push((name, value));
        self
    }

    fn write(&self, root: &Path) {
        fs::create_dir_all(root.join("quadlet")).unwrap();
        fs::write(root.join("config.toml"), "version = 1\n").unwrap();
        let list: Vec<Value> = self
            .units
            .iter()
            .map(|(file, mode)| {
                let text = match self.texts.iter().find(|(f, _)| f == file) {
                    Some((_, text)) => (*text).to_owned(),
                    None => format!("[X]\n{file}\n"),
                };
                fs::write(root.join("quadlet").join(file), text).unwrap();
                json!({"name": file.split('.').next(), "filename": file, "mode": mode})
            })
            .collect();
        let meta = json!({"app_user": "appsvc", "units": list});
        fs::write(root.join("quadlet-runtime.json"), meta.to_string()).unwrap();
        fs::write(root.join("activation-policy.json"), self.policy.to_string()).unwrap();
        for (name, value) in &self.extra {
            fs::write(root.join(name), value.to_string()).unwrap();
        }
        if !self.payload.is_empty() {
            fs::create_dir_all(root.join("files")).unwrap();
        }
        for (name, text) in &self.payload {
            fs::write(root.join("files").join(name), text).unwrap();
        }
    }
}

fn web() -> Config {
    Config::new(&[("web.container", "rootful")], &["web"])
}

fn old() -> Config {
    Config::new(&[("old.container", "rootful")], &["old"])
}

fn state_calls(s: &FakeSystemd, unit: &str) -> usize {
    s.calls
        .iter()
        .filter(|c| **c == SystemdCall::ActiveState(unit.to_owned()))
        .count()
}

#[test]
fn success_commits_after_the_settle_window_and_cleans_up() {
    let mut w = World::new();
    let done = w.reapply(&old(), &web());
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(done.rollback, RollbackStatus::Skipped);
    assert!(done.committed.is_some() && done.store_error.is_none());
    let root = w.root();
    assert!(!root.rollback().exists() && !root.marker().exists());
    assert!(w.rootful().join("web.container").exists());
    // Polled through the window, not probed once: active at 0 s, healthy at 5 s.
    assert_eq!(w.clock.now(), Duration::from_secs(5));
    assert!(state_calls(&w.system, "web.service") >= 6);
    let expect_start = Event::ServiceDeploy {
        unit: "web.service".into(),
        status: DeployStatus::Starting,
    };
    assert_eq!(w.events.first(), Some(&expect_start));
    assert!(w.events.contains(&Event::ServiceStatus {
        unit: "web.service".into(),
        status: ServiceStatus::Running
    }));
    assert!(w.events.contains(&Event::HealthCheck {
        unit: "web.service".into(),
        healthy: true
    }));
    assert_eq!(w.events.last(), Some(&Event::Cleanup));
    assert!(!w.events.contains(&Event::Rollback));
    assert_eq!(w.system.calls.first(), Some(&SystemdCall::DaemonReload));
}

#[test]
fn a_required_unit_whose_job_fails_rolls_back_and_reactivates_the_old_config() {
    let mut w = World::new();
    w.system.job("web.service", JobResult::Failed);
    let done = w.reapply(&old(), &web());
    assert_eq!(
        done.outcome.failures,
        vec![Failure::Job {
            unit: "web.service".into(),
            mode: Mode::Rootful,
            result: JobResult::Failed
        }]
    );
    assert_eq!(done.rollback, RollbackStatus::Completed);
    assert!(done.rollback_outcome.as_ref().unwrap().ok());
    assert!(done.committed.is_none());
    assert!(w.events.contains(&Event::Rollback));
    // The old config is active again and its units are back in the search path.
    let root = w.root();
    assert!(root.active().join("quadlet/old.container").exists());
    assert!(w.rootful().join("old.container").exists());
    assert!(!w.rootful().join("web.container").exists());
    assert!(!root.marker().exists());
    // The old unit was restarted by the re-activation, and web stopped as stale.
    assert!(w.system.restarted().contains(&"old.service".to_owned()));
    assert!(
        w.system
            .calls
            .contains(&SystemdCall::Stop("web.service".into()))
    );
    assert_eq!(done.failures(), vec!["web.service job failed".to_owned()]);
}

#[test]
fn a_unit_active_then_failing_inside_the_settle_window_fails() {
    let mut w = World::new();
    let a = ActiveState::Active;
    w.system.states(
        "web.service",
        &[a.clone(), a.clone(), a, ActiveState::Failed],
    );
    let done = w.reapply(&old(), &web());
    assert_eq!(
        done.outcome.failures,
        vec![Failure::UnitFailed {
            unit: "web.service".into()
        }]
    );
    assert!(w.events.contains(&Event::HealthCheck {
        unit: "web.service".into(),
        healthy: false
    }));
    // Failed at 3 s; the old config's re-activation then takes its own 5 s window.
    assert_eq!(w.clock.now(), Duration::from_secs(3 + 5));
    assert_eq!(done.rollback, RollbackStatus::Completed);
}

#[test]
fn a_unit_that_never_becomes_active_times_out_at_the_deadline() {
    let mut w = World::new();
    w.system.states("web.service", &[ActiveState::Activating]);
    let new = web().set("timeout_seconds", json!(30));
    let done = w.reapply(&old(), &new);
    assert_eq!(
        done.outcome.failures,
        vec![Failure::Timeout {
            unit: "web.service".into(),
            last: ActiveState::Activating
        }]
    );
    // The deadline at 30 s, then the old config's 5 s window.
    assert_eq!(w.clock.now(), Duration::from_secs(30 + 5));
    assert_eq!(done.rollback, RollbackStatus::Completed);
    assert!(
        done.outcome
            .message()
            .starts_with("activation failed: web.service not healthy")
    );
}

#[test]
fn a_unit_that_leaves_active_restarts_its_window() {
    let mut w = World::new();
    let (a, i) = (ActiveState::Active, ActiveState::Inactive);
    w.system
        .states("web.service", &[a.clone(), a.clone(), i, a]);
    let done = w.reapply(&old(), &web());
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    // Active at 0, inactive at 2, active again from 3: healthy at 8, not 5.
    assert_eq!(w.clock.now(), Duration::from_secs(8));
}

#[test]
fn a_late_unit_within_the_deadline_is_healthy_and_a_window_past_it_is_not() {
    let mut w = World::new();
    let mut states = vec![ActiveState::Activating; 10];
    states.push(ActiveState::Active);
    w.system.states("web.service", &states);
    let done = w.reapply(&old(), &web().set("timeout_seconds", json!(20)));
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(w.clock.now(), Duration::from_secs(15));

    let mut w = World::new();
    w.system.states("web.service", &states);
    let done = w.reapply(&old(), &web().set("timeout_seconds", json!(12)));
    assert!(matches!(
        done.outcome.failures[..],
        [Failure::Timeout { .. }]
    ));
}

#[test]
fn a_failed_apply_step_fails_the_activation_before_health_and_gates_mark_good() {
    let mut w = World::new();
    // An existing user the old config never managed: the users step refuses.
    w.accounts.existing.users.insert("bob".into());
    let users = json!({"bob": {"isAdmin": true, "ssh_key": ""}});
    let new = web().file("users.json", users);
    let done = w.reapply(&old(), &new);
    match &done.outcome.failures[..] {
        [Failure::Step { step, reason }] => {
            assert_eq!(*step, Step::Users);
            assert!(reason.contains("refusing to modify unmanaged existing user: bob"));
        }
        other => panic!("{other:?}"),
    }
    assert!(w.accounts.ran.is_empty());
    // The gate stops the first run before the sync: web never reached the search path.
    assert!(
        !w.restart_events()
            .contains(&("web.service".into(), Mode::Rootful))
    );
    assert_eq!(done.rollback, RollbackStatus::Completed);
    let mut rauc = FakeRauc::default();
    assert!(matches!(
        mark_good_gate(&done, &mut rauc),
        Gate::NotCommitted
    ));
    assert!(rauc.calls.is_empty());
}

#[test]
fn every_apply_step_gates() {
    type Setup = fn(&mut World);
    let cases: [(Step, Setup); 3] = [
        (Step::Network, |w| w.network.fail = true),
        (Step::Firewall, |w| w.firewall.fail_apply = true),
        (Step::DaemonReload, |w| {
            w.system.fail_reload();
        }),
    ];
    for (want, setup) in cases {
        let mut w = World::new();
        setup(&mut w);
        let new = web().file("firewall-inbound.json", json!({"wan": {"tcp": [443]}}));
        let old = old().file("firewall-inbound.json", json!({}));
        let done = w.reapply(&old, &new);
        assert!(
            matches!(&done.outcome.failures[..], [Failure::Step { step, .. }] if *step == want),
            "{want:?}: {:?}",
            done.outcome
        );
        // The same fake fails the old config's re-activation too.
        assert_eq!(done.rollback, RollbackStatus::Failed, "{want:?}");
        assert!(
            done.failures()
                .iter()
                .any(|f| f.starts_with("rollback activation/health"))
        );
        assert!(done.committed.is_none());
        assert!(
            !w.events.contains(&Event::Settle { seconds: 5 }),
            "{want:?}"
        );
    }
}

#[test]
fn a_failing_rollback_reactivation_is_status_failed() {
    let mut w = World::new();
    w.system.job("web.service", JobResult::Timeout);
    w.system.states("old.service", &[ActiveState::Failed]);
    let done = w.reapply(&old(), &web());
    assert_eq!(done.rollback, RollbackStatus::Failed);
    let rb = done.rollback_outcome.as_ref().unwrap();
    assert_eq!(
        rb.failures,
        vec![Failure::UnitFailed {
            unit: "old.service".into()
        }]
    );
}

#[test]
fn an_initial_failure_is_discarded() {
    let mut w = World::new();
    w.system.job("web.service", JobResult::Dependency);
    let root = w.root();
    web().write(&root.candidate());
    promote(&RealFs, &root, Promotion::Initial).unwrap();
    let done = w.complete(Promotion::Initial);
    assert_eq!(done.rollback, RollbackStatus::Discarded);
    assert!(done.rollback_outcome.is_none() && done.store_error.is_none());
    assert!(!root.active().exists() && !root.marker().exists());
}

#[test]
fn an_initial_success_commits_and_the_gate_marks_good() {
    let mut w = World::new();
    let root = w.root();
    web().write(&root.candidate());
    promote(&RealFs, &root, Promotion::Initial).unwrap();
    let done = w.complete(Promotion::Initial);
    assert!(done.committed.is_some());
    let mut rauc = FakeRauc::default();
    assert!(matches!(mark_good_gate(&done, &mut rauc), Gate::Marked(_)));
    assert_eq!(rauc.calls, vec![RaucCall::MarkGoodBooted]);
    rauc.fail_mark = true;
    assert!(matches!(mark_good_gate(&done, &mut rauc), Gate::Failed(_)));
}

#[test]
fn units_restart_in_the_order_of_spec_4_4() {
    let mut w = World::new();
    let new = Config::new(
        &[
            ("a.container", "rootless"),
            ("b.build", "rootful"),
            ("c.container", "rootful"),
            ("d.build", "rootless"),
            ("e.volume", "rootful"),
            ("f.build", "rootful"),
        ],
        &["c"],
    );
    let done = w.reapply(&old(), &new);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    let order: Vec<String> = w.restart_events().into_iter().map(|(u, _)| u).collect();
    assert_eq!(
        order,
        [
            "b-build.service",
            "f-build.service",
            "c.service",
            "e-volume.service",
            "d-build.service",
            "a.service"
        ]
    );
    assert_eq!(w.user.restarted(), ["d-build.service", "a.service"]);
    assert_eq!(w.user.calls.first(), Some(&SystemdCall::DaemonReload));
    let building = Event::ServiceDeploy {
        unit: "b-build.service".into(),
        status: DeployStatus::Building,
    };
    assert!(w.events.contains(&building));
}

#[test]
fn a_non_required_unit_whose_job_fails_only_warns() {
    let mut w = World::new();
    w.system.job("side.service", JobResult::Failed);
    let new = Config::new(
        &[("side.container", "rootful"), ("web.container", "rootful")],
        &["web"],
    );
    let done = w.reapply(&old(), &new);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::Warning(m) if m.contains("side")))
    );
}

#[test]
fn allow_degraded_configured_fails_unlisted_failed_units_and_omitted_only_reports() {
    let units = [
        ("web.container", "rootful"),
        ("side.container", "rootful"),
        ("extra.container", "rootful"),
    ];
    let setup = |w: &mut World| {
        w.system.states("side.service", &[ActiveState::Failed]);
        w.system.states("extra.service", &[ActiveState::Failed]);
    };
    let mut w = World::new();
    setup(&mut w);
    let new = Config::new(&units, &["web"])
        .set("allow_degraded", json!(["extra"]))
        .set("allow_degraded_configured", json!(true));
    let done = w.reapply(&old(), &new);
    assert_eq!(
        done.outcome.failures,
        vec![Failure::Degraded {
            unit: "side.service".into()
        }]
    );
    assert_eq!(done.outcome.degraded, ["extra.service"]);
    assert!(w.events.contains(&Event::ServiceStatus {
        unit: "side.service".into(),
        status: ServiceStatus::Failed
    }));

    let mut w = World::new();
    setup(&mut w);
    let done = w.reapply(&old(), &Config::new(&units, &["web"]));
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(done.outcome.degraded, ["side.service", "extra.service"]);
}

#[test]
fn a_broken_policy_file_is_an_activation_failure() {
    let mut w = World::new();
    let done = w.reapply(&old(), &web().set("strategy", json!("keep-failed")));
    assert!(matches!(
        &done.outcome.failures[..],
        [Failure::Step { step: Step::Load, reason }] if reason.contains("strategy")
    ));
    assert_eq!(done.rollback, RollbackStatus::Completed);

    let mut w = World::new();
    let done = w.reapply(&old(), &web().set("required", json!(["ghost"])));
    assert!(matches!(
        &done.outcome.failures[..],
        [Failure::Step {
            step: Step::Load,
            ..
        }]
    ));
}

#[test]
fn the_non_strict_policy_comes_from_health_required_json() {
    let mut w = World::new();
    let root = w.root();
    old().write(root.active());
    web().write(&root.candidate());
    fs::remove_file(root.candidate().join("activation-policy.json")).unwrap();
    fs::write(root.candidate().join("health-required.json"), r#"["web"]"#).unwrap();
    w.system.states("web.service", &[ActiveState::Failed]);
    promote(&RealFs, &root, Promotion::Reapply).unwrap();
    let done = w.complete(Promotion::Reapply);
    assert_eq!(
        done.outcome.failures,
        vec![Failure::UnitFailed {
            unit: "web.service".into()
        }]
    );
}

#[test]
fn policy_restart_units_restart_after_the_apply() {
    let mut w = World::new();
    let new = Config::new(
        &[("web.container", "rootful"), ("api.container", "rootless")],
        &["web"],
    )
    .set("restart", json!(["api"]));
    let done = w.reapply(&old(), &new);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(w.user.restarted(), ["api.service", "api.service"]);

    let mut w = World::new();
    w.user.job("api.service", JobResult::Canceled);
    let done = w.reapply(&old(), &new);
    assert!(matches!(
        &done.outcome.failures[..],
        [Failure::Job { unit, mode: Mode::Rootless, result: JobResult::Canceled }] if unit == "api.service"
    ));
}

#[test]
fn users_network_and_firewall_are_applied_and_stale_units_stopped() {
    let mut w = World::new();
    w.accounts.existing = Existing::default();
    w.accounts
        .existing
        .groups
        .insert("sudo".into(), Default::default());
    w.network.changes = NetworkChanges {
        network: true,
        dnsmasq: false,
        chrony: true,
    };
    let new = web()
        .file(
            "users.json",
            json!({"ann": {"isAdmin": true, "ssh_key": "ssh-ed25519 AAAA"}}),
        )
        .file("firewall-inbound.json", json!({"lan": {"tcp": [9000]}}));
    let done = w.reapply(&old(), &new);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(
        w.accounts.ran[..2],
        [
            AccountOp::CreateAdmin {
                name: "ann".into(),
                shell: "/usr/bin/bash".into(),
                no_user_group: false,
            },
            AccountOp::Lock("ann".into())
        ]
    );
    let managed = fs::read_to_string(w.root().active().join("managed-users.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&managed).unwrap(),
        json!(["ann"])
    );
    for unit in [
        "systemd-networkd.service",
        "systemd-resolved.service",
        "chrony.service",
    ] {
        assert!(
            w.system
                .calls
                .contains(&SystemdCall::TryRestart(unit.into())),
            "{unit}"
        );
    }
    assert_eq!(w.firewall.applied.len(), 1);
    assert!(w.firewall.applied[0].contains("tcp dport { 22, 53, 8080, 9000 }"));
    assert_eq!(w.firewall.rules.len(), 2);
    // Stale units of the old manifest: the old config's units were synced by a previous run.
    let mut w2 = World::new();
    fs::create_dir_all(w2.rootful()).unwrap();
    fs::write(w2.rootful().join(MANIFEST), r#"["gone.container"]"#).unwrap();
    let done = w2.reapply(&old(), &web());
    assert!(done.outcome.ok());
    assert!(
        w2.system
            .calls
            .contains(&SystemdCall::Stop("gone.service".into()))
    );
}

#[test]
fn a_settle_window_longer_than_the_time_left_fails_at_once() {
    let mut w = World::new();
    let new = web()
        .set("timeout_seconds", json!(10))
        .set("settle_seconds", json!(20));
    let done = w.reapply(&old(), &new);
    assert_eq!(
        done.outcome.failures,
        vec![Failure::NoTimeToSettle {
            settle: Duration::from_secs(20),
            left: Duration::from_secs(10)
        }]
    );
    assert!(
        done.outcome
            .message()
            .contains("activation timed out before health checks")
    );
    // Never polled: its one query is the service-status event.
    assert_eq!(state_calls(&w.system, "web.service"), 1);
    assert_eq!(w.clock.now(), Duration::from_secs(5));
}

#[test]
fn rootless_units_prepare_the_app_user_before_the_sync() {
    let mut w = World::new();
    let uid = fs::metadata(w.dir.path()).unwrap().uid();
    let new = Config::new(&[("api.container", "rootless")], &["api"]);
    let done = w.reapply(&old(), &new);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    let home = w.dir.path().join("home/appsvc");
    for (dir, mode) in [
        (home.clone(), 0o750),
        (home.join(".config"), 0o700),
        (home.join(".config/containers"), 0o700),
        (home.join(".config/containers/systemd"), 0o700),
    ] {
        let meta = fs::metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{}", dir.display());
    }
    assert!(
        home.join(".config/containers/systemd/api.container")
            .exists()
    );
    assert!(
        w.accounts
            .ran
            .contains(&AccountOp::EnableLinger("appsvc".into()))
    );
    let manager = SystemdCall::Start(format!("user@{uid}.service"));
    let started = w.system.calls.iter().position(|c| *c == manager);
    let reload = w
        .system
        .calls
        .iter()
        .position(|c| *c == SystemdCall::DaemonReload);
    assert!(
        started.is_some() && started < reload,
        "{:?}",
        w.system.calls
    );
}

#[test]
fn a_rootful_config_prepares_the_app_user_only_for_stale_rootless_units() {
    // No rootless unit now or before: nothing is prepared.
    let mut w = World::new();
    let rootful = Config::new(&[("web.container", "rootful")], &["web"]);
    let done = w.reapply(&old(), &rootful);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert!(!w.dir.path().join("home/appsvc").exists());
    assert!(
        !w.system
            .calls
            .iter()
            .any(|c| matches!(c, SystemdCall::Start(_)))
    );

    // A rootless unit synced before: its user manager is prepared so the stale unit stops.
    let mut w = World::new();
    let rootless = Config::new(&[("api.container", "rootless")], &["api"]);
    assert!(w.reapply(&old(), &rootless).outcome.ok());
    w.system.calls.clear();
    w.user.calls.clear();
    let done = w.reapply(&rootless, &rootful);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert!(
        w.system
            .calls
            .iter()
            .any(|c| matches!(c, SystemdCall::Start(_)))
    );
    assert!(
        w.user
            .calls
            .contains(&SystemdCall::Stop("api.service".into()))
    );
}

#[test]
fn a_user_manager_that_does_not_start_fails_the_rootless_step() {
    let mut w = World::new();
    let uid = fs::metadata(w.dir.path()).unwrap().uid();
    w.system
        .job(&format!("user@{uid}.service"), JobResult::Failed);
    let new = Config::new(&[("api.container", "rootless")], &["api"]);
    let done = w.reapply(&old(), &new);
    assert!(matches!(
        &done.outcome.failures[..],
        [Failure::Step { step: Step::Rootless, reason }] if reason.contains("user@")
    ));
    assert_eq!(done.rollback, RollbackStatus::Completed);
}

/// Two re-applies, `first` then `second`; the events and calls of the second.
fn second_apply(first: &Config, second: &Config, setup: impl FnOnce(&mut World)) -> World {
    let mut w = World::new();
    assert!(w.reapply(&old(), first).outcome.ok());
    w.events.clear();
    w.system.calls.clear();
    w.user.calls.clear();
    setup(&mut w);
    let done = w.reapply(first, second);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    w
}

#[test]
fn a_reapply_restarts_only_the_units_whose_files_changed() {
    let units = [("web.container", "rootful"), ("db.container", "rootful")];
    let a = Config::new(&units, &["web"]);
    let b = Config::new(&units, &["web"]).text("db.container", "[X]\nnew image\n");
    let w = second_apply(&a, &b, |_| {});
    assert_eq!(w.system.restarted(), ["db.service"]);
    assert!(w.events.contains(&Event::ServiceUnchanged {
        unit: "web.service".into(),
        mode: Mode::Rootful
    }));
    // The required unit still gets its health window.
    assert!(w.events.contains(&Event::HealthCheck {
        unit: "web.service".into(),
        healthy: true
    }));
}

#[test]
fn an_unchanged_unit_that_is_not_active_is_started_again() {
    let units = [("web.container", "rootful"), ("db.container", "rootful")];
    let a = Config::new(&units, &["web"]);
    let w = second_apply(&a, &a, |w| {
        w.system
            .states("db.service", &[ActiveState::Failed, ActiveState::Active]);
    });
    assert_eq!(w.system.restarted(), ["db.service"]);
}

#[test]
fn a_changed_shared_unit_or_payload_restarts_every_unit() {
    let units = [
        ("web.container", "rootful"),
        ("db.container", "rootful"),
        ("data.volume", "rootful"),
    ];
    let a = Config::new(&units, &["web"]);
    let volume = Config::new(&units, &["web"]).text("data.volume", "[X]\nbigger\n");
    let w = second_apply(&a, &volume, |_| {});
    assert_eq!(
        w.system.restarted(),
        ["web.service", "db.service", "data-volume.service"]
    );

    let a = Config::new(&units, &["web"]).payload("app.yaml", "one");
    let same = Config::new(&units, &["web"]).payload("app.yaml", "one");
    let w = second_apply(&a, &same, |_| {});
    assert!(w.system.restarted().is_empty(), "{:?}", w.system.calls);
    let other = Config::new(&units, &["web"]).payload("app.yaml", "two");
    let w = second_apply(&a, &other, |_| {});
    assert_eq!(w.system.restarted().len(), 3, "{:?}", w.system.calls);
}

#[test]
fn the_clock_is_waited_for_only_when_an_image_is_pulled() {
    let pulling = Config::new(&[("web.container", "rootful")], &["web"]).text(
        "web.container",
        "[Container]\nImage=docker.io/library/nginx:1.27\n",
    );
    let mut w = World::new();
    let done = w.reapply(&old(), &pulling);
    assert!(done.outcome.ok(), "{:?}", done.outcome);
    assert_eq!(w.time_sync.waits, 3);
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::Warning(m) if m.contains("docker.io/library/nginx:1.27")))
    );

    let built = Config::new(
        &[("web.container", "rootful"), ("web.build", "rootful")],
        &["web"],
    )
    .text("web.container", "[Container]\nImage=web.build\n");
    let mut w = World::new();
    assert!(w.reapply(&old(), &built).outcome.ok());
    assert_eq!(w.time_sync.waits, 0);
    assert!(!w.events.iter().any(|e| matches!(e, Event::Warning(_))));
}
