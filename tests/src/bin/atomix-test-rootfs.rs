//! `atomix-test-rootfs DIR`: build the probe rootfs (static aarch64 busybox + `tests/rootfs/`)
//! that the demo and the T3 tests boot as the real init.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: atomix-test-rootfs DIR");
        return ExitCode::from(2);
    };
    let result = atomix_systests::Artifacts::locate()
        .and_then(|a| atomix_systests::build_test_rootfs(&dir, &a.busybox_aarch64));
    match result {
        Ok(()) => {
            println!("{}: probe rootfs ready", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("atomix-test-rootfs: {e}");
            ExitCode::from(1)
        }
    }
}
