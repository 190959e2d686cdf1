//! The network apply step (spec 5.2) as seen by the engine: a [`Network`] trait that writes the
//! LAN and host network files and reports what changed, and the restart rules for those
//! changes. The real implementation (the rendering and writing of 5.2) is not part of this
//! module; [`NoNetwork`] stands in until it exists.

use std::path::Path;

/// Which inputs of which services changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkChanges {
    /// networkd files (the implementation has run `networkctl reload`).
    pub network: bool,
    /// dnsmasq configuration or hosts.
    pub dnsmasq: bool,
    /// chrony configuration.
    pub chrony: bool,
}

/// The units to try-restart for `changes`, in order (spec 5.2): networkd and resolved, then
/// dnsmasq, then chrony (Debian's unit is `chrony.service`).
pub fn restarts(changes: NetworkChanges) -> Vec<&'static str> {
    let mut out = Vec::new();
    if changes.network {
        out.extend(["systemd-networkd.service", "systemd-resolved.service"]);
    }
    if changes.dnsmasq {
        out.push("dnsmasq.service");
    }
    if changes.chrony {
        out.push("chrony.service");
    }
    out
}

/// A network apply that failed.
#[derive(Debug, thiserror::Error)]
#[error("network apply failed: {reason}")]
pub struct NetworkError {
    /// What failed.
    pub reason: String,
}

/// Applies the network files of a config root.
pub trait Network {
    /// Writes what changed (atomically, unchanged files untouched) and reports it.
    fn apply(&mut self, config_root: &Path) -> Result<NetworkChanges, NetworkError>;
}

/// Does nothing and changes nothing.
#[derive(Debug, Default)]
pub struct NoNetwork;

impl Network for NoNetwork {
    fn apply(&mut self, _config_root: &Path) -> Result<NetworkChanges, NetworkError> {
        Ok(NetworkChanges::default())
    }
}

/// A scripted network step.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    /// What `apply` reports.
    pub changes: NetworkChanges,
    /// Makes `apply` fail.
    pub fail: bool,
    /// How often `apply` ran.
    pub runs: usize,
}

impl Network for FakeNetwork {
    fn apply(&mut self, _config_root: &Path) -> Result<NetworkChanges, NetworkError> {
        self.runs += 1;
        if self.fail {
            return Err(NetworkError {
                reason: "scripted".to_owned(),
            });
        }
        Ok(self.changes)
    }
}
