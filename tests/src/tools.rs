//! Small helpers the privileged tests and the benchmarks share: running a host tool (panicking
//! in tests, as an error in benchmarks), insisting on root, a median, the workspace's `atomix`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Runs `cmd` and returns its stdout; panics (failing the test) with the command, its status,
/// stdout and stderr when it cannot run or exits non-zero.
pub fn run_tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test unless it runs as root; `needs` says what for. T2 tests are never skipped.
pub fn require_root(needs: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "T2 tests need root ({needs}): run them as root, as CI does"
    );
}

/// Runs `cmd` and returns its stdout; an error with the command, its status, stdout and stderr
/// when it cannot run or exits non-zero (what the benchmarks want instead of a panic).
///
/// # Errors
/// The command cannot be started or exits non-zero.
pub fn run_checked(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The median of `values` (the upper middle one for an even count); `None` when empty.
pub fn median<T: Ord + Copy>(values: &[T]) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// The `atomix` binary of this workspace, built (or found up to date) by cargo once per process,
/// in the profile the caller was built in.
///
/// # Panics
/// cargo fails or names no executable.
pub fn atomix_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(crate::workspace_root()).args([
            "build",
            "--locked",
            "-p",
            "atomix",
            "--bin",
            "atomix",
            "--message-format=json-render-diagnostics",
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = run_tool(&mut cmd);
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "atomix")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo build -p atomix named no executable:\n{out}"))
    })
}
