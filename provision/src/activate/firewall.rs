//! The provisioned inbound rules of spec 5.3 as a pure function from `firewall-inbound.json`
//! to one nft script, and the [`Firewall`] trait that applies it (`nft -f -`, one transaction)
//! and reads the input chain back.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The comment of every provisioned inbound rule.
pub const TAG_PROVISIONED: &str = "ATOMIXOS_PROVISIONED_INBOUND";
/// The comment of the base ruleset's LAN default-open rule.
pub const TAG_LAN_DEFAULT: &str = "ATOMIXOS_LAN_DEFAULT_OPEN";
/// The file under the config root.
pub use atomix_config::root_files::FIREWALL_INBOUND;
/// The chain the rules go to.
pub const CHAIN: &str = "inet filter input";
/// TCP ports a restrictive LAN keeps open (ssh, DNS, the API).
pub const LAN_REQUIRED_TCP: &[u16] = &[22, 53, 8080];
/// UDP ports a restrictive LAN keeps open (DNS, DHCP, NTP).
pub const LAN_REQUIRED_UDP: &[u16] = &[53, 67, 68, 123];

/// Ports of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// TCP ports.
    #[serde(default)]
    pub tcp: Vec<u16>,
    /// UDP ports.
    #[serde(default)]
    pub udp: Vec<u16>,
}

impl Ports {
    fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }
}

/// `firewall-inbound.json`: `{"wan":{"tcp":[..],"udp":[..]},"lan":{..}}`, scopes optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// The WAN scope.
    #[serde(default)]
    pub wan: Option<Ports>,
    /// The LAN scope.
    #[serde(default)]
    pub lan: Option<Ports>,
}

/// The interface names (`ATOMIXOS_FIREWALL_WAN_INTERFACE`/`..._LAN_INTERFACE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    /// WAN, `eth0`.
    pub wan: String,
    /// LAN, `eth1`.
    pub lan: String,
}

impl Default for Interfaces {
    fn default() -> Self {
        Self {
            wan: "eth0".to_owned(),
            lan: "eth1".to_owned(),
        }
    }
}

/// Handles of the input chain's rules tagged [`TAG_PROVISIONED`] or [`TAG_LAN_DEFAULT`], from
/// `nft -a list chain inet filter input` output.
pub fn tagged_handles(listing: &str) -> Vec<u64> {
    handles_of(listing, &[TAG_PROVISIONED, TAG_LAN_DEFAULT])
}

/// Handles of the listed rules whose comment is one of `tags`.
pub fn handles_of(listing: &str, tags: &[&str]) -> Vec<u64> {
    listing
        .lines()
        .filter(|l| tags.iter().any(|t| l.contains(&format!("comment \"{t}\""))))
        .filter_map(|l| l.rsplit_once("# handle ")?.1.trim().parse().ok())
        .collect()
}

fn sorted(ports: &[u16], extra: &[u16]) -> Vec<u16> {
    let set: BTreeSet<u16> = ports.iter().chain(extra).copied().collect();
    set.into_iter().collect()
}

fn rule(iface: &str, proto: &str, ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        "add rule {CHAIN} iifname \"{iface}\" {proto} dport {{ {} }} accept comment \"{TAG_PROVISIONED}\"",
        list.join(", ")
    )
}

/// The `add rule` lines for `inbound`: per scope (WAN, then LAN) and protocol (tcp, then udp)
/// with ports, one rule; a LAN that lists ports is restrictive and its sets are merged with
/// [`LAN_REQUIRED_TCP`]/[`LAN_REQUIRED_UDP`]; otherwise the LAN default-open rule is re-added.
pub fn inbound_rules(inbound: &Inbound, ifaces: &Interfaces) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(wan) = &inbound.wan {
        for (proto, ports) in [("tcp", &wan.tcp), ("udp", &wan.udp)] {
            if !ports.is_empty() {
                out.push(rule(&ifaces.wan, proto, &sorted(ports, &[])));
            }
        }
    }
    match &inbound.lan {
        Some(lan) if !lan.is_empty() => {
            out.push(rule(
                &ifaces.lan,
                "tcp",
                &sorted(&lan.tcp, LAN_REQUIRED_TCP),
            ));
            out.push(rule(
                &ifaces.lan,
                "udp",
                &sorted(&lan.udp, LAN_REQUIRED_UDP),
            ));
        }
        _ => out.push(format!(
            "add rule {CHAIN} iifname \"{}\" accept comment \"{TAG_LAN_DEFAULT}\"",
            ifaces.lan
        )),
    }
    out
}

/// The whole transaction: delete the tagged rules by handle, then add `rules`.
pub fn script(handles: &[u64], rules: &[String]) -> String {
    let mut out = String::new();
    for h in handles {
        out.push_str(&format!("delete rule {CHAIN} handle {h}\n"));
    }
    for r in rules {
        out.push_str(r);
        out.push('\n');
    }
    out
}

/// How many rules of `listing` carry `tag`.
pub fn count_tagged(listing: &str, tag: &str) -> usize {
    let needle = format!("comment \"{tag}\"");
    listing.lines().filter(|l| l.contains(&needle)).count()
}

/// An nft call that failed.
#[derive(Debug, thiserror::Error)]
#[error("nft {operation} failed: {reason}")]
pub struct FirewallError {
    /// `apply`, `check` or `list`.
    pub operation: &'static str,
    /// Exit status and stderr, or the spawn error.
    pub reason: String,
}

/// nftables.
pub trait Firewall {
    /// Applies `ruleset` as one transaction.
    fn apply(&mut self, ruleset: &str) -> Result<(), FirewallError>;
    /// The input chain with handles (`nft -a list chain inet filter input`).
    fn list_input(&mut self) -> Result<String, FirewallError>;
}

/// A recording firewall: keeps the rules of applied scripts in a listing with handles.
#[derive(Debug, Default)]
pub struct FakeFirewall {
    /// Every script applied.
    pub applied: Vec<String>,
    /// The current chain: `(handle, rule text)`.
    pub rules: Vec<(u64, String)>,
    /// Makes `apply` fail.
    pub fail_apply: bool,
    next: u64,
}

impl Firewall for FakeFirewall {
    fn apply(&mut self, ruleset: &str) -> Result<(), FirewallError> {
        if self.fail_apply {
            return Err(FirewallError {
                operation: "apply",
                reason: "scripted".to_owned(),
            });
        }
        self.applied.push(ruleset.to_owned());
        for line in ruleset.lines() {
            if let Some(h) = line.strip_prefix(&format!("delete rule {CHAIN} handle ")) {
                let h: u64 = h.trim().parse().unwrap_or(0);
                self.rules.retain(|(x, _)| *x != h);
            } else if let Some(r) = line.strip_prefix(&format!("add rule {CHAIN} ")) {
                self.next += 1;
                self.rules.push((self.next, r.to_owned()));
            }
        }
        Ok(())
    }

    fn list_input(&mut self) -> Result<String, FirewallError> {
        let mut out = String::from("table inet filter {\n\tchain input {\n");
        for (h, r) in &self.rules {
            out.push_str(&format!("\t\t{r} # handle {h}\n"));
        }
        out.push_str("\t}\n}\n");
        Ok(out)
    }
}

/// `nft` on `PATH`.
#[derive(Debug, Clone)]
pub struct Nft {
    /// The program (`nft`).
    pub program: String,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            program: "nft".to_owned(),
        }
    }
}

impl Nft {
    fn run(
        &self,
        operation: &'static str,
        args: &[&str],
        stdin: &str,
    ) -> Result<String, FirewallError> {
        let fail = |reason: String| FirewallError { operation, reason };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", self.program)))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| fail(format!("writing the script: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(fail(format!("{}: {}", out.status, stderr.trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `nft -c -f -`: checks `ruleset` without applying it.
    pub fn check(&self, ruleset: &str) -> Result<(), FirewallError> {
        self.run("check", &["-c", "-f", "-"], ruleset).map(drop)
    }
}

impl Firewall for Nft {
    fn apply(&mut self, ruleset: &str) -> Result<(), FirewallError> {
        self.run("apply", &["-f", "-"], ruleset).map(drop)
    }

    fn list_input(&mut self) -> Result<String, FirewallError> {
        self.run(
            "list",
            &["-a", "list", "chain", "inet", "filter", "input"],
            "",
        )
    }
}
