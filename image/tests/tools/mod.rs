//! Helpers the disk-image tests share: running a host tool, deterministic noise.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// `sfdisk -d disk.img` of the image layout (DESIGN section 3: boot-a and rootfs-a only) built
/// with the tests' seed: the plain disk image and the flashable one share it.
pub const GOLDEN_SFDISK: &str = "\
label: gpt
label-id: 4753FCBA-E1E2-4CAA-8266-732DEB341872
device: disk.img
unit: sectors
first-lba: 32768
last-lba: 2394078
sector-size: 512

disk.img1 : start=       32768, size=      262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=7F163877-B3A5-431A-AB39-AE2F8C8FF474, name=\"boot-a\", attrs=\"LegacyBIOSBootable\"
disk.img2 : start=      294912, size=     2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=18C569BA-E30B-4636-8B68-B09DA2ED74B7, name=\"rootfs-a\"
";

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
