//! Quadlet sync (spec 4.3, the original's `sync-quadlet CR ROOTFUL [ROOTLESS]`): copies the
//! rendered units of `<root>/quadlet/` named by `quadlet-runtime.json` into the rootful and the
//! rootless search paths, tracking what it owns in each with `.atomixos-managed-quadlets.json`.
//! Files there that the manifest does not list are never touched.
//!
//! Unlike the original, everything is validated (metadata, both manifests, the rootless target)
//! before the first write, so a refused sync changes nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fs::{Fs, FsError, Kind};
use super::tree::{TEMP_SUFFIX, write_atomic};

/// The runtime metadata rendering writes.
pub use atomix_config::root_files::QUADLET_RUNTIME as RUNTIME_METADATA;

/// The rendered units under the config root.
pub const QUADLET_DIR: &str = "quadlet";

/// The manifest in each target directory: a sorted JSON list of file names.
pub const MANIFEST: &str = ".atomixos-managed-quadlets.json";

/// The unit file suffixes sync accepts.
pub const SUFFIXES: &[&str] = &[
    ".build",
    ".container",
    ".image",
    ".kube",
    ".network",
    ".pod",
    ".volume",
];

/// Mode of the synced units and the manifest.
const UNIT_MODE: u32 = 0o644;

/// Mode of target directories sync creates.
const TARGET_DIR_MODE: u32 = 0o755;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// There is no runtime metadata.
    #[error("missing runtime metadata: {}", .0.display())]
    MissingMetadata(PathBuf),
    /// The runtime metadata is not JSON.
    #[error("invalid runtime metadata in {}", path.display())]
    MetadataJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The runtime metadata has the wrong shape.
    #[error("invalid runtime metadata structure in {}: {reason}", path.display())]
    MetadataShape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A unit file name is not a bare name with an allowed suffix.
    #[error("invalid runtime unit filename: {0:?}")]
    Filename(String),
    /// A target's manifest is not a JSON list of valid file names.
    #[error("invalid managed quadlet manifest: {}", .0.display())]
    Manifest(PathBuf),
    /// Rootless units exist and no rootless target was given.
    #[error("rootless target path is required when rootless units are present")]
    RootlessTargetRequired,
}

/// Where a unit runs: rendering's type, read back from `quadlet-runtime.json`.
pub use atomix_config::quadlet::Mode;

/// One unit of the runtime metadata (the fields sync needs; others are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeUnit {
    /// The unit file name (`web.container`).
    pub filename: String,
    /// Its mode.
    pub mode: Mode,
}

/// The targets: the rootful search path and, if any, the rootless one.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// `/etc/containers/systemd`.
    pub rootful: &'a Path,
    /// `appsvc`'s `~/.config/containers/systemd`.
    pub rootless: Option<&'a Path>,
}

/// What a sync leaves for the caller to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Services of rootful units that were managed before and are not now (to stop), in file
    /// name order.
    pub stale_rootful: Vec<String>,
    /// The same for rootless units.
    pub stale_rootless: Vec<String>,
    /// Rootful unit files written because they were new or differed (unchanged files are not
    /// rewritten), in file name order.
    pub changed_rootful: Vec<String>,
    /// The same for rootless unit files.
    pub changed_rootless: Vec<String>,
}

impl SyncReport {
    /// Whether the unit file `filename` of `mode` was new or changed.
    pub fn changed(&self, mode: Mode, filename: &str) -> bool {
        let list = match mode {
            Mode::Rootful => &self.changed_rootful,
            Mode::Rootless => &self.changed_rootless,
        };
        list.iter().any(|f| f == filename)
    }
}

/// Checks that `name` is a bare file name ending in one of [`SUFFIXES`] (with a stem).
pub fn validate_filename(name: &str) -> Result<(), SyncError> {
    let bad = || SyncError::Filename(name.to_owned());
    if name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.') {
        return Err(bad());
    }
    let ok = SUFFIXES
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s));
    if ok { Ok(()) } else { Err(bad()) }
}

/// The systemd service Quadlet makes of a unit file: `.container` and `.kube` → `<n>.service`,
/// the others → `<n>-<type>.service` (`.volume` → `<n>-volume.service`). `None` for other
/// names.
pub fn service_name(filename: &str) -> Option<String> {
    let (stem, suffix) = filename.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    match suffix {
        "container" | "kube" => Some(format!("{stem}.service")),
        "volume" | "network" | "build" | "image" | "pod" => {
            Some(format!("{stem}-{suffix}.service"))
        }
        _ => None,
    }
}

/// Reads and validates `<root>/quadlet-runtime.json`: an object whose `units` is a list of
/// objects, each with a valid `filename` and a `mode` of `rootful` or `rootless`.
pub fn load_runtime(fs: &dyn Fs, config_root: &Path) -> Result<Vec<RuntimeUnit>, SyncError> {
    let path = config_root.join(RUNTIME_METADATA);
    if !fs.exists(&path)? {
        return Err(SyncError::MissingMetadata(path));
    }
    let bytes = fs.read(&path)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|source| SyncError::MetadataJson {
            path: path.clone(),
            source,
        })?;
    let shape = |reason| SyncError::MetadataShape {
        path: path.clone(),
        reason,
    };
    let Some(units) = value.get("units").and_then(Value::as_array) else {
        return Err(shape("units must be a list in an object"));
    };
    let mut out = Vec::with_capacity(units.len());
    for unit in units {
        let Some(unit) = unit.as_object() else {
            return Err(shape("a unit is not an object"));
        };
        let Some(filename) = unit.get("filename").and_then(Value::as_str) else {
            return Err(shape("a unit has no filename"));
        };
        let mode = match unit.get("mode").and_then(Value::as_str) {
            Some("rootful") => Mode::Rootful,
            Some("rootless") => Mode::Rootless,
            _ => return Err(shape("a unit's mode is not rootful or rootless")),
        };
        validate_filename(filename)?;
        out.push(RuntimeUnit {
            filename: filename.to_owned(),
            mode,
        });
    }
    Ok(out)
}

/// Syncs the units of `config_root` into `targets` and returns the stale services computed
/// from the old manifests. For each target: every desired unit is replaced atomically (temp
/// file, fsync, mode 0644, rename, directory fsync), units of the old manifest no longer desired
/// are deleted, and the manifest is rewritten atomically.
pub fn sync(
    fs: &dyn Fs,
    config_root: &Path,
    targets: Targets<'_>,
) -> Result<SyncReport, SyncError> {
    let units = load_runtime(fs, config_root)?;
    let desired = |mode| -> BTreeSet<String> {
        units
            .iter()
            .filter(|u| u.mode == mode)
            .map(|u| u.filename.clone())
            .collect()
    };
    let (rootful, rootless) = (desired(Mode::Rootful), desired(Mode::Rootless));
    if targets.rootless.is_none() && !rootless.is_empty() {
        return Err(SyncError::RootlessTargetRequired);
    }
    let old_rootful = read_manifest(fs, targets.rootful)?;
    let old_rootless = match targets.rootless {
        Some(dir) => read_manifest(fs, dir)?,
        None => BTreeSet::new(),
    };
    let stale = |old: &BTreeSet<String>, new: &BTreeSet<String>| -> Vec<String> {
        old.difference(new)
            .filter_map(|f| service_name(f))
            .collect()
    };
    let source = config_root.join(QUADLET_DIR);
    let changed_rootful = sync_target(fs, &source, targets.rootful, &old_rootful, &rootful)?;
    let changed_rootless = match targets.rootless {
        Some(dir) => sync_target(fs, &source, dir, &old_rootless, &rootless)?,
        None => Vec::new(),
    };
    Ok(SyncReport {
        stale_rootful: stale(&old_rootful, &rootful),
        stale_rootless: stale(&old_rootless, &rootless),
        changed_rootful,
        changed_rootless,
    })
}

fn read_manifest(fs: &dyn Fs, dir: &Path) -> Result<BTreeSet<String>, SyncError> {
    let path = dir.join(MANIFEST);
    if !fs.exists(&path)? {
        return Ok(BTreeSet::new());
    }
    let bytes = fs.read(&path)?;
    let bad = || SyncError::Manifest(path.clone());
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(bad());
    };
    let mut out = BTreeSet::new();
    for item in items {
        let Value::String(name) = item else {
            return Err(bad());
        };
        validate_filename(&name)?;
        out.insert(name);
    }
    Ok(out)
}

/// Syncs one target directory; returns the unit files it wrote (new or different).
fn sync_target(
    fs: &dyn Fs,
    source: &Path,
    dir: &Path,
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> Result<Vec<String>, SyncError> {
    create_dir_all(fs, dir)?;
    // Temporary files an interrupted sync left (ours only: named after a unit or the manifest).
    for name in old.union(new).map(String::as_str).chain([MANIFEST]) {
        let temp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
        if fs.exists(&temp)? {
            fs.remove_file(&temp)?;
        }
    }
    let mut changed = Vec::new();
    for name in new {
        let contents = fs.read(&source.join(name))?;
        let target = dir.join(name);
        if same_file(fs, &target, &contents)? {
            continue;
        }
        write_atomic(fs, &target, UNIT_MODE, &contents)?;
        changed.push(name.clone());
    }
    for name in old.difference(new) {
        let path = dir.join(name);
        if fs.exists(&path)? {
            fs.remove_file(&path)?;
        }
    }
    let mut manifest = serde_json::to_vec_pretty(new).unwrap_or_else(|_| b"[]".to_vec());
    manifest.push(b'\n');
    write_atomic(fs, &dir.join(MANIFEST), UNIT_MODE, &manifest)?;
    Ok(changed)
}

/// Whether `path` is a regular file of mode [`UNIT_MODE`] holding exactly `contents`.
fn same_file(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<bool, FsError> {
    match fs.metadata(path)? {
        Some(meta) if meta.kind == Kind::File && meta.mode == UNIT_MODE => {
            Ok(fs.read(path)? == contents)
        }
        _ => Ok(false),
    }
}

fn create_dir_all(fs: &dyn Fs, dir: &Path) -> Result<(), FsError> {
    if fs.exists(dir)? {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(fs, parent)?;
    }
    fs.create_dir(dir, TARGET_DIR_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_bare_names_with_a_unit_suffix() {
        for ok in [
            "web.container",
            "a.b.volume",
            "x.pod",
            "k.kube",
            "i.image",
            "b.build",
        ] {
            validate_filename(ok).unwrap();
        }
        for bad in [
            "",
            ".container",
            "web",
            "web.service",
            "a/b.container",
            "..",
            "w.container.bak",
        ] {
            assert!(validate_filename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn services_follow_quadlet_naming() {
        assert_eq!(service_name("web.container").unwrap(), "web.service");
        assert_eq!(service_name("data.volume").unwrap(), "data-volume.service");
        assert_eq!(service_name("net.network").unwrap(), "net-network.service");
        assert_eq!(service_name("img.build").unwrap(), "img-build.service");
        assert_eq!(service_name("k.kube").unwrap(), "k.service");
        assert_eq!(service_name("p.pod").unwrap(), "p-pod.service");
        assert!(service_name("x.txt").is_none());
    }
}
