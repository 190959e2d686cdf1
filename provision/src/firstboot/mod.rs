//! `first-boot` (spec 1.4, the original's first-boot.sh): provision the device once, from the
//! first source that works, then mark the booted slot good and write the sentinel.
//!
//! The order: the existing config, if it validates; else the boot partition's seed, only on a
//! fresh flash (or after a fresh flash's interrupted first boot); else USB seeds; else wait for
//! a config to arrive (the web console, an operator), looking at USB again now and then.
//!
//! Deliberate changes from the original (spec 9.1-9.4): every seed goes through the one import
//! path with the activation engine, so every apply step and the health window gate mark-good
//! on every path; a seed that cannot be read, does not validate, or fails to activate is
//! reported (journal, console, and [`super::firstboot::settings::STATUS_FILE`] for the web
//! console) and the search goes on to the next source instead of ending; the boot seed stays
//! usable after an interrupted first boot; USB seeds may be bundles on vfat, exfat or ext4.

pub mod seeds;
pub mod settings;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::activate::{
    Completion, Deps, Event, Marked, Rauc, RaucError, bootstrap, mark_good, reactivate,
};
use crate::import::{self, Activation, Options};
use crate::source::Source;
use crate::store::tree::{parent_of, write_atomic};
use crate::store::{Fs, FsError, RootError};
use crate::validate;
pub use seeds::{DeviceSeeds, MountCommand, Seed, SeedFinder};
pub use settings::{BootSeed, Settings};

/// How often the wait looks for a config (the original's poll).
pub const POLL: Duration = Duration::from_secs(1);
/// Every this many polls, the wait looks at USB again.
pub const USB_RESCAN_POLLS: u32 = 5;

/// How first boot ended (all but an error).
#[derive(Debug)]
pub enum Finished {
    /// The sentinel was there: nothing to do.
    Skipped,
    /// Provisioned from `origin`, the slot marked good (unless RAUC is off), the sentinel
    /// written.
    Provisioned {
        /// `existing`, `console`, or the seed's origin.
        origin: String,
        /// What RAUC said, when it was asked.
        marked: Option<Marked>,
    },
    /// The wait was stopped before a config came (only a test stops it).
    StillWaiting,
}

/// Why first boot failed; the device stays unprovisioned or unmarked, and the next boot tries
/// again.
#[derive(Debug, thiserror::Error)]
pub enum FirstBootError {
    /// The existing config did not activate.
    #[error("the existing config did not activate: {0}")]
    Existing(String),
    /// A config came while waiting and did not activate.
    #[error("the config that arrived did not activate: {0}")]
    Arrived(String),
    /// RAUC is on but no boot slot is known (no `rauc.slot=` on the command line).
    #[error("no boot slot to mark good: rauc.slot= is not on the kernel command line")]
    NoSlot,
    /// RAUC refused mark-good.
    #[error("rauc mark-good")]
    MarkGood(#[source] RaucError),
    /// A file of first boot's state could not be read or written.
    #[error("first-boot state")]
    State(#[from] FsError),
    /// The config root's lock.
    #[error(transparent)]
    Lock(#[from] RootError),
}

/// A seed that did not provision the device, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where the seed came from.
    pub origin: String,
    /// Why it was not used (the whole validation report, for an invalid config).
    pub error: String,
}

/// What first boot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Trying the existing config and the seeds.
    Searching,
    /// No seed provisioned the device: waiting for a config (the web console, an operator).
    Waiting,
    /// Provisioned.
    Provisioned,
}

/// `provisioning-status.json` ([`settings::STATUS_FILE`]): what first boot is doing and the
/// seeds that failed; the web console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// What first boot is doing.
    pub state: State,
    /// The seeds that did not provision the device, in the order they were tried.
    pub problems: Vec<Problem>,
}

/// What first boot acts through.
pub struct Context<'a, 'd> {
    /// The settings.
    pub settings: &'a Settings,
    /// The filesystem (state files and the config root).
    pub fs: &'a dyn Fs,
    /// Where seeds are found.
    pub seeds: &'a mut dyn SeedFinder,
    /// The activation engine's dependencies.
    pub deps: &'a mut Deps<'d>,
    /// RAUC.
    pub rauc: &'a mut dyn Rauc,
    /// Called between polls while waiting; `false` stops the wait (production sleeps [`POLL`]
    /// and returns `true`).
    pub pause: &'a mut dyn FnMut() -> bool,
    /// Progress and problems, one line each (the journal and the console).
    pub log: &'a mut dyn FnMut(&str),
}

impl std::fmt::Debug for Context<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The state of the config root, for the first step.
enum Existing {
    /// No `config.toml` (or a promotion is pending: not yet a config).
    None,
    /// A `config.toml` that does not validate.
    Invalid(String),
    /// A valid config.
    Valid,
}

impl Context<'_, '_> {
    fn say(&mut self, line: &str) {
        (self.log)(line);
    }

    fn existing(&self) -> Result<Existing, FsError> {
        let root = &self.settings.config_root;
        let config = root.active_config();
        if self.fs.exists(&root.marker())? || !self.fs.exists(&config)? {
            return Ok(Existing::None);
        }
        let text = String::from_utf8_lossy(&self.fs.read(&config)?).into_owned();
        let runtime = root.active().to_string_lossy().into_owned();
        Ok(match validate::validate(&text, &runtime) {
            Ok(_) => Existing::Valid,
            Err(report) => {
                Existing::Invalid(report.render_text(&config.display().to_string(), &text))
            }
        })
    }

    /// Activates the existing config under the lock.
    fn reactivate(&mut self, origin: &str) -> Result<Completion, FirstBootError> {
        let root = self.settings.config_root.clone();
        let _lock = root.lock()?;
        let log = &mut *self.log;
        Ok(reactivate(&root, self.deps, &mut |e: Event| {
            log(&format!("{origin}: {e}"))
        }))
    }

    /// Validates, imports and activates a seed; the completion if it committed.
    fn try_seed(&mut self, seed: Seed) -> Result<(String, Completion), Problem> {
        let problem = |error: String| Problem {
            origin: seed.origin.clone(),
            error,
        };
        let source: Source = seed.read.clone().map_err(problem)?;
        let root = self.settings.config_root.clone();
        let runtime = root.active().to_string_lossy().into_owned();
        let valid = validate::validate(&source.toml, &runtime)
            .map_err(|report| problem(report.render_text(&seed.origin, &source.toml)))?;
        self.say(&format!("{}: valid, importing", seed.origin));
        let options = Options {
            keep_pending: false,
            payload_owner: self.settings.payload_owner,
            ..Options::default()
        };
        let origin = seed.origin.clone();
        let log = &mut *self.log;
        let mut events = |e: Event| log(&format!("{origin}: {e}"));
        let activation = Activation {
            deps: self.deps,
            events: &mut events,
        };
        let imported = import::import(self.fs, &root, &source, &valid, options, Some(activation))
            .map_err(|e| problem(format!("{:#}", anyhow::Error::new(e))))?;
        match imported.completion {
            Some(c) if c.committed.is_some() => Ok((seed.origin, c)),
            Some(c) => Err(problem(format!(
                "activation failed: {}; rollback: {}",
                c.failures().join(", "),
                c.rollback
            ))),
            None => Err(problem("the import did not activate".to_owned())),
        }
    }

    /// Tries `seeds` in order; the first that commits.
    fn try_seeds(
        &mut self,
        seeds: Vec<Seed>,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<(String, Completion)>, FsError> {
        for seed in seeds {
            self.say(&format!("seed found: {}", seed.origin));
            match self.try_seed(seed) {
                Ok(done) => return Ok(Some(done)),
                Err(p) => {
                    self.say(&format!("seed {} not used: {}", p.origin, p.error));
                    problems.push(p);
                    self.status(State::Searching, problems)?;
                }
            }
        }
        Ok(None)
    }

    fn status(&self, state: State, problems: &[Problem]) -> Result<(), FsError> {
        let path = &self.settings.status_file;
        let dir = parent_of(path);
        if !self.fs.exists(dir)? {
            self.fs.create_dir(dir, 0o755)?;
        }
        // Strings and a list of them: serializing cannot fail.
        let status = Status {
            state,
            problems: problems.to_vec(),
        };
        let mut json = serde_json::to_vec_pretty(&status).unwrap_or_default();
        json.push(b'\n');
        write_atomic(self.fs, path, 0o644, &json)
    }

    /// Marks the slot good, writes the sentinel, forgets the boot seed, closes the WAN port.
    fn finish(&mut self, origin: String, done: &Completion) -> Result<Finished, FirstBootError> {
        let committed = done
            .committed
            .as_ref()
            .ok_or_else(|| FirstBootError::Arrived(done.failures().join(", ")))?;
        let s = self.settings;
        let marked = if s.rauc {
            let slot = s.slot.clone().ok_or(FirstBootError::NoSlot)?;
            let marked = mark_good(committed, self.rauc).map_err(FirstBootError::MarkGood)?;
            self.say(&format!("marked the booted slot {slot} good"));
            Some(marked)
        } else {
            self.say("RAUC disabled (ATOMIXOS_RAUC_ENABLE=0): no mark-good");
            None
        };
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        write_atomic(self.fs, &s.sentinel, 0o644, format!("{now}\n").as_bytes())?;
        if self.fs.exists(&s.boot_seed_pending)? {
            self.fs.remove_file(&s.boot_seed_pending)?;
            self.fs.fsync_dir(parent_of(&s.boot_seed_pending))?;
        }
        self.status(State::Provisioned, &[])?;
        let ifaces = self.deps.interfaces.clone();
        match bootstrap::toggle(self.fs, &s.config_root, self.deps.firewall, &ifaces) {
            Ok(open) => self.say(&format!(
                "bootstrap WAN port {}",
                if open { "open" } else { "closed" }
            )),
            Err(e) => self.say(&format!("warning: bootstrap WAN toggle: {e}")),
        }
        self.say(&format!("first boot complete: provisioned from {origin}"));
        Ok(Finished::Provisioned { origin, marked })
    }
}

/// Runs first boot to its end: provisioned, or an error (or, in tests, a stopped wait).
pub fn run(ctx: &mut Context<'_, '_>) -> Result<Finished, FirstBootError> {
    let s = ctx.settings;
    if ctx.fs.exists(&s.sentinel)? {
        ctx.say("Sentinel exists, skipping");
        return Ok(Finished::Skipped);
    }
    let fresh = ctx.fs.exists(&s.fresh_flash_marker)?;
    if fresh && !ctx.fs.exists(&s.boot_seed_pending)? {
        write_atomic(ctx.fs, &s.boot_seed_pending, 0o644, b"pending\n")?;
        ctx.say("fresh flash: the boot partition's seed stays usable until provisioning completes");
    }
    let boot_allowed = fresh || ctx.fs.exists(&s.boot_seed_pending)?;
    let mut problems = Vec::new();

    match ctx.existing()? {
        Existing::Valid => {
            ctx.say("Using existing provisioned config");
            let done = ctx.reactivate("existing")?;
            if done.committed.is_none() {
                return Err(FirstBootError::Existing(done.failures().join(", ")));
            }
            return ctx.finish("existing".into(), &done);
        }
        Existing::Invalid(report) => {
            ctx.say(&format!("the existing config is invalid: {report}"));
            problems.push(Problem {
                origin: s.config_root.active_config().display().to_string(),
                error: report,
            });
        }
        Existing::None => {}
    }

    // The boot seed first; USB is looked at only when that did not provision the device.
    let boot = if boot_allowed {
        let seed = ctx.seeds.boot_seed();
        if seed.is_none() {
            ctx.say("no seed on the boot partition");
        }
        seed
    } else {
        ctx.say("not a fresh flash: the boot partition's seed is not used");
        None
    };
    if let Some((origin, done)) = ctx.try_seeds(boot.into_iter().collect(), &mut problems)? {
        return ctx.finish(origin, &done);
    }
    let usb = ctx.seeds.usb_seeds();
    if let Some((origin, done)) = ctx.try_seeds(usb, &mut problems)? {
        return ctx.finish(origin, &done);
    }

    ctx.status(State::Waiting, &problems)?;
    ctx.say("Waiting for provisioning via bootstrap web console");
    let mut polls = 0u32;
    loop {
        if !(ctx.pause)() {
            return Ok(Finished::StillWaiting);
        }
        polls = polls.wrapping_add(1);
        if let Existing::Valid = ctx.existing()? {
            ctx.say("a config arrived");
            let done = ctx.reactivate("console")?;
            return ctx.finish("console".into(), &done);
        }
        if polls.is_multiple_of(USB_RESCAN_POLLS) {
            let seeds = ctx.seeds.usb_seeds();
            if let Some((origin, done)) = ctx.try_seeds(seeds, &mut problems)? {
                return ctx.finish(origin, &done);
            }
        }
    }
}
