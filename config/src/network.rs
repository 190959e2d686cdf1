//! `[network]`: the host's resolvers, default route and interfaces, and (through [`crate::lan`]
//! and [`crate::firewall`]) the LAN gateway, NTP and the inbound firewall.

use std::net::{IpAddr, Ipv4Addr};

use crate::check::{Checker, join};
use crate::firewall::{self, FirewallInbound};
use crate::lan::{self, GatewaySource, LanSettings, dns_name, parse_cidr};
use crate::net::{DnsName, Ipv4Cidr, ip_literal};
use crate::tree::Node;

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterfaceMode {
    /// DHCP client.
    Dhcp,
    /// A static address.
    Static,
}

impl InterfaceMode {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            InterfaceMode::Dhcp => "dhcp",
            InterfaceMode::Static => "static",
        }
    }
}

/// One `network.interfaces.<ethN>` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// DHCP or static.
    pub mode: InterfaceMode,
    /// The static address (only for static).
    pub address: Option<Ipv4Cidr>,
    /// The interface's gateway.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's resolvers, when given.
    pub dns_servers: Option<Vec<IpAddr>>,
    /// The interface's search domains, when given.
    pub dns_search_domains: Option<Vec<DnsName>>,
}

/// The host's resolver, route and interface settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNetwork {
    /// Global resolvers.
    pub dns_servers: Vec<IpAddr>,
    /// Global search domains.
    pub dns_search_domains: Vec<DnsName>,
    /// Interfaces, in config order.
    pub interfaces: Vec<Interface>,
    /// The IPv4 default gateway, when given.
    pub default_gateway: Option<Ipv4Addr>,
}

/// Everything `[network]` configures, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The LAN gateway and NTP.
    pub lan: LanSettings,
    /// The host side.
    pub host: HostNetwork,
    /// The inbound firewall.
    pub firewall: FirewallInbound,
}

/// The keys of `[network]` (also what `PATCH /api/config/network` may change).
pub(crate) const KEYS: [&str; 7] = [
    "dns_servers",
    "dns_search_domains",
    "default_gateway",
    "interfaces",
    "dnsmasq",
    "ntp",
    "firewall",
];

fn ip_list(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for (s, item, p) in c.texts(node, path, 1)? {
        match ip_literal(s) {
            Some(ip) => out.push(ip),
            None => c.error(&p, &item.span, format!("{s:?} is not an IP address")),
        }
    }
    Some(out)
}

fn domain_list(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Vec<DnsName>> {
    let mut out = Vec::new();
    for (_, item, p) in c.texts(node, path, 1)? {
        out.extend(dns_name(c, item, &p));
    }
    Some(out)
}

fn ipv4(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Ipv4Addr> {
    let s = c.text(node, path)?;
    s.parse()
        .map_err(|_| c.error(path, &node.span, format!("{s:?} is not an IPv4 address")))
        .ok()
}

/// Checks `[network]` (`node`, if present; `root` is the document).
pub(crate) fn check(c: &mut Checker<'_>, node: Option<&Node>, root: &Node) -> Option<Network> {
    let before = c.error_count();
    let net = match node {
        Some(n) => Some(c.table(n, "network", &KEYS, &[])?),
        None => None,
    };
    let get = |k: &str| net.and_then(|n| n.get(k));
    let mut host = HostNetwork::default();
    if let Some(n) = get("dns_servers") {
        host.dns_servers = ip_list(c, n, "network.dns_servers").unwrap_or_default();
    }
    if let Some(n) = get("dns_search_domains") {
        host.dns_search_domains =
            domain_list(c, n, "network.dns_search_domains").unwrap_or_default();
    }
    if let Some(n) = get("default_gateway") {
        host.default_gateway = ipv4(c, n, "network.default_gateway");
    }
    let mut eth1 = None;
    if let Some(n) = get("interfaces")
        && let Some(t) = c.any_table(n, "network.interfaces")
    {
        for e in t.entries().unwrap_or(&[]) {
            let path = join("network.interfaces", &e.key);
            let digits = e.key.strip_prefix("eth").unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                let message = format!("unsupported interface {:?} (only eth0, eth1, ...)", e.key);
                c.error(&path, &e.key_span, message);
                continue;
            }
            if let Some(iface) = interface(c, &e.key, &e.node, &path) {
                if iface.name == "eth1"
                    && let (Some(a), Some(n)) = (iface.address, e.node.get("address"))
                {
                    eth1 = Some((a, n));
                }
                host.interfaces.push(iface);
            }
        }
    }
    let span = net.map_or(root.span.clone(), |n| n.span.clone());
    let lan = lan::check(c, get("dnsmasq"), get("ntp"), GatewaySource { eth1 }, &span);
    let firewall = firewall::check(c, get("firewall"));
    if c.error_count() > before {
        return None;
    }
    Some(Network {
        lan: lan?,
        host,
        firewall: firewall?,
    })
}

fn interface(c: &mut Checker<'_>, name: &str, node: &Node, path: &str) -> Option<Interface> {
    let before = c.error_count();
    let keys = [
        "mode",
        "address",
        "gateway",
        "dns_servers",
        "dns_search_domains",
    ];
    let t = c.table(node, path, &keys, &["mode"])?;
    let mode_path = join(path, "mode");
    let mode = t.get("mode").and_then(|n| match c.string(n, &mode_path) {
        Some("dhcp") => Some(InterfaceMode::Dhcp),
        Some("static") => Some(InterfaceMode::Static),
        Some(other) => {
            let message = format!("unknown mode {other:?} (one of: dhcp, static)");
            c.error(&mode_path, &n.span, message);
            None
        }
        None => None,
    });
    if name == "eth1"
        && mode == Some(InterfaceMode::Dhcp)
        && let Some(n) = t.get("mode")
    {
        let message = "eth1 is the LAN gateway and must be static";
        c.error(&mode_path, &n.span, message);
    }
    let address_path = join(path, "address");
    let address = match (mode, t.get("address")) {
        (Some(InterfaceMode::Static), Some(n)) => parse_cidr(c, n, &address_path),
        (Some(InterfaceMode::Static), None) => {
            c.error(&address_path, &t.span, "a static interface needs `address`");
            None
        }
        (Some(InterfaceMode::Dhcp), Some(n)) => {
            c.error(
                &address_path,
                &n.span,
                "`address` is only for mode = \"static\"",
            );
            None
        }
        (_, _) => None,
    };
    let gateway = t
        .get("gateway")
        .and_then(|n| ipv4(c, n, &join(path, "gateway")));
    let dns_servers = t
        .get("dns_servers")
        .and_then(|n| ip_list(c, n, &join(path, "dns_servers")));
    let dns_search_domains = t
        .get("dns_search_domains")
        .and_then(|n| domain_list(c, n, &join(path, "dns_search_domains")));
    if c.error_count() > before {
        return None;
    }
    Some(Interface {
        name: name.to_owned(),
        mode: mode?,
        address,
        gateway,
        dns_servers,
        dns_search_domains,
    })
}
