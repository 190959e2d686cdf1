//! `[network.firewall.inbound]`: the ports opened on the WAN and LAN sides. WAN TCP 8080 is the
//! bootstrap console's and may not be opened.

use std::fmt;

use crate::check::{Checker, index, join};
use crate::tree::Node;

/// The bootstrap console's port, never opened on the WAN side.
pub const RESERVED_WAN_TCP_PORT: u16 = 8080;

/// A TCP or UDP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl Port {
    /// `n` as a port, unless it is 0 or above 65535.
    pub fn new(n: i64) -> Option<Self> {
        u16::try_from(n).ok().filter(|p| *p != 0).map(Self)
    }

    /// The number.
    pub fn get(&self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The ports of one side, in config order (duplicates kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortScope {
    /// TCP ports.
    pub tcp: Vec<Port>,
    /// UDP ports.
    pub udp: Vec<Port>,
}

impl PortScope {
    /// Whether no port is open.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }
}

/// The inbound firewall openings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallInbound {
    /// WAN side (`eth0` and other uplinks).
    pub wan: PortScope,
    /// LAN side (`eth1`).
    pub lan: PortScope,
}

/// Checks `network.firewall` (`node`), if present.
pub(crate) fn check(c: &mut Checker<'_>, node: Option<&Node>) -> Option<FirewallInbound> {
    let mut out = FirewallInbound::default();
    let Some(node) = node else {
        return Some(out);
    };
    let before = c.error_count();
    let path = "network.firewall";
    let t = c.table(node, path, &["inbound"], &[])?;
    if let Some(inbound) = t.get("inbound") {
        let path = join(path, "inbound");
        if let Some(inbound) = c.table(inbound, &path, &["wan", "lan"], &[]) {
            if let Some(wan) = inbound.get("wan") {
                out.wan = scope(c, wan, &join(&path, "wan"), true);
            }
            if let Some(lan) = inbound.get("lan") {
                out.lan = scope(c, lan, &join(&path, "lan"), false);
            }
        }
    }
    (c.error_count() == before).then_some(out)
}

fn scope(c: &mut Checker<'_>, node: &Node, path: &str, wan: bool) -> PortScope {
    let mut out = PortScope::default();
    let Some(t) = c.table(node, path, &["tcp", "udp"], &[]) else {
        return out;
    };
    for (proto, list) in [("tcp", &mut out.tcp), ("udp", &mut out.udp)] {
        let Some(n) = t.get(proto) else { continue };
        let p = join(path, proto);
        let Some(items) = c.array(n, &p, 0) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let ip = index(&p, i);
            let Some(port) = c.int(item, &ip, 1, 65535).and_then(Port::new) else {
                continue;
            };
            if wan && proto == "tcp" && port.get() == RESERVED_WAN_TCP_PORT {
                c.error(
                    &ip,
                    &item.span,
                    "WAN TCP port 8080 is reserved for the bootstrap console",
                );
            }
            list.push(port);
        }
    }
    out
}
