//! The real zbus implementations ([`DbusSystemd`], [`DbusRauc`]) against mock
//! `org.freedesktop.systemd1` and `de.pengutronix.rauc` services on a private bus (a
//! `dbus-daemon --session` started and killed by this test).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atomix_provision::activate::{
    ActiveState, DbusRauc, DbusSystemd, JobResult, Rauc, RaucError, Systemd,
};
use zbus::blocking::Connection;
use zbus::blocking::connection::Builder;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

/// A private bus daemon, killed (by its pid) on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start() -> Self {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            child,
            address: line.trim().to_owned(),
        }
    }

    fn builder(&self) -> Builder<'static> {
        Builder::address(self.address.as_str()).unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
struct State {
    /// Job results by unit (default `done`).
    results: HashMap<String, String>,
    /// `ActiveState` by unit (default `active`).
    states: HashMap<String, String>,
    /// Calls received.
    calls: Vec<String>,
    next_job: u32,
}

type Shared = Arc<Mutex<State>>;

struct Manager(Shared);

fn unit_path(name: &str) -> String {
    let escaped: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c.to_string(),
            other => format!("_{:02x}", other as u32),
        })
        .collect();
    format!("/org/freedesktop/systemd1/unit/{escaped}")
}

impl Manager {
    async fn job(&self, emitter: &SignalEmitter<'_>, call: &str, name: &str) -> OwnedObjectPath {
        let (id, result) = {
            let mut s = self.0.lock().unwrap();
            s.calls.push(format!("{call} {name}"));
            s.next_job += 1;
            let result = s
                .results
                .get(name)
                .cloned()
                .unwrap_or_else(|| "done".into());
            (s.next_job, result)
        };
        let path = format!("/org/freedesktop/systemd1/job/{id}");
        let job = ObjectPath::try_from(path.as_str()).unwrap();
        // Another job's signal first: the client must match on its own job path.
        let other = ObjectPath::try_from("/org/freedesktop/systemd1/job/999").unwrap();
        Self::job_removed(emitter, 999, other, "other.service", "failed")
            .await
            .unwrap();
        if result != "never" {
            Self::job_removed(emitter, id, job.clone(), name, &result)
                .await
                .unwrap();
        }
        job.into()
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    /// As systemd: a client subscribes once; a second `Subscribe` is an error
    /// (`org.freedesktop.systemd1.AlreadySubscribed`). One client per test.
    fn subscribe(&self) -> zbus::fdo::Result<()> {
        let mut state = self.0.lock().unwrap();
        if state.calls.iter().any(|c| c == "Subscribe") {
            return Err(zbus::fdo::Error::Failed(
                "Client is already subscribed.".into(),
            ));
        }
        state.calls.push("Subscribe".into());
        Ok(())
    }

    fn reload(&self) {
        self.0.lock().unwrap().calls.push("Reload".into());
    }

    async fn restart_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> OwnedObjectPath {
        self.job(&emitter, "RestartUnit", name).await
    }

    async fn stop_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> OwnedObjectPath {
        self.job(&emitter, "StopUnit", name).await
    }

    async fn try_restart_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> OwnedObjectPath {
        self.job(&emitter, "TryRestartUnit", name).await
    }

    fn load_unit(&self, name: &str) -> OwnedObjectPath {
        ObjectPath::try_from(unit_path(name)).unwrap().into()
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

struct Unit {
    name: String,
    state: Shared,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn active_state(&self) -> String {
        let s = self.state.lock().unwrap();
        s.states
            .get(&self.name)
            .cloned()
            .unwrap_or_else(|| "active".into())
    }
}

fn systemd_service(bus: &Bus, state: &Shared, units: &[&str]) -> Connection {
    let mut b = bus
        .builder()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .serve_at("/org/freedesktop/systemd1", Manager(state.clone()))
        .unwrap();
    for u in units {
        let unit = Unit {
            name: (*u).to_owned(),
            state: state.clone(),
        };
        b = b.serve_at(unit_path(u), unit).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn dbus_systemd_tracks_its_own_job_and_reads_active_state() {
    let bus = Bus::start();
    let state = Shared::default();
    {
        let mut s = state.lock().unwrap();
        s.results.insert("bad.service".into(), "dependency".into());
        s.states.insert("bad.service".into(), "failed".into());
        s.states.insert("slow.service".into(), "activating".into());
    }
    let _service = systemd_service(
        &bus,
        &state,
        &["web.service", "bad.service", "slow.service"],
    );
    let client = bus.builder().build().unwrap();
    let mut systemd = DbusSystemd::with_connection(client);

    systemd.daemon_reload().unwrap();
    assert_eq!(systemd.restart("web.service").unwrap(), JobResult::Done);
    assert_eq!(
        systemd.restart("bad.service").unwrap(),
        JobResult::Dependency
    );
    assert_eq!(systemd.stop("web.service").unwrap(), JobResult::Done);
    assert_eq!(systemd.try_restart("web.service").unwrap(), JobResult::Done);
    assert_eq!(
        systemd.active_state("web.service").unwrap(),
        ActiveState::Active
    );
    assert_eq!(
        systemd.active_state("bad.service").unwrap(),
        ActiveState::Failed
    );
    assert_eq!(
        systemd.active_state("slow.service").unwrap(),
        ActiveState::Activating
    );
    let calls = state.lock().unwrap().calls.clone();
    assert_eq!(
        calls,
        [
            "Reload",
            "Subscribe",
            "RestartUnit web.service",
            "RestartUnit bad.service",
            "StopUnit web.service",
            "TryRestartUnit web.service",
        ]
    );
}

#[test]
fn dbus_systemd_gives_up_on_a_job_whose_signal_never_comes() {
    let bus = Bus::start();
    let state = Shared::default();
    state
        .lock()
        .unwrap()
        .results
        .insert("hang.service".into(), "never".into());
    let _service = systemd_service(&bus, &state, &["hang.service"]);
    let client = bus.builder().build().unwrap();
    let mut systemd =
        DbusSystemd::with_connection(client).with_job_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err = systemd.restart("hang.service").unwrap_err();
    assert!(err.reason.contains("no JobRemoved"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // The connection still works for the next job.
    assert_eq!(systemd.restart("ok.service").unwrap(), JobResult::Done);
}

#[test]
fn dbus_systemd_reports_the_unit_and_operation_of_a_failed_call() {
    let bus = Bus::start();
    // Nobody owns org.freedesktop.systemd1 on this bus.
    let client = bus.builder().build().unwrap();
    let mut systemd = DbusSystemd::with_connection(client);
    let err = systemd.restart("web.service").unwrap_err();
    assert_eq!(err.unit, "web.service");
    assert!(
        err.to_string()
            .starts_with("systemd restart of \"web.service\" failed")
    );
}

/// The `Mark` calls received.
type Marks = Arc<Mutex<Vec<(String, String)>>>;

struct Installer {
    /// The `boot-status` `GetSlotStatus` reports for the marked slot.
    status: String,
    marks: Marks,
}

#[zbus::interface(name = "de.pengutronix.rauc.Installer")]
impl Installer {
    fn mark(&self, state: &str, slot: &str) -> zbus::fdo::Result<(String, String)> {
        self.marks.lock().unwrap().push((state.into(), slot.into()));
        if state != "good" {
            return Err(zbus::fdo::Error::Failed(format!("cannot mark {state}")));
        }
        Ok(("rootfs.0".into(), "marked slot rootfs.0 as good".into()))
    }

    fn get_slot_status(&self) -> Vec<(String, HashMap<String, OwnedValue>)> {
        let props = |status: &str| {
            let mut m = HashMap::new();
            m.insert(
                "boot-status".to_owned(),
                OwnedValue::try_from(Value::from(status)).unwrap(),
            );
            m
        };
        vec![
            ("rootfs.0".into(), props(&self.status)),
            ("rootfs.1".into(), props("bad")),
        ]
    }

    #[zbus(property)]
    fn boot_slot(&self) -> String {
        "A".into()
    }
}

fn rauc_service(bus: &Bus, status: &str) -> (Connection, Marks) {
    let marks = Marks::default();
    let installer = Installer {
        status: status.into(),
        marks: marks.clone(),
    };
    let conn = bus
        .builder()
        .name("de.pengutronix.rauc")
        .unwrap()
        .serve_at("/", installer)
        .unwrap()
        .build()
        .unwrap();
    (conn, marks)
}

#[test]
fn dbus_rauc_marks_the_booted_slot_good_and_reads_it_back() {
    let bus = Bus::start();
    let (_service, marks) = rauc_service(&bus, "good");
    let mut rauc = DbusRauc::with_connection(bus.builder().build().unwrap());
    assert_eq!(rauc.booted_slot().unwrap(), "A");
    let marked = rauc.mark_good_booted().unwrap();
    assert_eq!(marked.slot, "rootfs.0");
    assert_eq!(marked.message, "marked slot rootfs.0 as good");
    assert_eq!(
        *marks.lock().unwrap(),
        [("good".to_owned(), "booted".to_owned())]
    );
}

#[test]
fn dbus_rauc_rejects_a_mark_the_status_does_not_confirm() {
    let bus = Bus::start();
    let (_service, _marks) = rauc_service(&bus, "bad");
    let mut rauc = DbusRauc::with_connection(bus.builder().build().unwrap());
    match rauc.mark_good_booted() {
        Err(RaucError::NotGood { slot, status }) => {
            assert_eq!((slot.as_str(), status.as_str()), ("rootfs.0", "bad"));
        }
        other => panic!("{other:?}"),
    }
}
