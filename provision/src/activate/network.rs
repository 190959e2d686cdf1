//! The network apply step (spec 5.2) as seen by the engine: a [`Network`] trait that writes the
//! LAN and host network files and reports what changed, and the restart rules for those
//! changes. The real implementation is [`super::etc_network::EtcNetwork`]; [`NoNetwork`] and
//! [`FakeNetwork`] stand in for it in tests.

use std::path::{Path, PathBuf};

use atomix_config::net::MacError;
use atomix_config::system::RenderError;

use crate::store::FsError;

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

/// A network apply that failed. Whatever fails while planning leaves every file as it was.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Reading, writing or removing a file.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The config root's config.toml does not parse (it did when it was imported).
    #[error("{} is not a valid config: {}", path.display(), errors.join("; "))]
    Config {
        /// The file.
        path: PathBuf,
        /// Every error, `line:col: path: message`.
        errors: Vec<String>,
    },
    /// The LAN interface's address file does not hold a MAC address.
    #[error("cannot read the LAN interface's MAC address from {}", path.display())]
    Mac {
        /// The sysfs file.
        path: PathBuf,
        /// What it held.
        #[source]
        source: MacError,
    },
    /// The files cannot be rendered from the config.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Something other than a file (a directory, a device) is where a file goes.
    #[error("{} is in the way of a network file: not a regular file or symlink", path.display())]
    NotAFile {
        /// Where.
        path: PathBuf,
    },
    /// Something other than a directory is where a directory goes.
    #[error("{} is in the way of a network file's directory: not a directory", path.display())]
    NotADirectory {
        /// Where.
        path: PathBuf,
    },
    /// A command failed.
    #[error("{command} failed: {reason}")]
    Command {
        /// The command line (`networkctl reload`).
        command: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
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
            return Err(NetworkError::Command {
                command: "networkctl reload".to_owned(),
                reason: "scripted".to_owned(),
            });
        }
        Ok(self.changes)
    }
}
