//! `import`: a validated config (and its bundle payload) made the active config root, the one
//! mutation path every entry point takes (spec 3.3, 5.6): under the lock, recover, write the
//! candidate, promote, then either activate it through the engine (commit, or roll back and
//! re-activate the previous config) or, for an initial import without activation, commit at
//! once (or leave the promotion pending for first boot).
//!
//! A re-apply over a provisioned root always activates: without the engine it is refused
//! before anything is written, unless [`Options::unactivated_reapply`] says to commit it as
//! written (the API's `--activation none`, for a host without systemd).
//!
//! Confirm-or-revert ([`Options::hold_risky`]): a re-apply that changes what can cut the
//! operator off the device ([`RISKY`]: the admin signers, the LAN, the host network, the
//! firewall) is activated and health-checked as usual, but not committed: the import returns
//! it [`Held`], with the config root's lock, for the caller to [`Held::commit`] or
//! [`Held::revert`]. Until then the promotion stays pending on disk (marker and rollback), so a
//! reboot reverts it: recovery restores the rollback (row 1 of [`store::recover()`]).

use atomix_config::files::FileSet;
use atomix_config::quadlet::APP_USER;
use atomix_config::root_files::{ADMIN_SIGNERS, FIREWALL_INBOUND, LAN_SETTINGS};

use crate::activate::{
    self, Activated, Completion, Deps, Event, Outcome, activate_promoted, complete,
};
use crate::source::Source;
use crate::store::{
    self, CandidateSpec, ConfigRoot, DirModes, Fs, FsError, LockGuard, Owner, Payload, Promotion,
    Recovery, RootError, StoreError,
};
use crate::validate::Valid;

/// A rendered file whose change makes a re-apply risky: it can cut the operator off the
/// device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Risk {
    /// The file under the config root.
    pub file: &'static str,
    /// What it is.
    pub what: &'static str,
}

/// The risky files.
pub const RISKY: &[Risk] = &[
    Risk {
        file: ADMIN_SIGNERS,
        what: "the admin signers",
    },
    Risk {
        file: LAN_SETTINGS,
        what: "the LAN",
    },
    Risk {
        file: "host-network.json",
        what: "the host network",
    },
    Risk {
        file: FIREWALL_INBOUND,
        what: "the firewall",
    },
];

/// How an import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Leave an initial promotion without activation pending (marker and rollback kept) for
    /// the first-boot flow (`ATOMIXOS_KEEP_INITIAL_PROMOTION_PENDING=1`).
    pub keep_pending: bool,
    /// The owner of the bundle payload (`appsvc`); needed when there is one.
    pub payload_owner: Option<Owner>,
    /// Refuse a re-apply: only an initial import may run (the API's unauthenticated import
    /// before provisioning, checked again under the lock).
    pub initial_only: bool,
    /// Commit a re-apply without activation when none is given, instead of refusing it (the
    /// API's `--activation none`: a host without systemd).
    pub unactivated_reapply: bool,
    /// Keep the active root's `files/` (the bundle payload) when the source has none: a partial
    /// update changes the config, not its payload (spec 6.8).
    pub keep_payload: bool,
    /// The active `config.toml` the new config was made from (a partial update): if the active
    /// one is another by the time the lock is held, nothing is written
    /// ([`ImportError::Changed`]).
    pub based_on: Option<&'a [u8]>,
    /// Confirm-or-revert: hold a risky re-apply ([`RISKY`]) once activated and healthy instead
    /// of committing it ([`Imported::held`]).
    pub hold_risky: bool,
}

/// A step of an import, reported as it starts (the API's job events).
#[derive(Debug)]
pub enum Progress<'a> {
    /// Recovery ran, under the lock; what it did.
    Recovered(&'a Recovery),
    /// The candidate is being written: an initial import or a re-apply.
    WriteCandidate(Promotion),
    /// The candidate is written and is being promoted.
    Promote(Promotion),
}

/// The engine and where its events go, for an import that activates.
pub struct Activation<'a, 'd> {
    /// The engine's dependencies.
    pub deps: &'a mut Deps<'d>,
    /// Receives every event of the activation (and of a rollback's re-activation).
    pub events: &'a mut dyn FnMut(Event),
}

impl std::fmt::Debug for Activation<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("deps", &self.deps)
            .finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// What recovery found and did first.
    pub recovery: Recovery,
    /// Top-level names carried forward from the previous root (hand-placed files).
    pub carried: Vec<String>,
    /// An initial import or a re-apply.
    pub kind: Promotion,
    /// Whether the promotion was left pending ([`Options::keep_pending`], no activation).
    pub pending: bool,
    /// The activation's result, when the import activated: committed, or rolled back.
    pub completion: Option<Completion>,
    /// The re-apply held for confirmation ([`Options::hold_risky`]); the completion is then
    /// [`Held::commit`]'s or [`Held::revert`]'s.
    pub held: Option<Held>,
}

/// A risky re-apply held for confirmation: the new config is active (activated and healthy
/// when the import had the engine) and the previous one kept as the rollback, the config root
/// locked, until [`Held::commit`] or [`Held::revert`]. Dropped without either, the promotion
/// stays pending on disk and recovery reverts it.
#[derive(Debug)]
pub struct Held {
    outcome: Option<Outcome>,
    risky: Vec<&'static Risk>,
    _lock: LockGuard,
}

impl Held {
    /// What makes it risky.
    pub fn risky(&self) -> &[&'static Risk] {
        &self.risky
    }

    /// Whether the engine activated it (and its health held); `false` without activation.
    pub fn activated(&self) -> bool {
        self.outcome.is_some()
    }

    /// Keeps the new config ([`activate::commit`]); the lock is released.
    pub fn commit(
        self,
        fs: &dyn Fs,
        root: &ConfigRoot,
        events: &mut dyn FnMut(Event),
    ) -> Completion {
        activate::commit(fs, root, self.outcome.unwrap_or_default(), events)
    }

    /// Restores the previous config and, given the engine, activates it again
    /// ([`activate::revert`]); the lock is released.
    pub fn revert(
        self,
        fs: &dyn Fs,
        root: &ConfigRoot,
        deps: Option<&mut Deps<'_>>,
        events: &mut dyn FnMut(Event),
    ) -> Completion {
        activate::revert(fs, root, deps, events, self.outcome.unwrap_or_default())
    }
}

/// What of [`RISKY`] differs between the root at `active` and the `rendered` files.
pub fn risky_changes(
    fs: &dyn Fs,
    active: &std::path::Path,
    rendered: &FileSet,
) -> Result<Vec<&'static Risk>, FsError> {
    let mut changed = Vec::new();
    for risk in RISKY {
        let path = active.join(risk.file);
        let before = if fs.exists(&path)? {
            Some(fs.read(&path)?)
        } else {
            None
        };
        if before.as_deref() != rendered.get(risk.file).map(|f| f.contents.as_slice()) {
            changed.push(risk);
        }
    }
    Ok(changed)
}

impl Imported {
    /// Whether the new config is the active one now (committed, or left pending).
    pub fn succeeded(&self) -> bool {
        self.completion
            .as_ref()
            .is_none_or(|c| c.committed.is_some())
    }
}

/// Why an import failed before its activation. Nothing of the active root was changed unless
/// the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] RootError),
    /// A store step failed; recovery at the next boot (or the next import) leaves the old or
    /// the new root whole.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config root is provisioned and no activation was given: a re-apply must activate
    /// the new config and check its health before it commits.
    #[error(
        "{} is provisioned already: a re-apply activates the new config and checks its health, \
         which needs systemd",
        .0.display()
    )]
    Provisioned(std::path::PathBuf),
    /// The bundle has `files/` and the user that owns them does not exist.
    #[error("the bundle's files/ belong to the {APP_USER} user, which does not exist")]
    NoAppUser,
    /// [`Options::initial_only`] and the root is provisioned.
    #[error("config already provisioned; reapply requires authenticated API access")]
    AlreadyProvisioned,
    /// [`Options::based_on`] is not the active config.toml any more.
    #[error(
        "{} changed since the update was made from it (another import came first): send the \
         update again",
        .0.display()
    )]
    Changed(std::path::PathBuf),
}

/// Imports `source` (validated as `valid`) into `root`, activating it when `activation` is
/// given.
pub fn import(
    fs: &dyn Fs,
    root: &ConfigRoot,
    source: &Source,
    valid: &Valid,
    options: Options,
    activation: Option<Activation<'_, '_>>,
) -> Result<Imported, ImportError> {
    import_reporting(fs, root, source, valid, options, activation, &mut |_| {})
}

/// [`import`], telling `progress` each step as it starts.
pub fn import_reporting(
    fs: &dyn Fs,
    root: &ConfigRoot,
    source: &Source,
    valid: &Valid,
    options: Options,
    activation: Option<Activation<'_, '_>>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Imported, ImportError> {
    let payload = match &source.payload {
        Some(files) => {
            if options.payload_owner.is_none() {
                return Err(ImportError::NoAppUser);
            }
            Payload::Replace(files.clone())
        }
        None if options.keep_payload => Payload::KeepActive,
        None => Payload::None,
    };
    let lock = root.lock()?;
    let recovery = store::recover(fs, root)?;
    progress(Progress::Recovered(&recovery));
    let kind = if fs.exists(&root.active_config()).map_err(StoreError::from)? {
        Promotion::Reapply
    } else {
        Promotion::Initial
    };
    if let Some(base) = options.based_on {
        let active = root.active_config();
        if kind == Promotion::Initial || fs.read(&active).map_err(StoreError::from)? != base {
            return Err(ImportError::Changed(active));
        }
    }
    if kind == Promotion::Reapply {
        if options.initial_only {
            return Err(ImportError::AlreadyProvisioned);
        }
        if activation.is_none() && !options.unactivated_reapply {
            return Err(ImportError::Provisioned(root.active().to_owned()));
        }
    }
    let risky = if options.hold_risky && kind == Promotion::Reapply {
        risky_changes(fs, root.active(), &valid.root.files).map_err(StoreError::from)?
    } else {
        Vec::new()
    };
    progress(Progress::WriteCandidate(kind));
    let report = store::write_candidate(
        fs,
        root,
        &CandidateSpec {
            files: &valid.root.files,
            dir_modes: &DirModes::standard(),
            payload: &payload,
            payload_owner: options.payload_owner,
        },
    )?;
    progress(Progress::Promote(kind));
    store::promote(fs, root, kind)?;
    let held_needed = !risky.is_empty();
    let mut imported = Imported {
        recovery,
        carried: report.carried,
        kind,
        pending: false,
        completion: None,
        held: None,
    };
    let held = |outcome| Held {
        outcome,
        risky,
        _lock: lock,
    };
    match activation {
        Some(a) if held_needed => match activate_promoted(root, kind, a.deps, a.events) {
            Activated::Healthy(outcome) => imported.held = Some(held(Some(outcome))),
            Activated::RolledBack(done) => imported.completion = Some(done),
        },
        Some(a) => imported.completion = Some(complete(root, kind, a.deps, a.events)),
        None if held_needed => imported.held = Some(held(None)),
        None if options.keep_pending && kind == Promotion::Initial => imported.pending = true,
        None => store::cleanup(fs, root)?,
    }
    Ok(imported)
}
