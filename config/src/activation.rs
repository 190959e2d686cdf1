//! `[activation]`: which containers must come up, which are restarted or may be degraded, the
//! timeouts and the strategy. Every name must be a declared container.
//!
//! Also the two files the config root keeps it in, as rendering writes them and activation
//! reads them (spec 5.6 step 1): [`PolicyFile`] (`activation-policy.json`) and
//! [`HealthRequired`] (`health-required.json`).

use serde::Deserialize;

use crate::check::{Checker, join};
use crate::json::Json;
use crate::tree::Node;

/// What happens when activation fails. Only rollback exists in v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Go back to the previous config.
    Rollback,
}

impl Strategy {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Rollback => "rollback",
        }
    }
}

/// The activation policy, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Containers that must be healthy (at least one).
    pub required: Vec<String>,
    /// Seconds to wait for them, 1 to 3600 (default 300).
    pub timeout_seconds: u32,
    /// Seconds to wait before checking, 0 to 300 (default 0).
    pub settle_seconds: u32,
    /// Containers restarted on apply.
    pub restart: Vec<String>,
    /// Containers that may fail without a rollback.
    pub allow_degraded: Vec<String>,
    /// Whether `allow_degraded` was written at all.
    pub allow_degraded_configured: bool,
    /// The strategy.
    pub strategy: Strategy,
}

/// `activation-policy.json`: the strict policy. Read as written, except that the ranges, the
/// strategy and the names are the reader's to check (a broken file is an activation failure,
/// not a parse error).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Containers that must be healthy.
    pub required: Vec<String>,
    /// The whole activation's deadline, 1..=3600.
    pub timeout_seconds: u64,
    /// How long each required unit must stay active, 0..=300.
    pub settle_seconds: u64,
    /// Containers restarted after the apply.
    #[serde(default)]
    pub restart: Vec<String>,
    /// Containers that may fail without failing the activation.
    #[serde(default)]
    pub allow_degraded: Vec<String>,
    /// Whether `allow_degraded` was given in config.toml.
    #[serde(default)]
    pub allow_degraded_configured: bool,
    /// Only `rollback`.
    pub strategy: String,
}

impl From<&Activation> for PolicyFile {
    fn from(a: &Activation) -> Self {
        Self {
            required: a.required.clone(),
            timeout_seconds: a.timeout_seconds.into(),
            settle_seconds: a.settle_seconds.into(),
            restart: a.restart.clone(),
            allow_degraded: a.allow_degraded.clone(),
            allow_degraded_configured: a.allow_degraded_configured,
            strategy: a.strategy.as_str().to_owned(),
        }
    }
}

impl PolicyFile {
    /// The file's JSON, keys in the original's order (the order of the fields).
    pub fn to_json(&self) -> Json {
        // Rendered values are at most 3600; only a hand-made file could saturate.
        let int = |i: u64| Json::Int(i64::try_from(i).unwrap_or(i64::MAX));
        Json::obj([
            ("required", Json::strs(&self.required)),
            ("timeout_seconds", int(self.timeout_seconds)),
            ("settle_seconds", int(self.settle_seconds)),
            ("restart", Json::strs(&self.restart)),
            ("allow_degraded", Json::strs(&self.allow_degraded)),
            (
                "allow_degraded_configured",
                Json::Bool(self.allow_degraded_configured),
            ),
            ("strategy", Json::str(&self.strategy)),
        ])
    }
}

/// `health-required.json`: the required containers alone, for readers older than the policy
/// file (non-strict).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct HealthRequired(pub Vec<String>);

impl HealthRequired {
    /// The file's JSON.
    pub fn to_json(&self) -> Json {
        Json::strs(&self.0)
    }
}

const KEYS: [&str; 6] = [
    "required",
    "timeout_seconds",
    "settle_seconds",
    "restart",
    "allow_degraded",
    "strategy",
];

/// Checks `[activation]` against the declared container names.
pub(crate) fn check(c: &mut Checker<'_>, node: &Node, containers: &[String]) -> Option<Activation> {
    let before = c.error_count();
    let t = c.table(node, "activation", &KEYS, &["required"])?;
    let mut lists: [Vec<String>; 3] = Default::default();
    for (i, key) in ["required", "restart", "allow_degraded"]
        .into_iter()
        .enumerate()
    {
        let Some(n) = t.get(key) else { continue };
        let path = join("activation", key);
        let min = usize::from(key == "required");
        let Some(items) = c.texts(n, &path, min) else {
            continue;
        };
        for (name, item, p) in items {
            if !containers.iter().any(|c| c == name) {
                c.error(
                    &p,
                    &item.span,
                    format!("{name:?} is not a declared container"),
                );
            } else if key == "allow_degraded" && lists[0].iter().any(|r| r == name) {
                c.error(&p, &item.span, format!("{name:?} is also required"));
            }
            lists[i].push(name.to_owned());
        }
    }
    let mut seconds = |key: &str, min: i64, max: i64, default: u32| match t.get(key) {
        Some(n) => c
            .int(n, &join("activation", key), min, max)
            .and_then(|v| u32::try_from(v).ok()),
        None => Some(default),
    };
    let timeout_seconds = seconds("timeout_seconds", 1, 3600, 300);
    let settle_seconds = seconds("settle_seconds", 0, 300, 0);
    if let Some(n) = t.get("strategy")
        && let Some(s) = c.string(n, "activation.strategy")
        && s != "rollback"
    {
        let message = format!("unknown strategy {s:?} (only \"rollback\")");
        c.error("activation.strategy", &n.span, message);
    }
    if c.error_count() > before {
        return None;
    }
    let [required, restart, allow_degraded] = lists;
    Some(Activation {
        required,
        timeout_seconds: timeout_seconds?,
        settle_seconds: settle_seconds?,
        restart,
        allow_degraded,
        allow_degraded_configured: t.get("allow_degraded").is_some(),
        strategy: Strategy::Rollback,
    })
}
