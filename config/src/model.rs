//! The validated config: [`Config::parse`] checks a whole config.toml and gives either the
//! typed model or a [`Report`] of every error.

use crate::activation::{self, Activation};
use crate::check::Checker;
use crate::containers::{self, Containers};
use crate::diag::{Report, TomlPath};
use crate::net::https_url;
use crate::network::{self, Network};
use crate::quadlet::{self, QuadletError, QuadletWarning};
use crate::tree::{self, Kind, Node};
use crate::users::{self, Users};

/// The top-level keys.
pub const TOP_LEVEL_KEYS: [&str; 6] = [
    "version",
    "users",
    "network",
    "activation",
    "os_upgrade",
    "containers",
];

/// The top-level keys that must be present.
pub const REQUIRED_KEYS: [&str; 4] = ["version", "users", "activation", "containers"];

/// `[os_upgrade]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUpgrade {
    /// The https base URL, trailing `/`s removed.
    pub server_url: String,
}

/// A valid config.toml v1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The accounts.
    pub users: Users,
    /// The network, defaults filled in.
    pub network: Network,
    /// The activation policy.
    pub activation: Activation,
    /// The OS upgrade server, when configured.
    pub os_upgrade: Option<OsUpgrade>,
    /// The Quadlet units.
    pub containers: Containers,
}

impl Config {
    /// Parses and validates `source`. On failure the report has every error found, sorted by
    /// position; a TOML syntax error is one error at its position. Validation includes what
    /// Quadlet rendering refuses (spec 4.2), so a parsed config renders.
    pub fn parse(source: &str) -> Result<Config, Report> {
        Self::parse_with_warnings(source).map(|(config, _)| config)
    }

    /// [`Config::parse`], also giving the warnings of a valid config (what Quadlet rendering
    /// changes), located like the errors. A report of errors has the warnings too.
    pub fn parse_with_warnings(source: &str) -> Result<(Config, Report), Report> {
        let mut c = Checker::new(source);
        let root = match tree::parse(source) {
            Ok(root) => root,
            Err((message, span)) => {
                c.error("", &span, format!("invalid TOML: {message}"));
                return Err(c.report);
            }
        };
        let config = check(&mut c, &root);
        let mut report = c.report;
        report.sort();
        match config {
            Some(config) if !report.has_errors() => Ok((config, report)),
            _ => Err(report),
        }
    }
}

/// The report of Quadlet rendering's errors on a config parsed from `source`. Only a model changed
/// after parsing has any: [`Config::parse`] refuses them.
pub(crate) fn quadlet_report(source: &str, errors: &[QuadletError]) -> Report {
    let mut c = Checker::new(source);
    let root = tree::parse(source).unwrap_or(Node {
        kind: Kind::Table(Vec::new()),
        span: 0..0,
    });
    locate_quadlet(&mut c, &root, errors, &[]);
    c.report.sort();
    c.report
}

/// Records Quadlet rendering's errors and warnings at the values their paths name in `root`
/// (at the top of the document for a path it does not have).
pub(crate) fn locate_quadlet(
    c: &mut Checker<'_>,
    root: &Node,
    errors: &[QuadletError],
    warnings: &[QuadletWarning],
) {
    let span = |path: &TomlPath| root.at(path).map_or(0..0, |n| n.span.clone());
    for e in errors {
        c.error(&e.path.to_string(), &span(&e.path), e.kind.to_string());
    }
    for w in warnings {
        c.warning(&w.path.to_string(), &span(&w.path), w.message.clone());
    }
}

fn check(c: &mut Checker<'_>, root: &Node) -> Option<Config> {
    c.table(root, "", &TOP_LEVEL_KEYS, &REQUIRED_KEYS)?;
    if let Some(v) = root.get("version")
        && v.kind != Kind::Int(1)
    {
        let message = format!("version must be the integer 1, found {}", v.type_name());
        c.error("version", &v.span, message);
    }
    let users = root.get("users").and_then(|n| users::check(c, n));
    let network = network::check(c, root.get("network"), root);
    let os_upgrade = root.get("os_upgrade").and_then(|n| os_upgrade(c, n));
    let (containers, names) = match root.get("containers") {
        Some(n) => containers::check(c, n),
        None => (None, Vec::new()),
    };
    if let Some(containers) = &containers {
        let (errors, warnings) = quadlet::findings(containers);
        locate_quadlet(c, root, &errors, &warnings);
    }
    let activation = root
        .get("activation")
        .and_then(|n| activation::check(c, n, &names));
    let os_ok = root.get("os_upgrade").is_none() || os_upgrade.is_some();
    if !os_ok {
        return None;
    }
    Some(Config {
        users: users?,
        network: network?,
        activation: activation?,
        os_upgrade,
        containers: containers?,
    })
}

fn os_upgrade(c: &mut Checker<'_>, node: &Node) -> Option<OsUpgrade> {
    let t = c.table(node, "os_upgrade", &["server_url"], &["server_url"])?;
    let n = t.get("server_url")?;
    let path = "os_upgrade.server_url";
    let raw = c.text(n, path)?;
    match https_url(raw) {
        Ok(server_url) => Some(OsUpgrade { server_url }),
        Err(e) => {
            c.error(path, &n.span, format!("{raw:?} {e}"));
            None
        }
    }
}
