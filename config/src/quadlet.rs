//! Rendering `[containers]` into Quadlet unit files and `quadlet-runtime.json` (spec 4.1, 4.2):
//! the same text, the same runtime metadata and the same warnings as the original, so a device
//! it provisioned keeps its units byte for byte.
//!
//! - A container becomes `<name>.container` (service `<name>.service`): `[Unit]` when given,
//!   `[Container]`, `[Install]` when given. Privileged containers run rootful with
//!   `Network=host`; the others rootless (as `appsvc`) with `Network=pasta` and every
//!   `PublishPort` bound to 127.0.0.1.
//! - A network becomes `<name>.network` (`<name>-network.service`, always rootful), a volume
//!   `<name>.volume` (`<name>-volume.service`) and a build `<name>.build`
//!   (`<name>-build.service`), each in the modes of the containers that use it (a `Volume=`
//!   value `<name>:…`, an `Image=` equal to the build's `ImageTag`), rootful when none does.
//! - Directives keep their TOML order, a list is one line per element, string values get
//!   `${CONFIG_DIR}` and `${FILES_DIR}` replaced by the *runtime* config root (not the
//!   candidate being written).
//! - Two units that would be the same service in the same mode are refused.

use std::fmt;

use crate::containers::{Container, Containers, Directive, Resource, Scalar, Section, Value};
use crate::diag::{Step, TomlPath};
use crate::json::Json;

/// The user rootless containers run as.
pub const APP_USER: &str = "appsvc";
/// The network every rootless container gets.
pub const ROOTLESS_NETWORK: &str = "pasta";
/// Replaced by the runtime config root in string values.
pub const CONFIG_DIR_TOKEN: &str = "${CONFIG_DIR}";
/// Replaced by `<runtime config root>/files` in string values.
pub const FILES_DIR_TOKEN: &str = "${FILES_DIR}";

/// Which service manager runs a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The system manager.
    Rootful,
    /// The `appsvc` user's manager.
    Rootless,
}

impl Mode {
    /// `rootful` / `rootless`, as in `quadlet-runtime.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rootful => "rootful",
            Mode::Rootless => "rootless",
        }
    }

    fn of(container: &Container) -> Mode {
        if container.privileged {
            Mode::Rootful
        } else {
            Mode::Rootless
        }
    }
}

/// One entry of `quadlet-runtime.json`'s `units`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeUnit {
    /// The config's name for it.
    pub name: String,
    /// The unit file (`web.container`).
    pub filename: String,
    /// The systemd service Quadlet generates from it (`web.service`).
    pub service: String,
    /// Which manager runs it.
    pub mode: Mode,
}

/// What [`render`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quadlets {
    /// `(file name, text)`, containers first (config order), then networks, volumes, builds.
    pub files: Vec<(String, String)>,
    /// The runtime metadata, in the order of spec 4.1 (a volume or build once per mode).
    pub units: Vec<RuntimeUnit>,
    /// What was changed on the way (a `Network` overridden, a bind rewritten).
    pub warnings: Vec<QuadletWarning>,
}

impl Quadlets {
    /// `quadlet-runtime.json`, as the original writes it.
    pub fn runtime_json(&self) -> String {
        let units = self
            .units
            .iter()
            .map(|u| {
                Json::Object(vec![
                    ("name".into(), Json::Str(u.name.clone())),
                    ("filename".into(), Json::Str(u.filename.clone())),
                    ("service".into(), Json::Str(u.service.clone())),
                    ("mode".into(), Json::Str(u.mode.as_str().into())),
                ])
            })
            .collect();
        Json::Object(vec![
            ("app_user".into(), Json::Str(APP_USER.into())),
            (
                "rootless_network".into(),
                Json::Str(ROOTLESS_NETWORK.into()),
            ),
            ("units".into(), Json::Array(units)),
        ])
        .to_pretty()
    }
}

/// Why the containers cannot be rendered, and what in config.toml it is about.
/// [`Config::parse`](crate::Config::parse) reports these, located, so a parsed config renders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct QuadletError {
    /// The offending `PublishPort` value, or the unit that collides with an earlier one
    /// (`containers.<kind>.<name>`).
    pub path: TomlPath,
    /// What is wrong.
    pub kind: QuadletErrorKind,
}

/// What is wrong, in the original's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuadletErrorKind {
    /// A rootless `PublishPort` of the form `HOST:CONTAINER` whose host part is not a number.
    #[error("{value:?} must include a numeric host port for rootless containers")]
    NonNumericHostPort {
        /// The value.
        value: String,
    },
    /// A rootless `PublishPort` with only the container port.
    #[error("{value:?} must include an explicit host port for rootless containers")]
    NoHostPort {
        /// The value.
        value: String,
    },
    /// Two units that systemd would run as the same service in the same manager.
    #[error("quadlet service name collision: {first} and {second} both render {service} ({mode})")]
    ServiceCollision {
        /// The first unit file.
        first: String,
        /// The second unit file (the one [`QuadletError::path`] points at).
        second: String,
        /// The service both would be.
        service: String,
        /// The manager.
        mode: &'static str,
    },
}

/// A change rendering made to what the config says (a `Network` overridden, a bind rewritten),
/// and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuadletWarning {
    /// The directive, or the list element, that was changed.
    pub path: TomlPath,
    /// What was done: `overridden to host for privileged container`.
    pub message: String,
}

impl fmt::Display for QuadletWarning {
    /// The original's text: the path without `containers` and list indexes, then the message
    /// (`container.web.Container.Network overridden to host for privileged container`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = (self.path.steps().iter().skip(1))
            .filter_map(|step| match step {
                Step::Key(key) => Some(key.as_str()),
                Step::Index(_) => None,
            })
            .collect();
        write!(f, "{} {}", keys.join("."), self.message)
    }
}

/// Renders every unit. `config_root` is the runtime config root (`/data/config`) the tokens
/// stand for. Every error is reported, not only the first.
pub fn render(containers: &Containers, config_root: &str) -> Result<Quadlets, Vec<QuadletError>> {
    let (quadlets, errors) = build(containers, config_root);
    if errors.is_empty() {
        Ok(quadlets)
    } else {
        Err(errors)
    }
}

/// What rendering refuses and what it changes, for validation.
pub(crate) fn findings(containers: &Containers) -> (Vec<QuadletError>, Vec<QuadletWarning>) {
    let (quadlets, errors) = build(containers, "");
    (errors, quadlets.warnings)
}

/// The units that render, and the errors of those that do not.
fn build(containers: &Containers, config_root: &str) -> (Quadlets, Vec<QuadletError>) {
    let tokens = Tokens::new(config_root);
    let mut out = Quadlets {
        files: Vec::new(),
        units: Vec::new(),
        warnings: Vec::new(),
    };
    let mut errors = Vec::new();

    for c in &containers.containers {
        match container_text(c, &tokens, &mut out.warnings) {
            Ok(text) => {
                let filename = format!("{}.container", c.name);
                out.files.push((filename.clone(), text));
                out.units.push(RuntimeUnit {
                    name: c.name.to_string(),
                    filename,
                    service: format!("{}.service", c.name),
                    mode: Mode::of(c),
                });
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    for n in &containers.networks {
        push_resource(&mut out, n, "Network", "network", &[Mode::Rootful], &tokens);
    }
    for v in &containers.volumes {
        let modes = modes_using(containers, |c| uses_volume(c, v.name.as_str()));
        push_resource(&mut out, v, "Volume", "volume", &modes, &tokens);
    }
    for b in &containers.builds {
        let modes = match single_str(&b.section, "ImageTag") {
            Some(tag) => modes_using(containers, |c| c.image().trim() == tag.trim()),
            None => vec![Mode::Rootful],
        };
        push_resource(&mut out, b, "Build", "build", &modes, &tokens);
    }

    errors.extend(collisions(&out.units));
    (out, errors)
}

/// The modes of the containers `uses` selects, sorted; rootful when there are none.
fn modes_using(containers: &Containers, uses: impl Fn(&Container) -> bool) -> Vec<Mode> {
    let mut modes: Vec<Mode> = containers
        .containers
        .iter()
        .filter(|c| uses(c))
        .map(Mode::of)
        .collect();
    modes.sort();
    modes.dedup();
    if modes.is_empty() {
        modes.push(Mode::Rootful);
    }
    modes
}

/// Whether a `Volume=` of the container names volume `name` (`name:/path…`).
fn uses_volume(c: &Container, name: &str) -> bool {
    c.container.get("Volume").is_some_and(|v| {
        v.scalars().iter().any(|s| match s {
            Scalar::Str(s) => s.split_once(':').is_some_and(|(source, _)| source == name),
            _ => false,
        })
    })
}

/// The value of a directive that is exactly one string.
fn single_str<'a>(section: &'a Section, name: &str) -> Option<&'a str> {
    match section.get(name).map(Value::scalars) {
        Some([Scalar::Str(s)]) => Some(s),
        _ => None,
    }
}

fn push_resource(
    out: &mut Quadlets,
    r: &Resource,
    section: &str,
    suffix: &str,
    modes: &[Mode],
    tokens: &Tokens,
) {
    let filename = format!("{}.{suffix}", r.name);
    out.files.push((
        filename.clone(),
        finish(section_text(section, &r.section.directives, tokens)),
    ));
    for &mode in modes {
        out.units.push(RuntimeUnit {
            name: r.name.to_string(),
            filename: filename.clone(),
            service: format!("{}-{suffix}.service", r.name),
            mode,
        });
    }
}

fn container_text(
    c: &Container,
    tokens: &Tokens,
    warnings: &mut Vec<QuadletWarning>,
) -> Result<String, Vec<QuadletError>> {
    let section = TomlPath::keys(["containers", "container", c.name.as_str(), "Container"]);
    let mut directives = c.container.directives.clone();
    let network = directives.iter().position(|d| d.name == "Network");
    let forced = if c.privileged {
        "host"
    } else {
        ROOTLESS_NETWORK
    };
    if let Some(i) = network {
        let was_host = matches!(directives[i].value.scalars(), [Scalar::Str(s)] if s == "host");
        if !c.privileged || !was_host {
            let kind = if c.privileged {
                "privileged"
            } else {
                "rootless"
            };
            warnings.push(QuadletWarning {
                path: section.clone().key("Network"),
                message: format!("overridden to {forced} for {kind} container"),
            });
        }
    }
    let value = Value::List(vec![Scalar::Str(forced.into())]);
    match network {
        Some(i) => directives[i].value = value,
        None => directives.push(Directive {
            name: "Network".into(),
            value,
        }),
    }

    if !c.privileged {
        let mut errors = Vec::new();
        for d in directives.iter_mut().filter(|d| d.name == "PublishPort") {
            let mut rewritten = Vec::new();
            for (i, s) in d.value.scalars().iter().enumerate() {
                let Scalar::Str(v) = s else {
                    rewritten.push(s.clone());
                    continue;
                };
                let path = match d.value {
                    Value::One(_) => section.clone().key("PublishPort"),
                    Value::List(_) => section.clone().key("PublishPort").index(i),
                };
                match loopback_publish(v) {
                    Ok(Publish::Kept) => rewritten.push(s.clone()),
                    Ok(Publish::Rewritten { value, warn }) => {
                        if warn {
                            warnings.push(QuadletWarning {
                                path,
                                message: format!(
                                    "rewrote non-loopback bind {} to 127.0.0.1",
                                    python_repr(v)
                                ),
                            });
                        }
                        rewritten.push(Scalar::Str(value));
                    }
                    Err(PublishError::NonNumericHost) => errors.push(QuadletError {
                        path,
                        kind: QuadletErrorKind::NonNumericHostPort { value: v.clone() },
                    }),
                    Err(PublishError::NoHost) => errors.push(QuadletError {
                        path,
                        kind: QuadletErrorKind::NoHostPort { value: v.clone() },
                    }),
                }
            }
            d.value = Value::List(rewritten);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }

    let mut text = String::new();
    if let Some(unit) = &c.unit {
        text.push_str(&section_text("Unit", &unit.directives, tokens));
    }
    text.push_str(&section_text("Container", &directives, tokens));
    if let Some(install) = &c.install {
        text.push_str(&section_text("Install", &install.directives, tokens));
    }
    Ok(finish(text))
}

/// What a rootless `PublishPort` becomes.
#[derive(Debug, PartialEq, Eq)]
enum Publish {
    /// Already bound to loopback.
    Kept,
    /// Bound to 127.0.0.1; `warn` when a non-loopback address was dropped.
    Rewritten { value: String, warn: bool },
}

#[derive(Debug, PartialEq, Eq)]
enum PublishError {
    NonNumericHost,
    NoHost,
}

/// Binds a rootless `PublishPort` to 127.0.0.1 (the table of spec 4.2). A value in brackets
/// that does not parse as `[addr]:rest` is kept as it is (as the original does).
fn loopback_publish(value: &str) -> Result<Publish, PublishError> {
    let (host, rest) = if value.starts_with('[') {
        match value.find(']') {
            Some(end) if value[end + 1..].starts_with(':') => (&value[..=end], &value[end + 2..]),
            _ => return Ok(Publish::Kept),
        }
    } else {
        let fields: Vec<&str> = value.split(':').collect();
        match fields.len() {
            2 if !fields[0].is_empty() && fields[0].bytes().all(|b| b.is_ascii_digit()) => {
                return Ok(Publish::Rewritten {
                    value: format!("127.0.0.1:{value}"),
                    warn: false,
                });
            }
            2 => return Err(PublishError::NonNumericHost),
            0 | 1 => return Err(PublishError::NoHost),
            _ => value.split_once(':').unwrap_or((value, "")),
        }
    };
    match host {
        "127.0.0.1" | "127.0.1.1" => Ok(Publish::Kept),
        "localhost" | "::1" | "[::1]" => Ok(Publish::Rewritten {
            value: format!("127.0.0.1:{rest}"),
            warn: false,
        }),
        _ => Ok(Publish::Rewritten {
            value: format!("127.0.0.1:{rest}"),
            warn: true,
        }),
    }
}

/// Python's `repr` of a string, as the original's warning shows the value (single quotes
/// unless the value holds one and no double quote).
fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `[Name]`, one `Key=value` line per value, and a blank line.
fn section_text(name: &str, directives: &[Directive], tokens: &Tokens) -> String {
    let mut text = format!("[{name}]\n");
    for d in directives {
        for s in d.value.scalars() {
            let value = match s {
                Scalar::Str(v) => tokens.substitute(v),
                Scalar::Int(i) => i.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            text.push_str(&d.name);
            text.push('=');
            text.push_str(&value);
            text.push('\n');
        }
    }
    text.push('\n');
    text
}

/// Trailing whitespace stripped, then exactly one newline.
fn finish(text: String) -> String {
    let mut text = text.trim_end().to_owned();
    text.push('\n');
    text
}

/// The two path tokens and what they stand for.
struct Tokens {
    config_dir: String,
    files_dir: String,
}

impl Tokens {
    fn new(config_root: &str) -> Self {
        Self {
            config_dir: config_root.to_owned(),
            files_dir: format!("{config_root}/files"),
        }
    }

    fn substitute(&self, value: &str) -> String {
        value
            .replace(CONFIG_DIR_TOKEN, &self.config_dir)
            .replace(FILES_DIR_TOKEN, &self.files_dir)
    }
}

/// Every pair of units that share `(mode, service)`, each reported at the later unit.
fn collisions(units: &[RuntimeUnit]) -> Vec<QuadletError> {
    let mut seen: Vec<&RuntimeUnit> = Vec::new();
    let mut errors = Vec::new();
    for u in units {
        match seen
            .iter()
            .find(|s| s.mode == u.mode && s.service == u.service)
        {
            Some(first) => {
                // The file `<name>.<kind>` comes from `containers.<kind>.<name>`.
                let kind = u.filename.rsplit_once('.').map_or("", |(_, kind)| kind);
                errors.push(QuadletError {
                    path: TomlPath::keys(["containers", kind, &u.name]),
                    kind: QuadletErrorKind::ServiceCollision {
                        first: first.filename.clone(),
                        second: u.filename.clone(),
                        service: u.service.clone(),
                        mode: u.mode.as_str(),
                    },
                })
            }
            None => seen.push(u),
        }
    }
    errors
}

#[cfg(test)]
mod tests;
