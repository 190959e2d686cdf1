//! Small helpers the privileged tests and the benchmarks share: running a host tool (panicking
//! in tests, as an error in benchmarks), insisting on root, a median.

use std::process::Command;

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
