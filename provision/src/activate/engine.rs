//! The activation engine: [`activate`] applies a config root (users, Quadlet sync and
//! daemon-reloads, stale units stopped, restarts in the order of spec 4.4, network, firewall,
//! `policy.restart`) and waits for health; [`complete`] commits it or rolls back and
//! re-activates the previous config.
//!
//! Deliberate changes from the original (spec 9.1, 9.14): every apply step gates (a failed
//! step ends the activation as a failure, before health), and health is a window polled until
//! the deadline, not a single probe. The rootless preparation of spec 4.4 (the user's unit
//! directories, linger, `user@<uid>.service`) runs only when rootless units are wanted or were
//! synced before. Before units restart, the clock is checked when an image will be pulled
//! ([`super::timesync`]). The bootstrap WAN toggle is first boot's ([`super::bootstrap`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::accounts::{self, AccountOp, Accounts, Users};
use super::clock::Clock;
use super::firewall::{self, FIREWALL_INBOUND, Firewall, Inbound, Interfaces};
use super::health::{Watched, wait_healthy};
use super::network::{self, Network};
use super::outcome::{
    Committed, Completion, DeployStatus, Event, Failure, Outcome, RollbackStatus, ServiceStatus,
    Step,
};
use super::policy::{Policy, load_policy, resolve, service_of};
use super::systemd::{ActiveState, Systemd, SystemdOp};
use super::timesync::{self, TimeSync};
use crate::store::candidate::PAYLOAD_DIR;
use crate::store::managed::{MANAGED_USERS, managed_bytes, read_managed};
use crate::store::quadlet_sync::{self, Mode, RuntimeUnit, Targets, load_runtime, service_name};
use crate::store::tree::{same_tree, write_atomic};
use crate::store::{ConfigRoot, Fs, Owner, Promotion, cleanup, discard_initial, restore};

/// `users.json` and the keys directory under the config root.
pub use atomix_config::root_files::{SSH_AUTHORIZED_KEYS as KEYS_DIR, USERS_JSON};
/// Mode of `managed-users.json`.
const MANAGED_MODE: u32 = 0o600;

/// Everything the engine acts through.
pub struct Deps<'a> {
    /// The filesystem.
    pub fs: &'a dyn Fs,
    /// The system manager.
    pub system: &'a mut dyn Systemd,
    /// `appsvc`'s manager.
    pub user: &'a mut dyn Systemd,
    /// Accounts.
    pub accounts: &'a mut dyn Accounts,
    /// The network step.
    pub network: &'a mut dyn Network,
    /// nftables.
    pub firewall: &'a mut dyn Firewall,
    /// Time.
    pub clock: &'a dyn Clock,
    /// The system clock's synchronisation (checked before images are pulled).
    pub time_sync: &'a mut dyn TimeSync,
    /// The default shells.
    pub shells: accounts::Shells,
    /// Firewall interfaces.
    pub interfaces: Interfaces,
    /// `/etc/containers/systemd`.
    pub rootful_target: PathBuf,
    /// The rootless containers' user, when it exists.
    pub rootless: Option<Rootless>,
}

/// The user rootless containers run as (`appsvc`), and where its units go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootless {
    /// Its name.
    pub user: String,
    /// Its ids.
    pub owner: Owner,
    /// Its home (`/var/lib/appsvc`).
    pub home: PathBuf,
}

/// Mode of the rootless user's home, and of the directories under it the sync needs.
const HOME_MODE: u32 = 0o750;
const PRIVATE_DIR_MODE: u32 = 0o700;

impl Rootless {
    /// Its Quadlet search path, `~/.config/containers/systemd`.
    pub fn target(&self) -> PathBuf {
        self.home.join(".config/containers/systemd")
    }

    /// Its user manager, `user@<uid>.service`.
    pub fn manager_unit(&self) -> String {
        format!("user@{}.service", self.owner.uid)
    }
}

impl std::fmt::Debug for Deps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("rootful_target", &self.rootful_target)
            .field("rootless", &self.rootless)
            .finish_non_exhaustive()
    }
}

impl Deps<'_> {
    fn manager(&mut self, mode: Mode) -> &mut dyn Systemd {
        match mode {
            Mode::Rootful => &mut *self.system,
            Mode::Rootless => &mut *self.user,
        }
    }
}

fn step(step: Step, reason: impl ToString) -> Failure {
    Failure::Step {
        step,
        reason: reason.to_string(),
    }
}

fn service(unit: &RuntimeUnit) -> String {
    service_name(&unit.filename).unwrap_or_else(|| unit.filename.clone())
}

fn is_build(unit: &RuntimeUnit) -> bool {
    unit.filename.ends_with(".build")
}

fn is_container(unit: &RuntimeUnit) -> bool {
    unit.filename.ends_with(".container")
}

/// The restart order of spec 4.4: rootful builds, rootful others, rootless builds, rootless
/// others, each in metadata order.
pub fn restart_order(units: &[RuntimeUnit]) -> Vec<&RuntimeUnit> {
    let group = |mode: Mode, build: bool| {
        units
            .iter()
            .filter(move |u| u.mode == mode && is_build(u) == build)
    };
    group(Mode::Rootful, true)
        .chain(group(Mode::Rootful, false))
        .chain(group(Mode::Rootless, true))
        .chain(group(Mode::Rootless, false))
        .collect()
}

/// The runtime metadata and the policy of `config_root`; an error is a [`Step::Load`] failure.
fn load(config_root: &Path, deps: &Deps<'_>) -> Result<(Vec<RuntimeUnit>, Policy), Failure> {
    let units = load_runtime(deps.fs, config_root).map_err(|e| step(Step::Load, e))?;
    let policy = load_policy(deps.fs, config_root, &units).map_err(|e| step(Step::Load, e))?;
    Ok((units, policy))
}

/// Loads the runtime metadata and the policy of `config_root`, then [`activate`]s it; a
/// loading error is an activation failure. `payload_changed`: the bundle payload (`files/`)
/// differs from the one the running units were started with, so every unit restarts.
pub fn run(
    config_root: &Path,
    payload_changed: bool,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Outcome {
    match load(config_root, deps) {
        Ok((units, policy)) => {
            activate(config_root, &policy, &units, payload_changed, deps, events)
        }
        Err(failure) => Outcome {
            failures: vec![failure],
            degraded: Vec::new(),
        },
    }
}

/// Applies `config_root` and waits for health (spec 5.5, 5.6). Only what changed restarts: a
/// unit whose file the sync wrote, one that is not active, or every unit when a shared input
/// changed (a `.build`, `.volume` or `.network` file, or `payload_changed`).
pub fn activate(
    config_root: &Path,
    policy: &Policy,
    units: &[RuntimeUnit],
    payload_changed: bool,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Outcome {
    let deadline = deps.clock.now() + Duration::from_secs(policy.timeout_seconds);
    for unit in units {
        let status = if is_build(unit) {
            DeployStatus::Building
        } else {
            DeployStatus::Starting
        };
        events(Event::ServiceDeploy {
            unit: service(unit),
            status,
        });
    }
    let mut out = Outcome::default();
    if let Err(f) = apply(config_root, policy, units, payload_changed, deps, events) {
        out.failures.push(f);
        return out;
    }
    for name in &policy.restart {
        let Some(unit) = resolve(name, units) else {
            out.failures.push(Failure::UnknownUnit(name.clone()));
            continue;
        };
        if let Err(f) = restart(deps, unit.mode, &service(unit), events) {
            out.failures.push(f);
        }
    }
    if out.ok() {
        events(Event::Settle {
            seconds: policy.settle_seconds,
        });
        let watched = watched(policy, units);
        let settle = Duration::from_secs(policy.settle_seconds);
        let left = deadline.saturating_sub(deps.clock.now());
        if settle > left {
            out.failures.push(Failure::NoTimeToSettle { settle, left });
            statuses(policy, units, deps, events, &mut out);
            return out;
        }
        out.failures = wait_healthy(
            &watched,
            settle,
            deadline,
            deps.clock,
            &mut *deps.system,
            &mut *deps.user,
        );
        for w in &watched {
            let failed = out.failures.iter().any(|f| match f {
                Failure::UnitFailed { unit } | Failure::Timeout { unit, .. } => *unit == w.unit,
                _ => false,
            });
            events(Event::HealthCheck {
                unit: w.unit.clone(),
                healthy: !failed,
            });
        }
    }
    statuses(policy, units, deps, events, &mut out);
    out
}

/// The required units of `policy`, with their managers.
fn watched(policy: &Policy, units: &[RuntimeUnit]) -> Vec<Watched> {
    policy
        .required
        .iter()
        .map(|name| {
            let (unit, mode) = service_of(name, units);
            Watched { unit, mode }
        })
        .collect()
}

/// The health window alone (`check-health`): every required unit of the config root's policy
/// active for its settle window within its timeout; the failures (empty: healthy). A config
/// root that cannot be loaded is one failure.
pub fn check_health(config_root: &Path, deps: &mut Deps<'_>) -> Vec<Failure> {
    let (units, policy) = match load(config_root, deps) {
        Ok(loaded) => loaded,
        Err(failure) => return vec![failure],
    };
    let deadline = deps.clock.now() + Duration::from_secs(policy.timeout_seconds);
    wait_healthy(
        &watched(&policy, &units),
        Duration::from_secs(policy.settle_seconds),
        deadline,
        deps.clock,
        &mut *deps.system,
        &mut *deps.user,
    )
}

/// The apply steps, each a gate. Required units whose job fails end it too.
fn apply(
    config_root: &Path,
    policy: &Policy,
    units: &[RuntimeUnit],
    payload_changed: bool,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Result<(), Failure> {
    apply_users(config_root, deps).map_err(|e| step(Step::Users, e))?;
    let rootless_target = deps.rootless.as_ref().map(Rootless::target);
    let rootless_wanted = units.iter().any(|u| u.mode == Mode::Rootless);
    let stale_possible = match &rootless_target {
        Some(t) => deps
            .fs
            .exists(&t.join(quadlet_sync::MANIFEST))
            .map_err(|e| step(Step::Rootless, e))?,
        None => false,
    };
    // With no rootless unit now or before, the rootless tree is left alone (not created
    // root-owned by the sync).
    let rootless_involved = rootless_wanted || stale_possible;
    if rootless_involved {
        prepare_rootless(deps).map_err(|e| step(Step::Rootless, e))?;
    }
    let targets = Targets {
        rootful: &deps.rootful_target,
        rootless: rootless_target.as_deref().filter(|_| rootless_involved),
    };
    let report = quadlet_sync::sync(deps.fs, config_root, targets)
        .map_err(|e| step(Step::QuadletSync, e))?;
    if rootless_wanted || !report.stale_rootless.is_empty() {
        deps.user
            .daemon_reload()
            .map_err(|e| step(Step::DaemonReload, e))?;
    }
    deps.system
        .daemon_reload()
        .map_err(|e| step(Step::DaemonReload, e))?;
    let stale = (report.stale_rootful.iter().map(|u| (Mode::Rootful, u)))
        .chain(report.stale_rootless.iter().map(|u| (Mode::Rootless, u)));
    for (mode, unit) in stale {
        match deps.manager(mode).stop(unit) {
            Ok(r) if r.is_ok() => {}
            Ok(r) => events(Event::Warning(format!("stopping stale {unit}: job {r}"))),
            Err(e) => events(Event::Warning(format!("stopping stale {unit}: {e}"))),
        }
    }
    let pulled = timesync::pulled_images(deps.fs, config_root, units);
    if !pulled.is_empty()
        && !timesync::ensure_synced(deps.time_sync, timesync::ATTEMPTS, timesync::WAIT)
    {
        events(Event::Warning(format!(
            "the clock is not synchronised: pulling {} may fail its TLS checks",
            pulled.join(", ")
        )));
    }
    let shared_changed = payload_changed
        || units
            .iter()
            .any(|u| !is_container(u) && report.changed(u.mode, &u.filename));
    for unit in restart_order(units) {
        let name = service(unit);
        let changed = shared_changed || report.changed(unit.mode, &unit.filename);
        if !changed
            && matches!(
                deps.manager(unit.mode).active_state(&name),
                Ok(ActiveState::Active)
            )
        {
            events(Event::ServiceUnchanged {
                unit: name,
                mode: unit.mode,
            });
            continue;
        }
        let required = policy
            .required
            .iter()
            .any(|r| format!("{r}.service") == name);
        match restart(deps, unit.mode, &name, events) {
            Ok(()) => {}
            Err(f) if required => return Err(f),
            Err(f) => events(Event::Warning(format!(
                "unit failed to start after sync: {f}"
            ))),
        }
    }
    let changes = deps
        .network
        .apply(config_root)
        .map_err(|e| step(Step::Network, e))?;
    for unit in network::restarts(changes) {
        match deps.system.try_restart(unit) {
            Ok(r) if r.is_ok() => {}
            Ok(r) => return Err(step(Step::Network, format!("try-restart {unit}: job {r}"))),
            Err(e) => return Err(step(Step::Network, e)),
        }
    }
    apply_firewall(config_root, deps).map_err(|e| step(Step::Firewall, e))
}

fn restart(
    deps: &mut Deps<'_>,
    mode: Mode,
    unit: &str,
    events: &mut dyn FnMut(Event),
) -> Result<(), Failure> {
    match deps.manager(mode).restart(unit) {
        Ok(result) => {
            events(Event::ServiceRestart {
                unit: unit.to_owned(),
                mode,
                result,
            });
            if result.is_ok() {
                Ok(())
            } else {
                Err(Failure::Job {
                    unit: unit.to_owned(),
                    mode,
                    result,
                })
            }
        }
        Err(e) => Err(Failure::Systemd {
            unit: unit.to_owned(),
            op: SystemdOp::Restart,
            reason: e.reason,
        }),
    }
}

/// Spec 4.4's rootless preparation: the user's unit directories (owned by it), lingering, and
/// its user manager started, so that `systemctl --user` reaches it.
fn prepare_rootless(deps: &mut Deps<'_>) -> Result<(), String> {
    let Some(rootless) = deps.rootless.clone() else {
        return Err("rootless units need the rootless user, which does not exist".to_owned());
    };
    let home = &rootless.home;
    let dirs = [
        (home.clone(), HOME_MODE),
        (home.join(".config"), PRIVATE_DIR_MODE),
        (home.join(".config/containers"), PRIVATE_DIR_MODE),
        (rootless.target(), PRIVATE_DIR_MODE),
    ];
    for (dir, mode) in &dirs {
        if deps.fs.metadata(dir).map_err(|e| e.to_string())?.is_none() {
            deps.fs.create_dir(dir, *mode).map_err(|e| e.to_string())?;
        }
        deps.fs
            .chown(dir, rootless.owner.uid, rootless.owner.gid)
            .map_err(|e| e.to_string())?;
    }
    deps.accounts
        .run(&AccountOp::EnableLinger(rootless.user.clone()))
        .map_err(|e| e.to_string())?;
    let unit = rootless.manager_unit();
    match deps.system.start(&unit) {
        Ok(r) if r.is_ok() => Ok(()),
        Ok(r) => Err(format!("start {unit}: job {r}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON file of the config root, `None` when it does not exist.
fn read_optional_json<T: serde::de::DeserializeOwned>(
    fs: &dyn Fs,
    path: &Path,
) -> Result<Option<T>, String> {
    if !fs.exists(path).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let bytes = fs.read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("invalid {}: {e}", path.display()))
}

/// Spec 5.1: skipped when there is no `users.json`.
fn apply_users(config_root: &Path, deps: &mut Deps<'_>) -> Result<(), String> {
    let Some(users): Option<Users> = read_optional_json(deps.fs, &config_root.join(USERS_JSON))?
    else {
        return Ok(());
    };
    let managed = read_managed(deps.fs, config_root).map_err(|e| e.to_string())?;
    let existing = deps.accounts.existing().map_err(|e| e.to_string())?;
    let keys = config_root.join(KEYS_DIR);
    let plan = accounts::plan(&users, &managed, &existing, &deps.shells, &keys)
        .map_err(|e| e.to_string())?;
    for op in &plan.ops {
        deps.accounts.run(op).map_err(|e| e.to_string())?;
    }
    let file = config_root.join(MANAGED_USERS);
    write_atomic(deps.fs, &file, MANAGED_MODE, &managed_bytes(&plan.managed))
        .map_err(|e| e.to_string())
}

/// Spec 5.3: skipped when there is no `firewall-inbound.json`; applied in one transaction and
/// read back.
fn apply_firewall(config_root: &Path, deps: &mut Deps<'_>) -> Result<(), String> {
    let Some(inbound): Option<Inbound> =
        read_optional_json(deps.fs, &config_root.join(FIREWALL_INBOUND))?
    else {
        return Ok(());
    };
    let rules = firewall::inbound_rules(&inbound, &deps.interfaces);
    let listing = deps.firewall.list_input().map_err(|e| e.to_string())?;
    let script = firewall::script(&firewall::tagged_handles(&listing), &rules);
    deps.firewall.apply(&script).map_err(|e| e.to_string())?;
    let after = deps.firewall.list_input().map_err(|e| e.to_string())?;
    let want = rules.len();
    let got = firewall::count_tagged(&after, firewall::TAG_PROVISIONED)
        + firewall::count_tagged(&after, firewall::TAG_LAN_DEFAULT);
    if got != want {
        return Err(format!("read back {got} tagged rules, expected {want}"));
    }
    Ok(())
}

/// Spec 5.6 step 7: a `service-status` per runtime unit, and the `allow_degraded` rule.
fn statuses(
    policy: &Policy,
    units: &[RuntimeUnit],
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
    out: &mut Outcome,
) {
    for unit in units {
        let name = service(unit);
        let status = match deps.manager(unit.mode).active_state(&name) {
            Ok(ActiveState::Active) => ServiceStatus::Running,
            Ok(ActiveState::Failed) => ServiceStatus::Failed,
            _ => ServiceStatus::Unknown,
        };
        events(Event::ServiceStatus {
            unit: name.clone(),
            status,
        });
        let listed = |list: &[String]| list.iter().any(|n| format!("{n}.service") == name);
        if status != ServiceStatus::Failed || listed(&policy.required) {
            continue;
        }
        if policy.strict && policy.allow_degraded_configured && !listed(&policy.allow_degraded) {
            out.failures.push(Failure::Degraded { unit: name });
        } else {
            out.degraded.push(name);
        }
    }
}

/// Runs the activation of the promoted root and completes it: on success the store's
/// [`cleanup`] and a [`Committed`]; on failure [`restore`] and the previous config's
/// re-activation (re-apply) or [`discard_initial`] (initial).
pub fn complete(
    root: &ConfigRoot,
    kind: Promotion,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Completion {
    match activate_promoted(root, kind, deps, events) {
        Activated::Healthy(outcome) => commit(deps.fs, root, outcome, events),
        Activated::RolledBack(done) => done,
    }
}

/// What [`activate_promoted`] left.
#[derive(Debug)]
pub enum Activated {
    /// Healthy, and nothing committed yet (the marker and the rollback stay until [`commit`] or
    /// [`revert`]): the activation's outcome.
    Healthy(Outcome),
    /// Failed, and rolled back at once as [`complete`] does.
    RolledBack(Completion),
}

/// Runs the activation of the promoted root; a failure is rolled back at once.
pub fn activate_promoted(
    root: &ConfigRoot,
    kind: Promotion,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Activated {
    // A re-apply's payload is compared with the previous one (in the rollback); an initial
    // import's units are all new anyway.
    let payload_changed = kind == Promotion::Reapply && payload_changed(deps.fs, root);
    let outcome = run(root.active(), payload_changed, deps, events);
    if outcome.ok() {
        return Activated::Healthy(outcome);
    }
    if kind == Promotion::Reapply {
        let fs = deps.fs;
        return Activated::RolledBack(revert(fs, root, Some(deps), events, outcome));
    }
    events(Event::Rollback);
    let mut done = uncommitted(outcome, RollbackStatus::Discarded);
    if let Err(e) = discard_initial(deps.fs, root) {
        done.store_error = Some(e);
        done.rollback = RollbackStatus::Failed;
    }
    Activated::RolledBack(done)
}

/// Whether the promoted root's bundle payload (`files/`) differs from the rollback's.
fn payload_changed(fs: &dyn Fs, root: &ConfigRoot) -> bool {
    let (new, old) = (
        root.active().join(PAYLOAD_DIR),
        root.rollback().join(PAYLOAD_DIR),
    );
    !same_tree(fs, &new, &old).unwrap_or(false)
}

fn uncommitted(outcome: Outcome, rollback: RollbackStatus) -> Completion {
    Completion {
        outcome,
        rollback,
        rollback_outcome: None,
        store_error: None,
        committed: None,
    }
}

/// Commits a promoted root whose activation gave `outcome` (the default one when it was not
/// activated): the store's [`cleanup`], then a [`Committed`].
pub fn commit(
    fs: &dyn Fs,
    root: &ConfigRoot,
    outcome: Outcome,
    events: &mut dyn FnMut(Event),
) -> Completion {
    events(Event::Cleanup);
    let mut done = uncommitted(outcome, RollbackStatus::Skipped);
    match cleanup(fs, root) {
        Ok(()) => done.committed = Some(Committed { _private: () }),
        Err(e) => done.store_error = Some(e),
    }
    done
}

/// Reverts a promoted re-apply whose activation gave `outcome` (a failure, or a success that
/// was not confirmed in time): the store's [`restore`], then the previous config's
/// re-activation when `deps` is given. [`RollbackStatus::Completed`] when the previous config
/// is back (and, with the engine, healthy).
pub fn revert(
    fs: &dyn Fs,
    root: &ConfigRoot,
    deps: Option<&mut Deps<'_>>,
    events: &mut dyn FnMut(Event),
    outcome: Outcome,
) -> Completion {
    let payload_changed = payload_changed(fs, root);
    events(Event::Rollback);
    let mut done = uncommitted(outcome, RollbackStatus::Skipped);
    match restore(fs, root) {
        Ok(true) => {
            done.rollback = RollbackStatus::Completed;
            if let Some(deps) = deps {
                let again = run(root.active(), payload_changed, deps, events);
                if !again.ok() {
                    done.rollback = RollbackStatus::Failed;
                }
                done.rollback_outcome = Some(again);
            }
        }
        Ok(false) => {}
        Err(e) => {
            done.store_error = Some(e);
            done.rollback = RollbackStatus::Failed;
        }
    }
    done
}

/// Activates the active config root again, as it is (at every boot, since `/etc` is per boot,
/// and when first boot finds a config already there): nothing is promoted, so nothing is
/// rolled back, and a successful activation is the commit.
pub fn reactivate(
    root: &ConfigRoot,
    deps: &mut Deps<'_>,
    events: &mut dyn FnMut(Event),
) -> Completion {
    let outcome = run(root.active(), false, deps, events);
    let committed = outcome.ok().then_some(Committed { _private: () });
    Completion {
        outcome,
        rollback: RollbackStatus::Skipped,
        rollback_outcome: None,
        store_error: None,
        committed,
    }
}
