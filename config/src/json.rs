//! The JSON files of a config root (`users.json`, `firewall-inbound.json`, `lan-settings.json`,
//! `host-network.json`, `os-upgrade.json`, `activation-policy.json`, `health-required.json`),
//! byte for byte as the original writes them: keys in insertion order, two-space indent,
//! non-ASCII escaped as `\uXXXX`, one trailing newline.

use std::fmt::Write as _;

use crate::activation::{HealthRequired, PolicyFile};
use crate::files::{FileSet, RelPath};
use crate::firewall::PortScope;
use crate::model::Config;
use crate::net::ip_text;
use crate::root_files::{
    ACTIVATION_POLICY, FIREWALL_INBOUND, HEALTH_REQUIRED, LAN_SETTINGS, USERS_JSON,
};

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn str(s: impl ToString) -> Json {
        Json::Str(s.to_string())
    }

    pub(crate) fn strs<T: ToString>(items: impl IntoIterator<Item = T>) -> Json {
        Json::Array(items.into_iter().map(Json::str).collect())
    }

    fn ips<'a>(items: impl IntoIterator<Item = &'a std::net::IpAddr>) -> Json {
        Json::Array(items.into_iter().map(|ip| Json::Str(ip_text(ip))).collect())
    }

    pub(crate) fn obj(pairs: impl IntoIterator<Item = (&'static str, Json)>) -> Json {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Pretty text with a two-space indent and a trailing newline (Python's
    /// `json.dumps(value, indent=2) + "\n"`).
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, d: usize| {
            out.push('\n');
            out.push_str(&"  ".repeat(d));
        };
        match self {
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Str(s) => write_str(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    item.write(out, depth + 1);
                }
                pad(out, depth);
                out.push(']');
            }
            Json::Object(pairs) if pairs.is_empty() => out.push_str("{}"),
            Json::Object(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    write_str(out, k);
                    out.push_str(": ");
                    v.write(out, depth + 1);
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Int(i) => serializer.serialize_i64(*i),
            Json::Str(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn scope(s: &PortScope) -> Json {
    let ports = |p: &[crate::firewall::Port]| {
        Json::Array(p.iter().map(|p| Json::Int(p.get().into())).collect())
    };
    let mut pairs = Vec::new();
    if !s.tcp.is_empty() {
        pairs.push(("tcp", ports(&s.tcp)));
    }
    if !s.udp.is_empty() {
        pairs.push(("udp", ports(&s.udp)));
    }
    Json::obj(pairs)
}

impl Config {
    /// `users.json`: `{name: {isAdmin, ssh_key[, shell]}}` in config order.
    pub fn users_json(&self) -> Json {
        Json::Object(
            self.users
                .list
                .iter()
                .map(|u| {
                    let mut pairs = vec![
                        ("isAdmin", Json::Bool(u.is_admin)),
                        (
                            "ssh_key",
                            Json::str(u.ssh_key.as_ref().map_or("", |k| &k.line)),
                        ),
                    ];
                    if let Some(shell) = u.shell {
                        pairs.push(("shell", Json::str(shell.as_str())));
                    }
                    (u.name.to_string(), Json::obj(pairs))
                })
                .collect(),
        )
    }

    /// `firewall-inbound.json`: `{wan: {tcp, udp}, lan: {...}}`, empty lists and scopes left
    /// out.
    pub fn firewall_inbound_json(&self) -> Json {
        let f = &self.network.firewall;
        let mut pairs = Vec::new();
        if !f.wan.is_empty() {
            pairs.push(("wan", scope(&f.wan)));
        }
        if !f.lan.is_empty() {
            pairs.push(("lan", scope(&f.lan)));
        }
        Json::obj(pairs)
    }

    /// `lan-settings.json`.
    pub fn lan_settings_json(&self) -> Json {
        let l = &self.network.lan;
        Json::obj([
            ("gateway_cidr", Json::str(l.gateway)),
            ("gateway_ip", Json::str(l.gateway_ip())),
            ("subnet_cidr", Json::str(l.subnet())),
            ("netmask", Json::str(l.netmask())),
            ("dhcp_start", Json::str(l.dhcp_start)),
            ("dhcp_end", Json::str(l.dhcp_end)),
            ("domain", Json::str(&l.domain)),
            ("hostname_pattern", Json::str(&l.hostname_pattern)),
            ("gateway_aliases", Json::strs(&l.gateway_aliases)),
            ("ntp_servers", Json::strs(&l.ntp_servers)),
        ])
    }

    /// `host-network.json`: resolvers, search domains, interfaces and the default gateway when
    /// given.
    pub fn host_network_json(&self) -> Json {
        let h = &self.network.host;
        let interfaces = h
            .interfaces
            .iter()
            .map(|i| {
                let mut pairs = vec![("mode", Json::str(i.mode.as_str()))];
                if let Some(a) = i.address {
                    pairs.push(("address", Json::str(a)));
                }
                if let Some(g) = i.gateway {
                    pairs.push(("gateway", Json::str(g)));
                }
                if let Some(d) = &i.dns_servers {
                    pairs.push(("dns_servers", Json::ips(d)));
                }
                if let Some(d) = &i.dns_search_domains {
                    pairs.push(("dns_search_domains", Json::strs(d)));
                }
                (i.name.clone(), Json::obj(pairs))
            })
            .collect();
        let mut pairs = vec![
            ("dns_servers", Json::ips(&h.dns_servers)),
            ("dns_search_domains", Json::strs(&h.dns_search_domains)),
            ("interfaces", Json::Object(interfaces)),
        ];
        if let Some(g) = h.default_gateway {
            pairs.push(("default_gateway", Json::str(g)));
        }
        Json::obj(pairs)
    }

    /// `os-upgrade.json` (`{server_url}`), or `None` when there is no `[os_upgrade]` (the file
    /// is then removed).
    pub fn os_upgrade_json(&self) -> Option<Json> {
        let o = self.os_upgrade.as_ref()?;
        Some(Json::obj([("server_url", Json::str(&o.server_url))]))
    }

    /// `health-required.json`: the required containers ([`HealthRequired`]).
    pub fn health_required_json(&self) -> Json {
        HealthRequired(self.activation.required.clone()).to_json()
    }

    /// `activation-policy.json` ([`PolicyFile`]).
    pub fn activation_policy_json(&self) -> Json {
        PolicyFile::from(&self.activation).to_json()
    }

    /// The JSON files of the config root, named as there, mode `0o600`, text as
    /// [`Json::to_pretty`] gives it (`os-upgrade.json` only with `[os_upgrade]`).
    pub fn json_files(&self) -> FileSet {
        let mut files = FileSet::new();
        let mut add = |name: &str, json: Json| {
            if let Ok(path) = RelPath::new(name) {
                files.insert(path, 0o600, json.to_pretty());
            }
        };
        add(USERS_JSON, self.users_json());
        add(FIREWALL_INBOUND, self.firewall_inbound_json());
        add(LAN_SETTINGS, self.lan_settings_json());
        add("host-network.json", self.host_network_json());
        if let Some(json) = self.os_upgrade_json() {
            add("os-upgrade.json", json);
        }
        add(HEALTH_REQUIRED, self.health_required_json());
        add(ACTIVATION_POLICY, self.activation_policy_json());
        files
    }

    /// `admin-signers`: the admins' key lines, one per line, or `None` when there are none.
    pub fn admin_signers(&self) -> Option<String> {
        let keys: Vec<_> = self.users.admin_keys().map(|k| k.line.as_str()).collect();
        (!keys.is_empty()).then(|| keys.join("\n") + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_text_is_pythons_indent_2_with_ascii_escapes() {
        let v = Json::Object(vec![
            (
                "a".into(),
                Json::Array(vec![Json::Int(1), Json::Bool(false)]),
            ),
            ("b".into(), Json::Object(vec![])),
            ("c".into(), Json::Array(vec![])),
            ("d".into(), Json::Str("é\"\\\n😀\u{7f}".into())),
        ]);
        assert_eq!(
            v.to_pretty(),
            "{\n  \"a\": [\n    1,\n    false\n  ],\n  \"b\": {},\n  \"c\": [],\n  \
             \"d\": \"\\u00e9\\\"\\\\\\n\\ud83d\\ude00\\u007f\"\n}\n"
        );
    }
}
