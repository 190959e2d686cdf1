//! `atomix-bench target-dir`: prints cargo's target directory, so that the wrapper scripts find
//! the binaries they built without parsing `cargo metadata` themselves.
//!
//! Owns: asking `cargo metadata` (of this workspace) and reading its `target_directory`. Must
//! not: guess it from `CARGO_TARGET_DIR` (cargo's configuration can set it too).

use std::process::Command;

use anyhow::{Context, Result};
use atomix_systests::{run_checked, workspace_root};

/// Print cargo's target directory (`target_directory` of `cargo metadata`) for this workspace.
///
/// The wrapper scripts run the benchmarks' binaries from there, e.g.
/// target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {}

/// Prints the target directory and a newline.
///
/// # Errors
/// `cargo metadata` cannot run, fails, or prints no `target_directory`.
pub fn run(_: &Args) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = run_checked(
        Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(workspace_root().join("Cargo.toml")),
    )?;
    crate::print(&format!("{}\n", target_directory(&metadata)?))
}

/// The `target_directory` of `cargo metadata`'s JSON.
fn target_directory(metadata: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(metadata).context("cargo metadata did not print JSON")?;
    value["target_directory"]
        .as_str()
        .map(str::to_owned)
        .context("cargo metadata printed no target_directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_target_directory() {
        let metadata = r#"{"packages":[],"target_directory":"/w/tgt","version":1}"#;
        assert_eq!(target_directory(metadata).unwrap(), "/w/tgt");
        assert!(target_directory(r#"{"version":1}"#).is_err());
        assert!(target_directory("warning: x").is_err());
    }
}
