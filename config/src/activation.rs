//! `[activation]`: which containers must come up, which are restarted or may be degraded, the
//! timeouts and the strategy. Every name must be a declared container.

use crate::check::{Checker, join};
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
