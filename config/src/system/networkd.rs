//! systemd-networkd settings of the interfaces. The image's `10-wan.network` (eth0, DHCP) and
//! `20-lan.network` (eth1, the default LAN address) are extended by drop-ins; any other
//! interface gets a `.network` file of its own.
//!
//! - eth1 is the LAN gateway: its drop-in always sets the gateway address (and the rest of
//!   `interfaces.eth1`, when configured).
//! - eth0 takes the top-level `dns_servers`, `dns_search_domains` and `default_gateway` where
//!   `interfaces.eth0` does not set its own; when a top-level value is set and eth0 is not
//!   configured, eth0 is DHCP with them. With neither, eth0 has no drop-in.
//! - A drop-in clears the base file's addresses before setting its own (an empty `Address=`),
//!   so that the image's default LAN address does not stay beside the configured one.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use super::{Managed, Names, RenderError, Service};
use crate::files::RelPath;
use crate::net::{DnsName, Ipv4Cidr, ip_text};
use crate::network::{Interface, InterfaceMode, Network};

/// The networkd directory, relative to `/etc`.
pub const DIR: &str = "systemd/network";
/// eth1's drop-in, relative to `/etc`.
pub const LAN_DROP_IN: &str = "systemd/network/20-lan.network.d/50-atomixos.conf";
/// eth0's drop-in directory, relative to `/etc`.
pub const WAN_DROP_IN_DIR: &str = "systemd/network/10-wan.network.d";
/// eth0's drop-in, in [`WAN_DROP_IN_DIR`].
pub const WAN_DROP_IN_NAME: &str = "50-atomixos.conf";
/// The LAN interface.
pub const LAN: &str = "eth1";
/// The WAN interface.
pub const WAN: &str = "eth0";

/// The `.network` file of an interface other than eth0 and eth1, relative to `/etc`.
pub fn own_file(name: &str) -> String {
    format!("{DIR}/30-atomixos-{name}.network")
}

/// The names only this module writes: the other interfaces' files and eth0's drop-in.
pub fn managed() -> Result<Vec<Managed>, RenderError> {
    Ok(vec![
        Managed {
            dir: RelPath::new(DIR)?,
            names: Names::Matching {
                prefix: "30-atomixos-eth",
                suffix: ".network",
            },
            service: Service::Network,
        },
        Managed {
            dir: RelPath::new(WAN_DROP_IN_DIR)?,
            names: Names::Exact(WAN_DROP_IN_NAME),
            service: Service::Network,
        },
    ])
}

/// One interface's settings once eth0's inheritance is applied.
struct Link<'a> {
    mode: InterfaceMode,
    address: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
    dns: &'a [IpAddr],
    domains: &'a [DnsName],
}

impl<'a> Link<'a> {
    fn of(i: &'a Interface) -> Self {
        Self {
            mode: i.mode,
            address: i.address,
            gateway: i.gateway,
            dns: i.dns_servers.as_deref().unwrap_or_default(),
            domains: i.dns_search_domains.as_deref().unwrap_or_default(),
        }
    }
}

/// Every networkd file, as (path relative to `/etc`, text), eth1's first.
pub fn files(network: &Network) -> Vec<(String, String)> {
    let host = &network.host;
    let find = |name: &str| host.interfaces.iter().find(|i| i.name == name);
    let mut out = Vec::new();

    // eth1 is static on the gateway address (validation made them equal when both are set).
    let lan = match find(LAN) {
        Some(i) => text(
            &Link {
                address: Some(network.lan.gateway),
                ..Link::of(i)
            },
            None,
        ),
        None => format!("[Network]\nAddress=\nAddress={}\n", network.lan.gateway),
    };
    out.push((LAN_DROP_IN.to_owned(), lan));

    let inherits = !host.dns_servers.is_empty()
        || !host.dns_search_domains.is_empty()
        || host.default_gateway.is_some();
    let wan = match find(WAN) {
        Some(i) => Some(Link::of(i)),
        None if inherits => Some(Link {
            mode: InterfaceMode::Dhcp,
            address: None,
            gateway: None,
            dns: &[],
            domains: &[],
        }),
        None => None,
    };
    if let Some(mut wan) = wan {
        wan.gateway = wan.gateway.or(host.default_gateway);
        if wan.dns.is_empty() {
            wan.dns = &host.dns_servers;
        }
        if wan.domains.is_empty() {
            wan.domains = &host.dns_search_domains;
        }
        out.push((
            format!("{WAN_DROP_IN_DIR}/{WAN_DROP_IN_NAME}"),
            text(&wan, None),
        ));
    }

    for i in &host.interfaces {
        if i.name != LAN && i.name != WAN {
            out.push((own_file(&i.name), text(&Link::of(i), Some(&i.name))));
        }
    }
    out
}

/// A `.network` file (with `[Match] Name=` when `own` names the interface) or a drop-in.
fn text(link: &Link<'_>, own: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(name) = own {
        let _ = write!(out, "[Match]\nName={name}\n\n");
    }
    out.push_str("[Network]\n");
    match link.mode {
        InterfaceMode::Static => {
            // Validation gives every static interface an address.
            if let Some(address) = link.address {
                if own.is_none() {
                    out.push_str("Address=\n");
                }
                let _ = writeln!(out, "Address={address}");
            }
            out.push_str("DHCP=no\n");
        }
        InterfaceMode::Dhcp => out.push_str("DHCP=ipv4\n"),
    }
    out.push_str("IPv6AcceptRA=false\n");
    if let Some(gateway) = link.gateway {
        let _ = writeln!(out, "Gateway={gateway}");
    }
    for dns in link.dns {
        let _ = writeln!(out, "DNS={}", ip_text(dns));
    }
    if !link.domains.is_empty() {
        let domains: Vec<&str> = link.domains.iter().map(DnsName::as_str).collect();
        let _ = writeln!(out, "Domains={}", domains.join(" "));
    }
    // DHCP must not override what the config sets.
    if link.mode == InterfaceMode::Dhcp && (link.gateway.is_some() || !link.dns.is_empty()) {
        out.push_str("\n[DHCPv4]\n");
        if link.gateway.is_some() {
            out.push_str("UseRoutes=false\n");
        }
        if !link.dns.is_empty() {
            out.push_str("UseDNS=false\n");
        }
    }
    out
}
