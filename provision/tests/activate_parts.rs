//! T0 tests of the small parts: systemd's strings, the user manager's command lines, the
//! network restart rules, the health window alone and the clocks.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use atomix_provision::activate::health::{Watched, wait_healthy};
use atomix_provision::activate::network::restarts;
use atomix_provision::activate::{
    ActiveState, Clock, Failure, FakeClock, FakeSystemd, JobResult, NetworkChanges, RealClock,
    SystemctlUser,
};
use atomix_provision::store::quadlet_sync::Mode;

#[test]
fn job_results_and_active_states_round_trip() {
    for s in [
        "done",
        "failed",
        "timeout",
        "canceled",
        "dependency",
        "skipped",
    ] {
        assert_eq!(JobResult::parse(s).unwrap().to_string(), s);
    }
    assert_eq!(JobResult::parse("exploded"), None);
    assert!(JobResult::Skipped.is_ok() && !JobResult::Dependency.is_ok());
    for s in [
        "active",
        "reloading",
        "inactive",
        "failed",
        "activating",
        "deactivating",
    ] {
        assert_eq!(ActiveState::parse(s).to_string(), s);
    }
    assert_eq!(
        ActiveState::parse("maintenance"),
        ActiveState::Other("maintenance".into())
    );
}

#[test]
fn the_user_manager_is_reached_through_machine_or_runuser() {
    let (p, a) = SystemctlUser::machine("appsvc").command_line(&["restart", "web.service"]);
    assert_eq!(p, "systemctl");
    assert_eq!(
        a,
        ["--user", "--machine=appsvc@.host", "restart", "web.service"]
    );
    let (p, a) = SystemctlUser::runuser("appsvc", 990).command_line(&["daemon-reload"]);
    assert_eq!(p, "runuser");
    assert_eq!(
        a,
        [
            "-u",
            "appsvc",
            "--",
            "env",
            "XDG_RUNTIME_DIR=/run/user/990",
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/990/bus",
            "systemctl",
            "--user",
            "daemon-reload"
        ]
    );
}

#[test]
fn network_changes_try_restart_their_services_only() {
    assert!(restarts(NetworkChanges::default()).is_empty());
    let all = NetworkChanges {
        network: true,
        dnsmasq: true,
        chrony: true,
    };
    assert_eq!(
        restarts(all),
        [
            "systemd-networkd.service",
            "systemd-resolved.service",
            "dnsmasq.service",
            "chrony.service"
        ]
    );
}

fn watch(units: &[(&str, Mode)]) -> Vec<Watched> {
    units
        .iter()
        .map(|(u, mode)| Watched {
            unit: (*u).into(),
            mode: *mode,
        })
        .collect()
}

#[test]
fn every_unit_must_settle_at_the_same_time_on_its_own_manager() {
    let clock = FakeClock::new();
    let (mut system, mut user) = (FakeSystemd::new(), FakeSystemd::new());
    let mut late = vec![ActiveState::Activating; 4];
    late.push(ActiveState::Active);
    user.states("api.service", &late);
    let units = watch(&[
        ("web.service", Mode::Rootful),
        ("api.service", Mode::Rootless),
    ]);
    let secs = Duration::from_secs;
    let f = wait_healthy(&units, secs(3), secs(60), &clock, &mut system, &mut user);
    assert!(f.is_empty(), "{f:?}");
    // api active from 4 s, settled at 7 s.
    assert_eq!(clock.now(), secs(7));
}

#[test]
fn zero_settle_needs_one_active_probe_and_the_deadline_names_every_late_unit() {
    let clock = FakeClock::new();
    let (mut system, mut user) = (FakeSystemd::new(), FakeSystemd::new());
    let units = watch(&[("web.service", Mode::Rootful)]);
    let f = wait_healthy(
        &units,
        Duration::ZERO,
        Duration::from_secs(5),
        &clock,
        &mut system,
        &mut user,
    );
    assert!(f.is_empty());
    assert_eq!(clock.now(), Duration::ZERO);

    system.states("a.service", &[ActiveState::Inactive]);
    system.states("b.service", &[ActiveState::Reloading]);
    let units = watch(&[("a.service", Mode::Rootful), ("b.service", Mode::Rootful)]);
    let f = wait_healthy(
        &units,
        Duration::ZERO,
        Duration::from_secs(5),
        &clock,
        &mut system,
        &mut user,
    );
    assert_eq!(
        f,
        [
            Failure::Timeout {
                unit: "a.service".into(),
                last: ActiveState::Inactive
            },
            Failure::Timeout {
                unit: "b.service".into(),
                last: ActiveState::Reloading
            }
        ]
    );
    assert_eq!(clock.now(), Duration::from_secs(5));
}

#[test]
fn the_real_clock_moves_and_sleeps() {
    let clock = RealClock::new();
    let before = clock.now();
    clock.sleep(Duration::from_millis(5));
    assert!(clock.now() >= before + Duration::from_millis(5));
}
