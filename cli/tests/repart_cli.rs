//! `atomix repart` end to end on sparse image files: exit codes, dry run writes nothing, apply,
//! second run "nothing to do", refusals leave the file as it was.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn atomix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atomix"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The first and last MiB (both GPT copies) and the MiB at 1168 MiB (where boot-b goes): what
/// a refused, dry or nothing-to-do run must leave alone. (The byte-for-byte checks of whole
/// images are in atomix-repart's T1 tests.)
fn file_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(p).unwrap();
    let n = f.metadata().unwrap().len();
    let mut out = Vec::new();
    for at in [0, 1168 << 20, n - (1 << 20)] {
        let mut buf = vec![0u8; 1 << 20];
        f.read_exact_at(&mut buf, at.min(n - (1 << 20))).unwrap();
        out.extend(buf);
    }
    out
}

/// The flashed image (boot-a, rootfs-a, backup GPT after rootfs-a), extended to `bytes`.
fn flashed(path: &Path, bytes: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(1169 << 20).unwrap();
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: gpt\nfirst-lba: 32768\n\
              start=32768, size=262144, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, name=\"boot-a\"\n\
              start=294912, size=2097152, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=\"rootfs-a\"\n",
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    f.set_len(bytes).unwrap();
}

#[test]
fn missing_target_is_a_usage_error_naming_it() {
    let o = atomix(&["repart", "--board", "rock64", "/nonexistent/disk.img"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/disk.img"));
}

#[test]
fn refusals_exit_3_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let o = atomix(&["repart", "--board", "rock64", blank.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--empty=allow"), "{}", text(&o));
    let o = atomix(&[
        "repart",
        "--board",
        "rock64",
        "--empty=allow",
        "--dry-run=no",
        blank.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("bytes too small"), "{}", text(&o));
    assert!(file_bytes(&blank).iter().all(|&b| b == 0));

    let small = dir.path().join("small.img");
    flashed(&small, 2 << 30);
    let before = file_bytes(&small);
    let o = atomix(&[
        "repart",
        "--board",
        "rock64",
        "--dry-run=no",
        small.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(file_bytes(&small), before);
}

#[test]
fn dry_run_apply_and_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    flashed(&img, 8 << 30);
    let path = img.to_str().unwrap();
    let before = file_bytes(&img);
    let o = atomix(&["repart", "--board", "rock64", path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("create") && text(&o).contains("dry run"),
        "{}",
        text(&o)
    );
    assert_eq!(file_bytes(&img), before, "a dry run wrote");

    let o = atomix(&["repart", "--board", "rock64", "--dry-run=no", path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("partition table written"), "{}", text(&o));

    let o = atomix(&["repart", "--board", "rock64", "--json", path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["plan"]["nothing_to_do"], true);
    assert_eq!(v["pending"]["table"], false);
    assert_eq!(v["plan"]["actions"].as_array().unwrap().len(), 5);

    let after = file_bytes(&img);
    let o = atomix(&["repart", "--board", "rock64", "--dry-run=no", path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    assert!(file_bytes(&img) == after, "nothing to do wrote");
}
