//! Helpers the disk-image tests share: running a host tool, deterministic noise.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// Runs `tool args...` in `dir`; returns stdout, panics with stderr on failure.
pub fn run(dir: &Path, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run`], stdout as text.
pub fn run_text(dir: &Path, tool: &str, args: &[&str]) -> String {
    String::from_utf8(run(dir, tool, args)).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64), so compression has real work to do.
pub fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
