//! Where the original AtomixOS provisioner is (`<cache>/orig-venv`, installed by
//! `scripts/setup.sh` from `../shared/anchors`) and how it is told where its schema is.

use std::path::{Path, PathBuf};

/// The workspace's top.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The original's `atomixos-provision`.
pub fn original() -> PathBuf {
    let cache = std::env::var_os("ATOMIX_CACHE")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| workspace().join(".cache"), |p| workspace().join(p));
    let bin = cache.join("orig-venv/bin/atomixos-provision");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/setup.sh",
        bin.display()
    );
    bin
}

/// `ATOMIXOS_CONFIG_SCHEMA` for the original.
pub fn schema() -> PathBuf {
    workspace().join("../shared/anchors/atomixos-provision/config.schema.json")
}
