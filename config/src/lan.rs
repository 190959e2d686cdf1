//! `[network.dnsmasq]` and `[network.ntp]`: the LAN gateway on `eth1` (its address, the DHCP
//! range, the local domain, host names and gateway aliases) and the NTP servers, with the
//! defaults filled in.

use std::net::Ipv4Addr;
use std::ops::Range;

use crate::check::{Checker, join};
use crate::net::{DnsName, Ipv4Cidr, has_blank_or_control, ip_literal};
use crate::tree::{Kind, Node};

/// The gateway address when none is configured.
pub const DEFAULT_GATEWAY_CIDR: &str = "172.20.30.1/24";
/// The first DHCP address when none is configured.
pub const DEFAULT_DHCP_START: Ipv4Addr = Ipv4Addr::new(172, 20, 30, 10);
/// The last DHCP address when none is configured.
pub const DEFAULT_DHCP_END: Ipv4Addr = Ipv4Addr::new(172, 20, 30, 254);
/// The LAN domain when none is configured.
pub const DEFAULT_DOMAIN: &str = "local";
/// The gateway alias when none is configured.
pub const DEFAULT_GATEWAY_ALIAS: &str = "atomixos";
/// The NTP server when none is configured.
pub const DEFAULT_NTP_SERVER: &str = "time.cloudflare.com";
/// What the host name pattern must contain: it stands for the LAN NIC's MAC address.
pub const MAC_TOKEN: &str = "{mac}";
/// What [`MAC_TOKEN`] is replaced with to check a host name pattern.
const MAC_PROBE: &str = "001122334455";

/// The LAN gateway settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanSettings {
    /// The gateway's address and prefix (from `interfaces.eth1.address` when that is set).
    pub gateway: Ipv4Cidr,
    /// First DHCP address.
    pub dhcp_start: Ipv4Addr,
    /// Last DHCP address.
    pub dhcp_end: Ipv4Addr,
    /// The LAN domain.
    pub domain: DnsName,
    /// The DHCP host name pattern with `{mac}`, or empty.
    pub hostname_pattern: String,
    /// Names the gateway answers to, duplicates removed, config order.
    pub gateway_aliases: Vec<DnsName>,
    /// NTP servers (IP literals or DNS names), as written (trimmed).
    pub ntp_servers: Vec<String>,
}

impl LanSettings {
    /// The gateway's address.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.gateway.addr()
    }

    /// The LAN subnet.
    pub fn subnet(&self) -> Ipv4Cidr {
        self.gateway.subnet()
    }

    /// The LAN netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        self.gateway.netmask()
    }
}

/// Where the gateway came from, for locating findings.
pub(crate) struct GatewaySource<'n> {
    /// `interfaces.eth1.address`, when eth1 is static with a valid address.
    pub eth1: Option<(Ipv4Cidr, &'n Node)>,
}

fn parse_ipv4(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Ipv4Addr> {
    let s = c.text(node, path)?;
    s.parse()
        .map_err(|_| c.error(path, &node.span, format!("{s:?} is not an IPv4 address")))
        .ok()
}

pub(crate) fn parse_cidr(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Ipv4Cidr> {
    let s = c.text(node, path)?;
    s.parse()
        .map_err(|()| {
            c.error(
                path,
                &node.span,
                format!("{s:?} is not an IPv4 address/prefix"),
            )
        })
        .ok()
}

pub(crate) fn dns_name(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<DnsName> {
    let s = c.text(node, path)?;
    DnsName::new(s)
        .map_err(|e| c.error(path, &node.span, format!("{s:?} {e}")))
        .ok()
}

/// Checks `network.dnsmasq` (`node`, if present) and `network.ntp` and fills the defaults.
/// `network` is the `[network]` table's span (or the document start).
pub(crate) fn check(
    c: &mut Checker<'_>,
    node: Option<&Node>,
    ntp: Option<&Node>,
    eth1: GatewaySource<'_>,
    network: &Range<usize>,
) -> Option<LanSettings> {
    let before = c.error_count();
    let path = "network.dnsmasq";
    let allowed = [
        "enable",
        "interface",
        "gateway_cidr",
        "dhcp_start",
        "dhcp_end",
        "domain",
        "hostname_pattern",
        "gateway_aliases",
    ];
    let empty = Node {
        kind: Kind::Table(Vec::new()),
        span: network.clone(),
    };
    let t = match node {
        Some(n) => c.table(n, path, &allowed, &[])?,
        None => &empty,
    };
    if let Some(n) = t.get("enable")
        && c.boolean(n, "network.dnsmasq.enable") == Some(false)
    {
        let message = "the LAN DHCP and DNS server cannot be disabled (only `true` is accepted)";
        c.error("network.dnsmasq.enable", &n.span, message);
    }
    if let Some(n) = t.get("interface") {
        let p = "network.dnsmasq.interface";
        if let Some(s) = c.text(n, p)
            && s != "eth1"
        {
            c.error(p, &n.span, format!("the LAN interface is eth1, not {s:?}"));
        }
    }

    // The gateway: eth1's static address wins; the dnsmasq value must then be the same.
    let cidr_path = join(path, "gateway_cidr");
    let own = t
        .get("gateway_cidr")
        .map(|n| (parse_cidr(c, n, &cidr_path), n));
    let (gateway, gw_path, gw_span) = match (eth1.eth1, own) {
        (Some((e, en)), Some((o, on))) => {
            if o.is_some_and(|o| o != e) {
                let message = format!("must equal network.interfaces.eth1.address ({e})");
                c.error(&cidr_path, &on.span, message);
            }
            (
                Some(e),
                "network.interfaces.eth1.address".to_owned(),
                en.span.clone(),
            )
        }
        (Some((e, en)), None) => (
            Some(e),
            "network.interfaces.eth1.address".to_owned(),
            en.span.clone(),
        ),
        (None, Some((o, on))) => (o, cidr_path.clone(), on.span.clone()),
        (None, None) => (
            DEFAULT_GATEWAY_CIDR.parse().ok(),
            cidr_path.clone(),
            t.span.clone(),
        ),
    };
    let mut gateway = gateway;
    if let Some(g) = gateway {
        if !(16..=30).contains(&g.prefix()) {
            let message = format!("the LAN prefix must be /16 to /30, not /{}", g.prefix());
            c.error(&gw_path, &gw_span, message);
            gateway = None;
        } else if g.addr() == g.network() || g.addr() == g.broadcast() {
            let message = format!(
                "the gateway {} is the network or broadcast address of {}",
                g.addr(),
                g.subnet()
            );
            c.error(&gw_path, &gw_span, message);
        }
    }

    let start_node = t.get("dhcp_start");
    let end_node = t.get("dhcp_end");
    let start = match start_node {
        Some(n) => parse_ipv4(c, n, "network.dnsmasq.dhcp_start"),
        None => Some(DEFAULT_DHCP_START),
    };
    let end = match end_node {
        Some(n) => parse_ipv4(c, n, "network.dnsmasq.dhcp_end"),
        None => Some(DEFAULT_DHCP_END),
    };
    if let (Some(g), Some(s), Some(e)) = (gateway, start, end) {
        let at = |n: Option<&Node>, name: &str| match n {
            Some(n) => (join(path, name), n.span.clone()),
            None => (gw_path.clone(), gw_span.clone()),
        };
        for (addr, n, name) in [(s, start_node, "dhcp_start"), (e, end_node, "dhcp_end")] {
            if !g.contains(addr) {
                let (p, span) = at(n, name);
                c.error(
                    &p,
                    &span,
                    format!("{addr} is outside the LAN subnet {}", g.subnet()),
                );
            }
        }
        if g.contains(s) && g.contains(e) {
            if s > e {
                let (p, span) = at(start_node, "dhcp_start");
                c.error(
                    &p,
                    &span,
                    format!("the DHCP range starts ({s}) after it ends ({e})"),
                );
            } else if s <= g.addr() && g.addr() <= e {
                let (p, span) = at(start_node.or(end_node), "dhcp_start");
                let message = format!("the DHCP range {s}-{e} contains the gateway {}", g.addr());
                c.error(&p, &span, message);
            }
        }
    }

    let domain = match t.get("domain") {
        Some(n) => dns_name(c, n, "network.dnsmasq.domain"),
        None => DnsName::new(DEFAULT_DOMAIN).ok(),
    };

    let mut hostname_pattern = String::new();
    if let Some(n) = t.get("hostname_pattern") {
        let p = "network.dnsmasq.hostname_pattern";
        let raw = c.string(n, p).unwrap_or("");
        let s = raw.trim();
        if !raw.is_empty() && s.is_empty() {
            c.error(
                p,
                &n.span,
                "must not be blank (leave it empty for no pattern)",
            );
        } else if !s.is_empty() {
            if !s.contains(MAC_TOKEN) {
                c.error(p, &n.span, format!("must contain {MAC_TOKEN}"));
            } else if let Err(e) = DnsName::new(&s.replace(MAC_TOKEN, MAC_PROBE)) {
                c.error(p, &n.span, format!("does not give a DNS name: {e}"));
            } else {
                hostname_pattern = s.to_owned();
            }
        }
    }

    let mut gateway_aliases: Vec<DnsName> = Vec::new();
    if let Some(n) = t.get("gateway_aliases")
        && let Some(items) = c.texts(n, "network.dnsmasq.gateway_aliases", 0)
    {
        for (_, item, p) in items {
            if let Some(name) = dns_name(c, item, &p)
                && !gateway_aliases.contains(&name)
            {
                gateway_aliases.push(name);
            }
        }
    }
    if gateway_aliases.is_empty() {
        gateway_aliases.extend(DnsName::new(DEFAULT_GATEWAY_ALIAS).ok());
    }

    let ntp_servers = ntp_servers(c, ntp);

    if c.error_count() > before {
        return None;
    }
    Some(LanSettings {
        gateway: gateway?,
        dhcp_start: start?,
        dhcp_end: end?,
        domain: domain?,
        hostname_pattern,
        gateway_aliases,
        ntp_servers: ntp_servers?,
    })
}

fn ntp_servers(c: &mut Checker<'_>, node: Option<&Node>) -> Option<Vec<String>> {
    let Some(node) = node else {
        return Some(vec![DEFAULT_NTP_SERVER.to_owned()]);
    };
    let t = c.table(node, "network.ntp", &["servers"], &[])?;
    let Some(servers) = t.get("servers") else {
        return Some(vec![DEFAULT_NTP_SERVER.to_owned()]);
    };
    let items = c.texts(servers, "network.ntp.servers", 1)?;
    let mut out = Vec::new();
    for (s, item, p) in items {
        if has_blank_or_control(s) {
            c.error(
                &p,
                &item.span,
                "must not contain whitespace or control characters",
            );
        } else if ip_literal(s).is_none()
            && let Err(e) = DnsName::new(s)
        {
            c.error(
                &p,
                &item.span,
                format!("{s:?} is neither an IP address nor a DNS name: {e}"),
            );
        } else {
            out.push(s.to_owned());
        }
    }
    Some(out)
}
