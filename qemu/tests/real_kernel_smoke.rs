//! One real boot: the cached Debian arm64 kernel with no initramfs and no disk must panic with
//! "VFS: Unable to mount root fs" (about 2 s under TCG). Needs `qemu-system-aarch64` and the
//! kernel from `scripts/setup.sh`; without them this test fails, it never passes silently.

use std::path::PathBuf;
use std::time::Duration;

use atomix_qemu::{Ending, QemuConfig, run};

/// `$ATOMIX_CACHE/Image`, or `<workspace>/.cache/Image`.
fn cached_kernel() -> PathBuf {
    let cache = std::env::var_os("ATOMIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache"));
    let kernel = cache.join("Image");
    assert!(
        kernel.is_file(),
        "the test kernel `{}` is missing: run scripts/setup.sh (or set ATOMIX_CACHE)",
        kernel.display()
    );
    kernel
}

#[test]
fn real_kernel_without_root_panics_in_vfs() {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-logs/smoke-no-root.log");
    let cfg = QemuConfig {
        kernel: Some(cached_kernel()),
        append: Some("console=ttyAMA0 panic=-1".into()),
        timeout: Duration::from_secs(60),
        console_log: Some(log.clone()),
        ..QemuConfig::default()
    };
    let mut lines = 0usize;
    let outcome = run(&cfg, &mut |_| lines += 1).unwrap();
    eprintln!(
        "real kernel smoke: {} after {:.2} s, {lines} console lines (log: {})",
        outcome.ending,
        outcome.wall.as_secs_f64(),
        log.display()
    );
    match &outcome.ending {
        Ending::Panic { message } => assert!(
            message.contains("VFS: Unable to mount root fs"),
            "unexpected panic `{message}`; console log: {}",
            log.display()
        ),
        other => panic!(
            "expected a VFS panic, got {other}; stderr: {}; console log: {}",
            outcome.stderr,
            log.display()
        ),
    }
    assert!(outcome.console.contains("Booting Linux on physical CPU"));
    assert!(lines > 50, "only {lines} console lines were streamed");
}
