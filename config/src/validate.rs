//! Validation of a config as an import does it: parse (every error with its line:col, the
//! Quadlet rendering's refusals included), then render the whole config root. The device
//! (`atomix-provision validate`, import, first boot) and the operator's client (`atomix device
//! validate`, and `push` before it sends anything) give the same report from this.

use serde_json::json;

use crate::root_files::{self, RootFiles};
use crate::{Config, Report};

/// Where the config root is read on the device: the Quadlet path tokens stand for it.
pub const DEVICE_CONFIG_ROOT: &str = "/data/config";

/// A config that can be applied, and the config root it renders to.
#[derive(Debug)]
pub struct Valid {
    /// The model.
    pub config: Config,
    /// The rendered config root.
    pub root: RootFiles,
    /// What rendering changed (a `Network` overridden, a bind rewritten), located.
    pub warnings: Report,
}

/// Parses and renders `toml` for a config root read at `runtime_root` on the device. A refused
/// config gives the report of every error, each located.
pub fn validate(toml: &str, runtime_root: &str) -> Result<Valid, Report> {
    let (config, warnings) = Config::parse_with_warnings(toml)?;
    let root = root_files::render(&config, toml.as_bytes(), runtime_root)?;
    Ok(Valid {
        config,
        root,
        warnings,
    })
}

/// The text of a refused config for a terminal: `Invalid: NAME: N errors`, then every error
/// with its `NAME:line:col`, the source line and a caret.
pub fn refusal_text(report: &Report, name: &str, source: &str) -> String {
    let count = report.errors().count();
    format!(
        "Invalid: {name}: {count} error{}\n{}",
        if count == 1 { "" } else { "s" },
        report.render_text(name, source)
    )
}

/// The `--json` report of a source that cannot be read (a missing file, a refused bundle).
pub fn unreadable_json(message: &str) -> serde_json::Value {
    json!({
        "valid": false,
        "errors": [{"message": message, "severity": "error"}],
        "warnings": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = include_str!("../tests/fixtures/full.toml");

    /// 1-based line and column of the first `needle`.
    fn at(src: &str, needle: &str) -> (usize, usize) {
        let i = src.find(needle).unwrap();
        let line = src[..i].matches('\n').count() + 1;
        (line, i - src[..i].rfind('\n').map_or(0, |n| n + 1) + 1)
    }

    #[test]
    fn parse_and_quadlet_errors_are_one_located_report() {
        let src = FULL
            .replace("shell = \"bash\"", "shell = \"fish\"")
            .replace("\"10080:80\"", "\"80\"");
        let json = validate(&src, DEVICE_CONFIG_ROOT).unwrap_err().to_json();
        assert_eq!(json["valid"], false);
        let errors = json["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{json}");
        assert_eq!(errors[0]["path"], "users.admin.shell");
        let port = &errors[1];
        assert_eq!(
            port["path"],
            "containers.container.myapp.Container.PublishPort[0]"
        );
        let (line, col) = at(&src, "\"80\"");
        assert_eq!(
            (port["line"].as_u64(), port["col"].as_u64()),
            (Some(line as u64), Some(col as u64))
        );
    }

    #[test]
    fn a_valid_config_has_its_warnings_located() {
        let valid = validate(FULL, DEVICE_CONFIG_ROOT).unwrap();
        let json = valid.warnings.to_json();
        assert_eq!(json["valid"], true);
        let warnings = json["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 2, "{json}");
        let (line, col) = at(FULL, "\"appnet\"");
        assert_eq!(
            warnings[1]["path"],
            "containers.container.myapp.Container.Network"
        );
        assert_eq!(
            (warnings[1]["line"].as_u64(), warnings[1]["col"].as_u64()),
            (Some(line as u64), Some(col as u64))
        );
        // The original's words stay for the job results.
        assert_eq!(
            valid.root.warnings[0],
            "container.myapp.Container.Network overridden to pasta for rootless container"
        );
    }
}
