//! Small helpers the privileged tests share: running a host tool, insisting on root.

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
