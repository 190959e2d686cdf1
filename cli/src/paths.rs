//! Where the default inputs live: the set-up cache (kernel, busybox) and the aarch64 `/init`.
//!
//! Both are found relative to the running `atomix` executable when it runs from a cargo target
//! directory (`<target>/release/atomix`), or through `ATOMIX_CACHE` / `ATOMIX_INIT`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The cargo target directory this executable was built into, if it runs from one.
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // <target>/<profile>/atomix
    Some(exe.parent()?.parent()?.to_owned())
}

/// The set-up cache: `$ATOMIX_CACHE`, else `<workspace>/.cache` beside the target directory.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ATOMIX_CACHE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let guess = target_dir().and_then(|t| Some(t.parent()?.join(".cache")));
    match guess {
        Some(dir) if dir.is_dir() => Ok(dir),
        _ => bail!(
            "cannot find the set-up cache (kernel package, busybox): run scripts/setup.sh, \
             set ATOMIX_CACHE, or pass the input explicitly"
        ),
    }
}

/// The unpacked Debian kernel package in the cache.
pub fn default_modules_root() -> Result<PathBuf> {
    existing(cache_dir()?.join("kernel"), "kernel package (--modules)")
}

/// Static aarch64 busybox from the cache.
pub fn default_busybox() -> Result<PathBuf> {
    existing(
        cache_dir()?.join("busybox/bin/busybox"),
        "busybox (--busybox)",
    )
}

/// The static aarch64 `/init`: `$ATOMIX_INIT`, else `<target>/aarch64-unknown-linux-gnu/init/init`.
pub fn default_init() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ATOMIX_INIT").filter(|v| !v.is_empty()) {
        return existing(PathBuf::from(path), "/init (ATOMIX_INIT)");
    }
    let path = target_dir()
        .map(|t| t.join("aarch64-unknown-linux-gnu/init/init"))
        .context("cannot locate the atomix executable")?;
    existing(path, "/init (--init)").context(
        "build it with `cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd`",
    )
}

fn existing(path: PathBuf, what: &str) -> Result<PathBuf> {
    if Path::new(&path).exists() {
        Ok(path)
    } else {
        bail!("default {what} not found at {}", path.display())
    }
}
