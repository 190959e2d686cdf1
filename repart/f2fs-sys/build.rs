//! Generates the bindings and sets up the static link against Debian's archives.
//!
//! The three archives are copied from `/usr/lib/<triple>/` into `OUT_DIR/lib` and only that
//! directory is put on the link search path: `/usr/lib/<triple>/` also holds glibc's `libc.a`,
//! and searching it pulls the wrong libc into cross and musl links.

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

/// Link order matters for static archives: the format library uses the core library, both use
/// libuuid.
const ARCHIVES: [&str; 3] = ["f2fs_format", "f2fs", "uuid"];

const FUNCTIONS: [&str; 7] = [
    "f2fs_init_configuration",
    "f2fs_get_device_info",
    "f2fs_get_f2fs_info",
    "f2fs_format_device",
    "f2fs_finalize_device",
    "f2fs_devs_are_umounted",
    "f2fs_release_sparse_resource",
];

fn var(name: &str) -> Result<String, Box<dyn Error>> {
    env::var(name).map_err(|e| format!("environment variable {name}: {e}").into())
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let arch = var("CARGO_CFG_TARGET_ARCH")?;
    let os = var("CARGO_CFG_TARGET_OS")?;
    let target_env = var("CARGO_CFG_TARGET_ENV")?;
    if os != "linux" || target_env != "gnu" {
        return Err(format!(
            "f2fs-sys links Debian's glibc-built archives and supports only *-linux-gnu targets, \
             not {arch}-{os}-{target_env}"
        )
        .into());
    }
    // The Debian multiarch triple of the target, e.g. x86_64-linux-gnu, aarch64-linux-gnu.
    let triple = format!("{arch}-linux-gnu");
    let cross = var("TARGET")? != var("HOST")?;

    let out_dir = PathBuf::from(var("OUT_DIR")?);
    link_archives(&triple, &out_dir.join("lib"))?;
    generate_bindings(&triple, cross, &out_dir.join("bindings.rs"))
}

fn link_archives(triple: &str, lib_dir: &Path) -> Result<(), Box<dyn Error>> {
    let system_dir = Path::new("/usr/lib").join(triple);
    fs::create_dir_all(lib_dir).map_err(|e| format!("create {}: {e}", lib_dir.display()))?;
    for name in ARCHIVES {
        let file = format!("lib{name}.a");
        let from = system_dir.join(&file);
        println!("cargo:rerun-if-changed={}", from.display());
        fs::copy(&from, lib_dir.join(&file)).map_err(|e| {
            format!(
                "copy {} (install libf2fs-format-dev, libf2fs-dev and uuid-dev for {triple}): {e}",
                from.display()
            )
        })?;
    }
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    for name in ARCHIVES {
        println!("cargo:rustc-link-lib=static={name}");
    }
    Ok(())
}

fn generate_bindings(triple: &str, cross: bool, out: &Path) -> Result<(), Box<dyn Error>> {
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg("-I/usr/include/f2fs-tools")
        // The ABI trap: without it struct f2fs_configuration is 1976 bytes, the library's 2104.
        .clang_arg("-DHAVE_LIBSELINUX=1")
        .allowlist_var("c")
        .allowlist_var("F2FS_FEATURE_.*")
        .allowlist_type("f2fs_config_func")
        .rustified_enum("f2fs_config_func")
        .derive_default(false)
        .layout_tests(true)
        // The workspace denies unsafe_op_in_unsafe_fn; bindgen's helper types need this.
        .wrap_unsafe_ops(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for function in FUNCTIONS {
        builder = builder.allowlist_function(function);
    }
    if cross {
        builder = builder
            .clang_arg(format!("--target={triple}"))
            .clang_arg(format!("-isystem/usr/{triple}/include"));
    }
    let bindings = builder
        .generate()
        .map_err(|e| format!("bindgen over wrapper.h for {triple}: {e}"))?;
    bindings
        .write_to_file(out)
        .map_err(|e| format!("write {}: {e}", out.display()))?;
    Ok(())
}
