//! The real network step (spec 5.2): [`EtcNetwork`] renders the LAN and host network files
//! from the config root's `config.toml` ([`atomix_config::system`]) and brings `/etc` in line
//! with them, then asks networkd to reload if its files changed.
//!
//! An apply first plans everything: it parses the config, reads the LAN NIC's MAC address and
//! `/etc/hosts`, renders, and compares each file with what is there. Any failure up to here
//! leaves every file as it was. Then it creates missing directories (`0o755`), replaces each
//! changed file atomically ([`write_atomic`]: a temporary file beside it, fsynced, renamed over
//! it, the directory fsynced; a symlink is replaced, not followed), removes the stale managed
//! files, and runs `networkctl reload` when a networkd file changed or went. A file whose
//! bytes and mode are already right is not touched.
//!
//! A config root without `config.toml` (not provisioned) changes nothing, as the original's
//! unit condition did. Not done here: the bootstrap socket's drop-in
//! (`atomixos-bootstrap.socket.d/50-lan-bind.conf`), which belongs to the HTTP service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_config::Config;
use atomix_config::net::Mac;
use atomix_config::root_files::CONFIG_TOML;
use atomix_config::system::{self, MODE, NetworkFiles, Service, networkd};

use super::network::{Network, NetworkChanges, NetworkError};
use crate::store::fs::{Fs, Kind, RealFs};
use crate::store::tree::{parent_of, write_atomic};

/// Mode of the directories the step creates (drop-in directories).
const DIR_MODE: u32 = 0o755;

/// Runs a program to its end.
pub trait Runner {
    /// Runs `program` with `args`; an error is the exit status and stderr, or why it could not
    /// start.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String>;
}

/// [`Runner`] through `std::process`.
#[derive(Debug, Default)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("{}: {}", out.status, stderr.trim()))
    }
}

/// A recording [`Runner`].
#[derive(Debug, Default)]
pub struct FakeRunner {
    /// Every command line run, program first.
    pub ran: Vec<Vec<String>>,
    /// Makes every run fail.
    pub fail: bool,
}

impl Runner for FakeRunner {
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut line = vec![program.to_owned()];
        line.extend(args.iter().map(|a| (*a).to_owned()));
        self.ran.push(line);
        if self.fail {
            return Err("scripted".to_owned());
        }
        Ok(())
    }
}

/// The network step on a real `/etc`.
#[derive(Debug)]
pub struct EtcNetwork<R> {
    /// `/etc`.
    pub etc: PathBuf,
    /// `/sys`, where the LAN NIC's address is read (`class/net/eth1/address`).
    pub sysfs: PathBuf,
    /// Runs `networkctl`.
    pub runner: R,
}

impl Default for EtcNetwork<ProcessRunner> {
    fn default() -> Self {
        Self {
            etc: PathBuf::from("/etc"),
            sysfs: PathBuf::from("/sys"),
            runner: ProcessRunner,
        }
    }
}

/// What an apply will do, decided before it does anything.
#[derive(Debug, Default)]
struct Plan {
    /// Directories to create, outermost first.
    dirs: Vec<PathBuf>,
    /// Files to write: path, contents, reader.
    writes: Vec<(PathBuf, Vec<u8>, Service)>,
    /// Stale files to remove, and their reader.
    removals: Vec<(PathBuf, Service)>,
}

impl Plan {
    fn changes(&self) -> NetworkChanges {
        let services = self.writes.iter().map(|(_, _, s)| s);
        let mut out = NetworkChanges::default();
        for service in services.chain(self.removals.iter().map(|(_, s)| s)) {
            match service {
                Service::Network => out.network = true,
                Service::Dnsmasq => out.dnsmasq = true,
                Service::Chrony => out.chrony = true,
            }
        }
        out
    }
}

/// `path`'s bytes, or `None` when nothing is there.
fn read_optional(fs: &dyn Fs, path: &Path) -> Result<Option<Vec<u8>>, NetworkError> {
    if fs.metadata(path)?.is_none() {
        return Ok(None);
    }
    Ok(Some(fs.read(path)?))
}

impl<R: Runner> EtcNetwork<R> {
    /// The LAN interface's address file.
    pub fn mac_path(&self) -> PathBuf {
        self.sysfs
            .join("class/net")
            .join(networkd::LAN)
            .join("address")
    }

    /// Renders the files for the config in `config_root`, or `None` when there is none.
    fn render(
        &self,
        fs: &dyn Fs,
        config_root: &Path,
    ) -> Result<Option<NetworkFiles>, NetworkError> {
        let path = config_root.join(CONFIG_TOML);
        let Some(bytes) = read_optional(fs, &path)? else {
            return Ok(None);
        };
        let invalid = |errors| NetworkError::Config {
            path: path.clone(),
            errors,
        };
        let source = String::from_utf8(bytes).map_err(|_| invalid(vec!["not UTF-8".into()]))?;
        let config = Config::parse(&source).map_err(|report| {
            invalid(
                report
                    .errors()
                    .map(|d| format!("{}:{}: {}: {}", d.line, d.col, d.path, d.message))
                    .collect(),
            )
        })?;
        let mac_path = self.mac_path();
        let mac = match read_optional(fs, &mac_path)? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let mac: Mac = text.parse().map_err(|source| NetworkError::Mac {
                    path: mac_path.clone(),
                    source,
                })?;
                Some(mac)
            }
            None => None,
        };
        let hosts_path = self.etc.join(system::hosts::PATH);
        let hosts = read_optional(fs, &hosts_path)?.unwrap_or_default();
        let hosts = String::from_utf8_lossy(&hosts);
        Ok(Some(system::render(&config.network, mac.as_ref(), &hosts)?))
    }

    /// Compares `files` with `/etc`: what to create, write and remove.
    fn plan(&self, fs: &dyn Fs, files: &NetworkFiles) -> Result<Plan, NetworkError> {
        let mut plan = Plan::default();
        let mut dirs = BTreeSet::new();
        for (service, rel, file) in files.iter() {
            for parent in rel.parents() {
                let dir = self.etc.join(parent);
                match fs.metadata(&dir)?.map(|m| m.kind) {
                    None => {
                        if dirs.insert(dir.clone()) {
                            plan.dirs.push(dir);
                        }
                    }
                    Some(Kind::Dir | Kind::Symlink) => {}
                    Some(_) => return Err(NetworkError::NotADirectory { path: dir }),
                }
            }
            let path = self.etc.join(rel.as_str());
            let same = match fs.metadata(&path)? {
                None => false,
                Some(m) => match m.kind {
                    Kind::File => m.mode == MODE && fs.read(&path)? == file.contents,
                    Kind::Symlink => false,
                    Kind::Dir | Kind::Other => return Err(NetworkError::NotAFile { path }),
                },
            };
            if !same {
                plan.writes.push((path, file.contents.clone(), service));
            }
        }
        for managed in &files.managed {
            let dir = self.etc.join(managed.dir.as_str());
            if fs.metadata(&dir)?.map(|m| m.kind) != Some(Kind::Dir) {
                continue;
            }
            for name in fs.read_dir(&dir)? {
                let rendered = files.get(&format!("{}/{name}", managed.dir)).is_some();
                if !managed.matches(&name) || rendered {
                    continue;
                }
                let path = dir.join(&name);
                match fs.metadata(&path)?.map(|m| m.kind) {
                    Some(Kind::File | Kind::Symlink) => plan.removals.push((path, managed.service)),
                    Some(_) => return Err(NetworkError::NotAFile { path }),
                    None => {}
                }
            }
        }
        Ok(plan)
    }
}

impl<R: Runner> Network for EtcNetwork<R> {
    fn apply(&mut self, config_root: &Path) -> Result<NetworkChanges, NetworkError> {
        let fs = &RealFs;
        let Some(files) = self.render(fs, config_root)? else {
            return Ok(NetworkChanges::default());
        };
        let plan = self.plan(fs, &files)?;
        for dir in &plan.dirs {
            fs.create_dir(dir, DIR_MODE)?;
            fs.fsync_dir(parent_of(dir))?;
        }
        for (path, contents, _) in &plan.writes {
            write_atomic(fs, path, MODE, contents)?;
        }
        for (path, _) in &plan.removals {
            fs.remove_file(path)?;
            fs.fsync_dir(parent_of(path))?;
        }
        let changes = plan.changes();
        if changes.network {
            self.runner
                .run("networkctl", &["reload"])
                .map_err(|reason| NetworkError::Command {
                    command: "networkctl reload".to_owned(),
                    reason,
                })?;
        }
        Ok(changes)
    }
}
