//! The clock check before containers start (spec 4.4): an image pulled over TLS needs a clock
//! that is right, and a board without a battery starts with the wrong one. When any container
//! would pull an image, the engine asks chrony whether the clock is synchronised and, if not,
//! waits a few times for it; if it never is, it warns and goes on (the pull may still work).
//! Images built on the device (`*.build`), Quadlet image units (`*.image`) and local images
//! (`localhost/…`) need no clock, so a config made only of those never waits.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::store::Fs;
use crate::store::quadlet_sync::{QUADLET_DIR, RuntimeUnit};

/// How many times the clock is waited for (`ATOMIXOS_CHRONY_WAIT_ATTEMPTS`).
pub const ATTEMPTS: u32 = 3;
/// How long each wait lasts (`ATOMIXOS_CHRONY_WAIT_TIMEOUT_SECONDS`).
pub const WAIT: Duration = Duration::from_secs(10);

/// The system clock's synchronisation.
pub trait TimeSync {
    /// Whether the clock is synchronised now.
    fn synced(&mut self) -> bool;
    /// Waits up to `timeout` for it; whether it is synchronised then.
    fn wait(&mut self, timeout: Duration) -> bool;
}

/// `chronyc tracking` (`Leap status : Normal`) and `chronyc waitsync`.
#[derive(Debug, Default)]
pub struct Chronyc;

impl TimeSync for Chronyc {
    fn synced(&mut self) -> bool {
        Command::new("chronyc")
            .arg("tracking")
            .output()
            .is_ok_and(|out| {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                        l.split_whitespace().collect::<Vec<_>>()
                            == ["Leap", "status", ":", "Normal"]
                    })
            })
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        // waitsync polls every second: as many tries as seconds, no distance or skew limit.
        let tries = timeout.as_secs().max(1).to_string();
        Command::new("chronyc")
            .args(["waitsync", &tries, "0", "0", "1"])
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// A clock that is, or becomes after some waits, synchronised.
#[derive(Debug, Default)]
pub struct FakeTimeSync {
    /// Waits it takes to synchronise (`None`: never).
    pub after_waits: Option<u32>,
    /// Waits so far.
    pub waits: u32,
}

impl TimeSync for FakeTimeSync {
    fn synced(&mut self) -> bool {
        self.after_waits.is_some_and(|n| self.waits >= n)
    }

    fn wait(&mut self, _timeout: Duration) -> bool {
        self.waits += 1;
        self.synced()
    }
}

/// Whether an `Image=` value is pulled from a registry.
pub fn pulls(image: &str) -> bool {
    let image = image.trim();
    !(image.ends_with(".build") || image.ends_with(".image") || image.starts_with("localhost/"))
}

/// The images the container units of `config_root` would pull (from their `Image=` lines).
pub fn pulled_images(fs: &dyn Fs, config_root: &Path, units: &[RuntimeUnit]) -> Vec<String> {
    units
        .iter()
        .filter(|u| u.filename.ends_with(".container"))
        .filter_map(|u| {
            fs.read(&config_root.join(QUADLET_DIR).join(&u.filename))
                .ok()
        })
        .flat_map(|text| {
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| l.strip_prefix("Image="))
                .filter(|i| pulls(i))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits for a synchronised clock, at most `attempts` times `wait`; whether it is.
pub fn ensure_synced(sync: &mut dyn TimeSync, attempts: u32, wait: Duration) -> bool {
    sync.synced() || (0..attempts).any(|_| sync.wait(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registry_images_pull() {
        for image in ["docker.io/library/nginx:1.27", "quay.io/x/y", "nginx"] {
            assert!(pulls(image), "{image}");
        }
        for image in ["web.build", "base.image", "localhost/probe:latest"] {
            assert!(!pulls(image), "{image}");
        }
    }

    #[test]
    fn the_clock_is_waited_for_a_bounded_number_of_times() {
        let mut synced = FakeTimeSync {
            after_waits: Some(0),
            waits: 0,
        };
        assert!(ensure_synced(&mut synced, 3, WAIT));
        assert_eq!(synced.waits, 0);
        let mut late = FakeTimeSync {
            after_waits: Some(2),
            waits: 0,
        };
        assert!(ensure_synced(&mut late, 3, WAIT));
        assert_eq!(late.waits, 2);
        let mut never = FakeTimeSync::default();
        assert!(!ensure_synced(&mut never, 3, WAIT));
        assert_eq!(never.waits, 3);
    }
}
