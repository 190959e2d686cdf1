//! The system files of the LAN and host network (spec 5.2), rendered from the validated
//! [`Network`]: the LAN's dnsmasq configuration and hosts file, chrony's servers and the LAN it
//! serves, the gateway's line of `/etc/hosts`, and the systemd-networkd files of every
//! interface. Paths are relative to `/etc`; every file is mode `0o644`.
//!
//! [`render`] gives them as [`NetworkFiles`]: for each file the service that reads it (so the
//! writer knows what to restart), and the [`Managed`] names whose copies that were not
//! rendered this time are stale and must go. The inputs that are not in config.toml come in
//! as values: the LAN NIC's MAC address and the current `/etc/hosts`.
//!
//! - [`dnsmasq`]: the gateway's names, the LAN's DHCP and DNS settings
//!   (`dnsmasq.d/atomixos-lan.conf`) and its hosts file (`atomixos/dnsmasq-hosts`).
//! - [`chrony`]: the NTP servers and the served LAN (`atomixos/chrony-lan.conf`).
//! - [`hosts`]: the tagged gateway line of `/etc/hosts`.
//! - [`networkd`]: the eth1 and eth0 drop-ins and a `.network` file for each other interface.

pub mod chrony;
pub mod dnsmasq;
pub mod hosts;
pub mod networkd;

use std::collections::BTreeMap;

use crate::files::{File, FileSet, RelPath, RelPathError};
use crate::net::{DnsNameError, Mac};
use crate::network::Network;

/// The mode of every file rendered here: read by daemons that do not run as root.
pub const MODE: u32 = 0o644;

/// The daemon that reads a file, and so is restarted when the file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// systemd-networkd (and resolved, which takes the links' DNS settings from it).
    Network,
    /// dnsmasq: DHCP and DNS on the LAN.
    Dnsmasq,
    /// chrony: the clock, and the LAN's time server.
    Chrony,
}

/// Which names in a directory a [`Managed`] entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// Exactly this name.
    Exact(&'static str),
    /// Every name with this prefix and suffix.
    Matching {
        /// The start of the name.
        prefix: &'static str,
        /// The end of the name.
        suffix: &'static str,
    },
}

/// Names under `/etc` that only rendering writes: any of them that is there but was not
/// rendered this time is stale and is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    /// The directory, relative to `/etc`.
    pub dir: RelPath,
    /// The names in it.
    pub names: Names,
    /// Who reads them.
    pub service: Service,
}

impl Managed {
    /// Whether `name` (an entry of [`Managed::dir`]) is covered.
    pub fn matches(&self, name: &str) -> bool {
        match self.names {
            Names::Exact(exact) => name == exact,
            Names::Matching { prefix, suffix } => {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
        }
    }
}

/// Everything the network apply writes under `/etc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFiles {
    /// The files each service reads, by path relative to `/etc`.
    pub files: BTreeMap<Service, FileSet>,
    /// The names whose unrendered copies are removed.
    pub managed: Vec<Managed>,
}

impl NetworkFiles {
    fn insert(&mut self, service: Service, path: &str, text: String) -> Result<(), RenderError> {
        let path = RelPath::new(path)?;
        self.files
            .entry(service)
            .or_default()
            .insert(path, MODE, text);
        Ok(())
    }

    /// Every file with its reader, in service then path order.
    pub fn iter(&self) -> impl Iterator<Item = (Service, &RelPath, &File)> {
        self.files
            .iter()
            .flat_map(|(s, set)| set.iter().map(move |(p, f)| (*s, p, f)))
    }

    /// The file at `path` (relative to `/etc`) and its reader, if rendered.
    pub fn get(&self, path: &str) -> Option<(Service, &File)> {
        self.files
            .iter()
            .find_map(|(s, set)| set.get(path).map(|f| (*s, f)))
    }
}

/// Why the files cannot be rendered from a valid config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `hostname_pattern` is set but the LAN NIC's MAC address is not known.
    #[error("network.dnsmasq.hostname_pattern needs the LAN interface's MAC address")]
    NoMac,
    /// The pattern with the MAC put in is not a DNS name.
    #[error("network.dnsmasq.hostname_pattern gives {name:?}, which {source}")]
    HostName {
        /// The name it gave.
        name: String,
        /// Why it is not a DNS name.
        #[source]
        source: DnsNameError,
    },
    /// An interface name does not make a file name.
    #[error(transparent)]
    Path(#[from] RelPathError),
}

/// Renders the network files of `network`. `mac` is the LAN interface's (eth1) address, needed
/// only when a host name pattern is set; `hosts` is the current text of `/etc/hosts`, whose
/// tagged gateway line is replaced.
pub fn render(
    network: &Network,
    mac: Option<&Mac>,
    hosts: &str,
) -> Result<NetworkFiles, RenderError> {
    let lan = &network.lan;
    let names = dnsmasq::gateway_names(lan, mac)?;
    let mut out = NetworkFiles::default();
    out.insert(Service::Dnsmasq, dnsmasq::CONF, dnsmasq::conf(lan))?;
    out.insert(
        Service::Dnsmasq,
        dnsmasq::HOSTS,
        dnsmasq::hosts(lan, &names),
    )?;
    out.insert(
        Service::Dnsmasq,
        hosts::PATH,
        hosts::replace_gateway_line(hosts, &hosts::gateway_line(lan, &names)),
    )?;
    out.insert(Service::Chrony, chrony::CONF, chrony::conf(lan))?;
    for (path, text) in networkd::files(network) {
        out.insert(Service::Network, &path, text)?;
    }
    out.managed = networkd::managed()?;
    Ok(out)
}
