//! Helpers shared by the initramfs tests.

#![allow(dead_code)]

use std::error::Error;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use atomix_image::initramfs::Compression;

/// A fake `/init`: a valid ELF64 aarch64 executable header (no program headers) followed by
/// pseudo-random bytes up to `size`.
pub fn fake_init(dir: &Path, size: usize) -> PathBuf {
    let mut data = vec![0u8; 64];
    data[..4].copy_from_slice(b"\x7fELF");
    data[4] = 2; // ELFCLASS64
    data[5] = 1; // little endian
    data[6] = 1; // EV_CURRENT
    data[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    data[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    data[20..24].copy_from_slice(&1u32.to_le_bytes());
    data[52..54].copy_from_slice(&64u16.to_le_bytes());
    data[54..56].copy_from_slice(&56u16.to_le_bytes());
    // Half compressible text, half noise, roughly like code.
    let mut x: u32 = 0x1234_5678;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if data.len() % 64 < 32 {
            data.push((x & 0xff) as u8);
        } else {
            data.push(b"init text "[data.len() % 10]);
        }
    }
    let path = dir.join("init");
    std::fs::write(&path, &data).unwrap();
    path
}

/// The `Display` of an error and all its sources, `: ` separated.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    atomix_errchain::one_line(e)
}

/// Decompress an initramfs with the real tool (`zstd -dc` / `gzip -dc`), checking it exits 0.
pub fn decompress_with_tool(path: &Path, compression: Compression) -> Vec<u8> {
    let tool = match compression {
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
        Compression::None => return std::fs::read(path).unwrap(),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install it: scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "{tool} -dc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `<tool> -t <path>` must succeed.
pub fn integrity_check(path: &Path, compression: Compression) {
    let tool = match compression {
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
        Compression::None => return,
    };
    let out = Command::new(tool)
        .arg("-t")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} -t {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cpio -itv` of an uncompressed archive: one line per entry.
pub fn cpio_itv(archive: &[u8]) -> Vec<String> {
    let mut child = Command::new("cpio")
        .args(["-itv", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run cpio (install it: scripts/setup.sh): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "cpio -itv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// The `cpio -itv` line for entry `name` (the name is the last field, or precedes ` -> `).
pub fn itv_line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find(|l| {
            let entry = l.split(" -> ").next().unwrap_or(l);
            entry.split_whitespace().last() == Some(name)
        })
        .unwrap_or_else(|| panic!("`{name}` not in cpio -itv listing:\n{}", lines.join("\n")))
}

/// Files directly in `dir` (names), to check nothing was left behind.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
