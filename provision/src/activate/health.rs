//! The health window: every required unit must reach `active` and stay active for the settle
//! window, all before the deadline; `ActiveState` is polled through the window (no single
//! probe). A unit that enters `failed` fails at once; one that leaves `active` starts its
//! window again.

use std::time::Duration;

use super::clock::Clock;
use super::outcome::Failure;
use super::systemd::{ActiveState, Systemd};
use crate::store::quadlet_sync::Mode;

/// How often states are polled.
pub const POLL: Duration = Duration::from_secs(1);

/// A unit to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The service.
    pub unit: String,
    /// Its manager.
    pub mode: Mode,
}

/// Polls `units` until each has been active for `settle` or `deadline` (a [`Clock::now`] value)
/// passes, asking `system` or `user` by the unit's mode. Returns the failures (empty: healthy).
pub fn wait_healthy(
    units: &[Watched],
    settle: Duration,
    deadline: Duration,
    clock: &dyn Clock,
    system: &mut dyn Systemd,
    user: &mut dyn Systemd,
) -> Vec<Failure> {
    let mut since: Vec<Option<Duration>> = vec![None; units.len()];
    let mut last: Vec<ActiveState> = vec![ActiveState::Other("unknown".to_owned()); units.len()];
    loop {
        let now = clock.now();
        let mut failures = Vec::new();
        let mut healthy = true;
        for (i, w) in units.iter().enumerate() {
            let manager: &mut dyn Systemd = match w.mode {
                Mode::Rootful => &mut *system,
                Mode::Rootless => &mut *user,
            };
            let state = manager
                .active_state(&w.unit)
                .unwrap_or_else(|e| ActiveState::Other(format!("unknown ({})", e.reason)));
            match state {
                ActiveState::Active => {
                    let start = *since[i].get_or_insert(now);
                    if now.saturating_sub(start) < settle {
                        healthy = false;
                    }
                }
                ActiveState::Failed => failures.push(Failure::UnitFailed {
                    unit: w.unit.clone(),
                }),
                _ => {
                    since[i] = None;
                    healthy = false;
                }
            }
            last[i] = state;
        }
        if !failures.is_empty() {
            return failures;
        }
        if healthy {
            return Vec::new();
        }
        if now >= deadline {
            return units
                .iter()
                .zip(last)
                .zip(&since)
                .filter(|((_, state), start)| {
                    *state != ActiveState::Active
                        || start.is_none_or(|s| now.saturating_sub(s) < settle)
                })
                .map(|((w, state), _)| Failure::Timeout {
                    unit: w.unit.clone(),
                    last: state,
                })
                .collect();
        }
        clock.sleep(POLL.min(deadline - now));
    }
}
