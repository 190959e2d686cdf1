//! dnsmasq on the LAN: the DHCP range and options, the local domain, and the hosts file that
//! names the gateway. The static settings (the interface, `bind-dynamic`, `no-resolv`) are in
//! the image's `dnsmasq.d/atomixos-base.conf`; nothing here adds an upstream `server=`, so
//! dnsmasq answers from local data only.

use std::fmt::Write as _;

use super::RenderError;
use crate::lan::{LanSettings, MAC_TOKEN};
use crate::net::{DnsName, Mac};

/// The LAN's DHCP and DNS settings, relative to `/etc`.
pub const CONF: &str = "dnsmasq.d/atomixos-lan.conf";
/// The gateway's names, relative to `/etc`.
pub const HOSTS: &str = "atomixos/dnsmasq-hosts";
/// The lease time of every DHCP lease.
pub const LEASE: &str = "24h";

/// The names the gateway answers to: the host name pattern with [`MAC_TOKEN`] replaced by the
/// MAC's twelve hex digits (when a pattern is set), then the aliases, each once, in that
/// order.
pub fn gateway_names(lan: &LanSettings, mac: Option<&Mac>) -> Result<Vec<DnsName>, RenderError> {
    let mut names = Vec::new();
    if !lan.hostname_pattern.is_empty() {
        let mac = mac.ok_or(RenderError::NoMac)?;
        let name = lan.hostname_pattern.replace(MAC_TOKEN, &mac.hex());
        let name = DnsName::new(&name).map_err(|source| RenderError::HostName { name, source })?;
        names.push(name);
    }
    for alias in &lan.gateway_aliases {
        if !names.contains(alias) {
            names.push(alias.clone());
        }
    }
    Ok(names)
}

/// A name as the hosts files list it: the name, and the name in the LAN domain when it has no
/// dot of its own.
pub fn with_domain(name: &DnsName, domain: &DnsName) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if !name.as_str().contains('.') {
        out.push(format!("{name}.{domain}"));
    }
    out
}

/// `dnsmasq.d/atomixos-lan.conf`: one setting per line.
pub fn conf(lan: &LanSettings) -> String {
    let gw = lan.gateway_ip();
    let domain = &lan.domain;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dhcp-range={},{},{},{LEASE}",
        lan.dhcp_start,
        lan.dhcp_end,
        lan.netmask()
    );
    // The router, DNS server and NTP server options all point at the gateway.
    for option in [3, 6, 42] {
        let _ = writeln!(out, "dhcp-option={option},{gw}");
    }
    let _ = writeln!(out, "domain={domain}");
    out.push_str("expand-hosts\n");
    let _ = writeln!(out, "addn-hosts=/etc/{HOSTS}");
    let _ = writeln!(out, "local=/{domain}/");
    out.push_str("log-dhcp\n");
    out
}

/// `atomixos/dnsmasq-hosts`: a line `<gateway> <name> [<name>.<domain>]` per name.
pub fn hosts(lan: &LanSettings, names: &[DnsName]) -> String {
    let gw = lan.gateway_ip();
    names
        .iter()
        .map(|n| format!("{gw} {}\n", with_domain(n, &lan.domain).join(" ")))
        .collect()
}
