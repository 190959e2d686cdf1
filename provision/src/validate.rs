//! Validation of a config as an import does it: parse (every error with its line:col), then
//! render the whole config root, whose Quadlet step can refuse what parsing accepted (a
//! rootless `PublishPort` without a host port, two units of one service).

use std::fmt::Write as _;

use atomix_config::quadlet::QuadletError;
use atomix_config::root_files::{self, RootFiles};
use atomix_config::{Config, Report};
use serde_json::json;

/// A config that can be applied, and the config root it renders to.
#[derive(Debug)]
pub struct Valid {
    /// The model.
    pub config: Config,
    /// The rendered config root.
    pub root: RootFiles,
}

/// Why a config is refused.
#[derive(Debug)]
pub enum Invalid {
    /// Parsing found errors: every one, located.
    Parse(Report),
    /// Rendering the Quadlet units failed (the model does not keep their positions).
    Render(Vec<QuadletError>),
}

impl Invalid {
    /// The text report: `file:line:col: path: message` with the source line and a caret for
    /// parse errors, `file: message` for rendering errors.
    pub fn text(&self, file_name: &str, source: &str) -> String {
        match self {
            Invalid::Parse(report) => report.render_text(file_name, source),
            Invalid::Render(errors) => {
                let mut out = String::new();
                for e in errors {
                    let _ = writeln!(out, "{file_name}: {e}");
                }
                out
            }
        }
    }

    /// The `--json` report: `{"valid": false, "errors": [...], "warnings": [...]}`.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Invalid::Parse(report) => report.to_json(),
            Invalid::Render(errors) => unlocated_json(errors.iter().map(ToString::to_string)),
        }
    }

    /// How many errors.
    pub fn count(&self) -> usize {
        match self {
            Invalid::Parse(report) => report.errors().count(),
            Invalid::Render(errors) => errors.len(),
        }
    }
}

/// Parses and renders `toml` for a config root read at `runtime_root` on the device.
pub fn validate(toml: &str, runtime_root: &str) -> Result<Valid, Invalid> {
    let config = Config::parse(toml).map_err(Invalid::Parse)?;
    let root =
        root_files::render(&config, toml.as_bytes(), runtime_root).map_err(Invalid::Render)?;
    Ok(Valid { config, root })
}

/// The `--json` report of a valid config (its warnings).
pub fn valid_json(valid: &Valid) -> serde_json::Value {
    json!({
        "valid": true,
        "errors": [],
        "warnings": valid
            .root
            .warnings
            .iter()
            .map(|w| json!({"message": w, "severity": "warning"}))
            .collect::<Vec<_>>(),
    })
}

/// The `--json` report of a source that cannot be read (a missing file, a refused bundle).
pub fn unreadable_json(message: &str) -> serde_json::Value {
    unlocated_json([message.to_owned()])
}

/// A report of errors that have no position.
fn unlocated_json(messages: impl IntoIterator<Item = String>) -> serde_json::Value {
    let errors: Vec<_> = messages
        .into_iter()
        .map(|m| json!({"message": m, "severity": "error"}))
        .collect();
    json!({"valid": false, "errors": errors, "warnings": []})
}
