//! `[containers]`: the Quadlet units as data, for rendering: containers (privileged or not,
//! with `Unit`, `Container` and `Install` sections), networks, volumes and builds, each
//! section's directives in TOML document order.

use std::fmt;

use crate::check::{Checker, index, join};
use crate::tree::{Kind, Node};

/// A unit name: ASCII letters, digits, `_` and `-`, not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitName(String);

impl UnitName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let b = name.as_bytes();
        let ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "invalid unit name {name:?}: letters, digits, `_` and `-`, not starting with `-`"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One directive value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A string (no CR, LF or NUL), verbatim.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A directive's value: one scalar or a non-empty list (one `Key=value` line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `Key = "v"`.
    One(Scalar),
    /// `Key = ["a", "b"]`.
    List(Vec<Scalar>),
}

impl Value {
    /// The values, one per line.
    pub fn scalars(&self) -> &[Scalar] {
        match self {
            Value::One(s) => std::slice::from_ref(s),
            Value::List(l) => l,
        }
    }
}

/// A directive: `Name` (`[A-Za-z][A-Za-z0-9]*`) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name.
    pub name: String,
    /// The value.
    pub value: Value,
}

/// One section's directives, in TOML document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// The directives.
    pub directives: Vec<Directive>,
}

impl Section {
    /// The value of directive `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| &d.value)
    }
}

/// `containers.container.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The name.
    pub name: UnitName,
    /// Rootful (true) or rootless (as `appsvc`).
    pub privileged: bool,
    /// `[Unit]`, when given.
    pub unit: Option<Section>,
    /// `[Container]`; `Image` is one non-empty string.
    pub container: Section,
    /// `[Install]`, when given.
    pub install: Option<Section>,
}

impl Container {
    /// The `Image` value.
    pub fn image(&self) -> &str {
        match self.container.get("Image").map(Value::scalars) {
            Some([Scalar::Str(s)]) => s,
            _ => "",
        }
    }
}

/// A network, volume or build: its name and its one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The name.
    pub name: UnitName,
    /// `[Network]`, `[Volume]` or `[Build]`.
    pub section: Section,
}

/// All the units, each kind in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containers {
    /// At least one container.
    pub containers: Vec<Container>,
    /// Networks.
    pub networks: Vec<Resource>,
    /// Volumes.
    pub volumes: Vec<Resource>,
    /// Builds.
    pub builds: Vec<Resource>,
}

impl Containers {
    /// The container of that name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name.as_str() == name)
    }
}

/// Checks `[containers]`. Also gives the declared container names (valid or not) for the
/// activation references, even when something else is wrong.
pub(crate) fn check(c: &mut Checker<'_>, node: &Node) -> (Option<Containers>, Vec<String>) {
    let before = c.error_count();
    let allowed = ["container", "network", "volume", "build"];
    let Some(t) = c.table(node, "containers", &allowed, &["container"]) else {
        return (None, Vec::new());
    };
    let mut names = Vec::new();
    let mut out = Containers {
        containers: Vec::new(),
        networks: Vec::new(),
        volumes: Vec::new(),
        builds: Vec::new(),
    };
    if let Some(n) = t.get("container")
        && let Some(table) = c.any_table(n, "containers.container")
    {
        let entries = table.entries().unwrap_or(&[]);
        if entries.is_empty() {
            c.error(
                "containers.container",
                &n.span,
                "at least one container is needed",
            );
        }
        for e in entries {
            names.push(e.key.clone());
            let path = join("containers.container", &e.key);
            let name = UnitName::new(&e.key).map_err(|m| c.error(&path, &e.key_span, m));
            if let (Ok(name), Some(container)) = (name, container(c, &e.node, &path)) {
                out.containers.push(Container { name, ..container });
            }
        }
    }
    for (kind, section, list) in [
        ("network", "Network", &mut out.networks),
        ("volume", "Volume", &mut out.volumes),
        ("build", "Build", &mut out.builds),
    ] {
        let Some(n) = t.get(kind) else { continue };
        let kind_path = join("containers", kind);
        let Some(table) = c.any_table(n, &kind_path) else {
            continue;
        };
        for e in table.entries().unwrap_or(&[]) {
            let path = join(&kind_path, &e.key);
            let name = UnitName::new(&e.key).map_err(|m| c.error(&path, &e.key_span, m));
            let Some(r) = c.table(&e.node, &path, &[section], &[section]) else {
                continue;
            };
            let s = r
                .get(section)
                .and_then(|s| self::section(c, s, &join(&path, section)));
            if let (Ok(name), Some(section)) = (name, s) {
                list.push(Resource { name, section });
            }
        }
    }
    let ok = c.error_count() == before;
    (ok.then_some(out), names)
}

fn container(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Container> {
    let before = c.error_count();
    let keys = ["privileged", "Unit", "Container", "Install"];
    let t = c.table(node, path, &keys, &["privileged", "Container"])?;
    let privileged = t
        .get("privileged")
        .and_then(|n| c.boolean(n, &join(path, "privileged")));
    let unit = t
        .get("Unit")
        .and_then(|n| section(c, n, &join(path, "Unit")));
    let install = t
        .get("Install")
        .and_then(|n| section(c, n, &join(path, "Install")));
    let container = t
        .get("Container")
        .and_then(|n| section(c, n, &join(path, "Container")));
    if let Some(n) = t.get("Container")
        && n.entries().is_some()
    {
        let image_path = join(&join(path, "Container"), "Image");
        let image = n.get("Image");
        let one = |i: &Node| matches!(&i.kind, Kind::Str(s) if !s.trim().is_empty());
        let ok = image.is_some_and(|i| match &i.kind {
            Kind::Array(items) => items.len() == 1 && one(&items[0]),
            _ => one(i),
        });
        if !ok {
            let span = image.map_or(&n.span, |i| &i.span);
            c.error(
                &image_path,
                span,
                "`Image` must be exactly one non-empty string",
            );
        }
    }
    if c.error_count() > before {
        return None;
    }
    Some(Container {
        name: UnitName(String::new()),
        privileged: privileged?,
        unit,
        container: container?,
        install,
    })
}

fn section(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Section> {
    let before = c.error_count();
    let t = c.any_table(node, path)?;
    let mut out = Section::default();
    for e in t.entries().unwrap_or(&[]) {
        let p = join(path, &e.key);
        let b = e.key.as_bytes();
        let name_ok = b.first().is_some_and(u8::is_ascii_alphabetic)
            && b.iter().all(u8::is_ascii_alphanumeric);
        if !name_ok {
            let message = format!("invalid directive name {:?}: [A-Za-z][A-Za-z0-9]*", e.key);
            c.error(&p, &e.key_span, message);
            continue;
        }
        let value = match &e.node.kind {
            Kind::Array(items) if items.is_empty() => {
                c.error(&p, &e.node.span, "expected at least 1 item(s)");
                continue;
            }
            Kind::Array(items) => {
                let list: Vec<_> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| scalar(c, item, &index(&p, i)))
                    .collect();
                (list.len() == items.len()).then_some(Value::List(list))
            }
            _ => scalar(c, &e.node, &p).map(Value::One),
        };
        if let Some(value) = value {
            out.directives.push(Directive {
                name: e.key.clone(),
                value,
            });
        }
    }
    (c.error_count() == before).then_some(out)
}

fn scalar(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<Scalar> {
    match &node.kind {
        Kind::Str(s) if s.contains(['\r', '\n', '\0']) => {
            c.error(
                path,
                &node.span,
                "a directive value must not contain CR, LF or NUL",
            );
            None
        }
        Kind::Str(s) => Some(Scalar::Str(s.clone())),
        Kind::Int(i) => Some(Scalar::Int(*i)),
        Kind::Bool(b) => Some(Scalar::Bool(*b)),
        _ => {
            let message = format!(
                "expected a string, integer or boolean, found {}",
                node.type_name()
            );
            c.error(path, &node.span, message);
            None
        }
    }
}
