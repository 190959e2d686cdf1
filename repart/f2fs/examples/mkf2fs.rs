//! A tiny mkfs: `mkf2fs DEVICE [LABEL] [--reproducible]`, formatting with the default features.
//! Used to check the static aarch64 build under `qemu-aarch64-static`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use atomix_f2fs::{FormatOptions, Reproducible, Uuid, format};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(device) = args.next().map(PathBuf::from) else {
        eprintln!("usage: mkf2fs DEVICE [LABEL] [--reproducible]");
        return ExitCode::from(2);
    };
    let mut opts = FormatOptions::new("data");
    for arg in args {
        if arg == "--reproducible" {
            opts.reproducible = Some(Reproducible {
                uuid: Uuid::from_u128(0x1111_1111_2222_3333_4444_5555_5555_5555),
                time: 1_700_000_000,
            });
        } else {
            opts.label = arg;
        }
    }
    let started = Instant::now();
    match format(&device, &opts) {
        Ok(()) => {
            println!(
                "formatted {} as f2fs in {} ms",
                device.display(),
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("mkf2fs: {}", atomix_errchain::OneLine(&err));
            ExitCode::FAILURE
        }
    }
}
