//! How a job reaches the activation engine: [`Engine::Systemd`] makes a [`System`] for each
//! job (the device's [`RealSystem`], connected to D-Bus on the job's thread; tests give
//! fakes), [`Engine::None`] runs no engine (`--activation none`, a host without systemd: an
//! initial import commits as written, a re-apply commits without activation).

use std::sync::Arc;

use crate::activate::{Deps, RealSystem};

/// What the engine acts through for one job.
pub trait System {
    /// The engine's dependencies.
    fn deps(&mut self) -> Deps<'_>;
}

impl System for RealSystem {
    fn deps(&mut self) -> Deps<'_> {
        RealSystem::deps(self)
    }
}

/// Makes a job's [`System`], or says why it cannot (no system bus).
pub type Connect = Arc<dyn Fn() -> Result<Box<dyn System>, String> + Send + Sync>;

/// Whether and how jobs activate what they import.
#[derive(Clone)]
pub enum Engine {
    /// No engine: imports commit without activation.
    None,
    /// The engine, through a system made for each job.
    Systemd(Connect),
}

impl Engine {
    /// The device's engine: [`RealSystem::connect`] for each job.
    pub fn real() -> Self {
        Self::Systemd(Arc::new(|| {
            RealSystem::connect()
                .map(|s| Box::new(s) as Box<dyn System>)
                .map_err(|e| e.to_string())
        }))
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Engine::None",
            Self::Systemd(_) => "Engine::Systemd",
        })
    }
}
