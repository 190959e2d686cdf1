//! Everything a validated config puts in a config root (spec 3.1), as one [`FileSet`]: the
//! source `config.toml`, `admin-signers`, `users.json`, `ssh-authorized-keys/<user>`, the JSON
//! settings files, the Quadlet units and `quadlet-runtime.json`. The config root store writes
//! the set into a candidate; `managed-users.json` and the bundle's `files/` are not rendered
//! here (the users step and the bundle own them).

use crate::diag::Report;
use crate::files::{FileSet, RelPath};
use crate::model::{self, Config};
use crate::quadlet;

/// Secrets and settings: readable by root only.
const PRIVATE: u32 = 0o600;
/// Quadlet units: read by the generators.
const UNIT: u32 = 0o644;

/// The config as given, byte for byte.
pub const CONFIG_TOML: &str = "config.toml";
/// The strict activation policy.
pub const ACTIVATION_POLICY: &str = "activation-policy.json";
/// The required containers alone, for older readers.
pub const HEALTH_REQUIRED: &str = "health-required.json";
/// Every rendered Quadlet unit: file, service, mode.
pub const QUADLET_RUNTIME: &str = "quadlet-runtime.json";
/// The users, normalized.
pub const USERS_JSON: &str = "users.json";
/// The users' public keys, one file each.
pub const SSH_AUTHORIZED_KEYS: &str = "ssh-authorized-keys";
/// The inbound ports per scope and protocol.
pub const FIREWALL_INBOUND: &str = "firewall-inbound.json";
/// The admins' public keys, one per line: who may sign API requests.
pub const ADMIN_SIGNERS: &str = "admin-signers";
/// The LAN settings (`gateway_ip`: where the provisioning service listens once provisioned).
pub const LAN_SETTINGS: &str = "lan-settings.json";

/// The top-level names of a config root that rendering owns: an apply writes each afresh (or
/// leaves it out, which deletes it), and keeps every other entry of the active root.
pub const RENDERED_NAMES: &[&str] = &[
    CONFIG_TOML,
    ADMIN_SIGNERS,
    USERS_JSON,
    SSH_AUTHORIZED_KEYS,
    FIREWALL_INBOUND,
    LAN_SETTINGS,
    "host-network.json",
    "os-upgrade.json",
    HEALTH_REQUIRED,
    ACTIVATION_POLICY,
    "quadlet",
    QUADLET_RUNTIME,
];

/// A config root's files and the warnings rendering gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFiles {
    /// The files, by path under the config root.
    pub files: FileSet,
    /// From Quadlet rendering (a `Network` overridden, a bind rewritten), in the original's
    /// words ([`Config::parse_with_warnings`] gives them located).
    pub warnings: Vec<String>,
}

/// Renders the config root for `config`, whose text was `source` (kept byte for byte as
/// `config.toml`). `runtime_root` is where the root is read on the device (`/data/config`):
/// the Quadlet path tokens stand for it. A config [`Config::parse`] gave always renders; one
/// changed since gets the Quadlet errors located in `source`.
pub fn render(config: &Config, source: &[u8], runtime_root: &str) -> Result<RootFiles, Report> {
    let quadlets = quadlet::render(&config.containers, runtime_root)
        .map_err(|errors| model::quadlet_report(&String::from_utf8_lossy(source), &errors))?;
    // The JSON settings files, then the rest.
    let mut files = config.json_files();
    let mut put = |path: &str, mode: u32, contents: Vec<u8>| {
        // Every name here is a constant or a validated user or unit name.
        if let Ok(path) = RelPath::new(path) {
            files.insert(path, mode, contents);
        }
    };
    put(CONFIG_TOML, PRIVATE, source.to_vec());
    if let Some(signers) = config.admin_signers() {
        put(ADMIN_SIGNERS, PRIVATE, signers.into_bytes());
    }
    for user in &config.users.list {
        if let Some(key) = &user.ssh_key {
            let path = format!("{SSH_AUTHORIZED_KEYS}/{}", user.name);
            put(&path, PRIVATE, format!("{}\n", key.line).into_bytes());
        }
    }
    for (name, text) in &quadlets.files {
        put(&format!("quadlet/{name}"), UNIT, text.clone().into_bytes());
    }
    put(
        QUADLET_RUNTIME,
        PRIVATE,
        quadlets.runtime_json().into_bytes(),
    );
    Ok(RootFiles {
        files,
        warnings: quadlets.warnings.iter().map(ToString::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendered_top_level_name_is_listed_as_owned() {
        let source = include_str!("../tests/fixtures/full.toml");
        let config = Config::parse(source).unwrap();
        let root = render(&config, source.as_bytes(), "/data/config").unwrap();
        for (path, _) in root.files.iter() {
            let top = path.components().next().unwrap();
            assert!(RENDERED_NAMES.contains(&top), "{top}");
        }
    }

    #[test]
    fn a_model_changed_after_parsing_gets_its_quadlet_errors_located() {
        use crate::containers::{Scalar, Value};
        let source = include_str!("../tests/fixtures/full.toml");
        let mut config = Config::parse(source).unwrap();
        let myapp = &mut config.containers.containers[1].container.directives;
        let port = myapp.iter_mut().find(|d| d.name == "PublishPort").unwrap();
        port.value = Value::List(vec![Scalar::Str("80".into())]);
        let report = render(&config, source.as_bytes(), "/data/config").unwrap_err();
        let errors: Vec<_> = report.errors().collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].path,
            "containers.container.myapp.Container.PublishPort[0]"
        );
        let at = source.find("\"10080:80\"").unwrap();
        assert_eq!(errors[0].span, at..at + "\"10080:80\"".len());
    }
}
