//! The config root and its siblings (spec 3.1), the safety rules for where it may be (3.2), and
//! the lock that serialises every mutation across the API, the CLI and the services.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The production config root.
pub const DEFAULT_CONFIG_ROOT: &str = atomix_config::validate::DEVICE_CONFIG_ROOT;

/// The variable that, set to `1`, allows a config root other than [`DEFAULT_CONFIG_ROOT`].
pub const ALLOW_UNSAFE_ENV: &str = "ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT";

/// The contents of the promotion marker.
pub const MARKER_CONTENTS: &[u8] = b"pending\n";

/// The active config, whose presence means provisioned.
pub use atomix_config::root_files::CONFIG_TOML;

/// Why a path may not be the config root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// `/`, or a path that resolves to it.
    #[error("unsafe config root: {}", .0.display())]
    Unsafe(PathBuf),
    /// The root is a symlink.
    #[error("config root must not be a symlink: {}", .0.display())]
    Symlink(PathBuf),
    /// Not `/data/config` and the unsafe override is not set.
    #[error("config root must be /data/config")]
    NotDefault(PathBuf),
    /// The path could not be examined.
    #[error("cannot examine config root {}", path.display())]
    Examine {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A validated config root: `<parent>/<name>` and the sibling paths promotion uses. For the
/// production root these are `/data/config`, `/data/config-candidate`, `/data/config-rollback`,
/// `/data/config.atomixos-promotion-pending` and `/data/.config.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRoot {
    active: PathBuf,
    parent: PathBuf,
    name: String,
}

impl ConfigRoot {
    /// Validates `path` (spec 3.2): it is made absolute against `cwd` and resolved like the
    /// original (existing ancestors through their symlinks, `..` after that), must not be `/`,
    /// must not itself be a symlink, and must be `/data/config` unless `env` returns `"1"` for
    /// [`ALLOW_UNSAFE_ENV`]. `env` is the environment lookup (`std::env::var` in production).
    pub fn validate(
        path: &Path,
        cwd: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RootError> {
        let absolute = cwd.join(path);
        match fs::symlink_metadata(&absolute) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(RootError::Symlink(path.to_owned()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RootError::Examine {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let resolved = resolve(&absolute).map_err(|source| RootError::Examine {
            path: path.to_owned(),
            source,
        })?;
        let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
            return Err(RootError::Unsafe(path.to_owned()));
        };
        let Some(name) = name.to_str() else {
            return Err(RootError::Unsafe(path.to_owned()));
        };
        if env(ALLOW_UNSAFE_ENV).as_deref() != Some("1")
            && resolved != Path::new(DEFAULT_CONFIG_ROOT)
        {
            return Err(RootError::NotDefault(resolved));
        }
        Ok(Self {
            parent: parent.to_owned(),
            name: name.to_owned(),
            active: resolved,
        })
    }

    /// A root at `path` without the checks, for tests and tools that already validated it.
    /// `path` must have a parent and a UTF-8 final component, else `None`.
    pub fn unchecked(path: &Path) -> Option<Self> {
        let parent = path.parent()?;
        let name = path.file_name()?.to_str()?;
        Some(Self {
            active: path.to_owned(),
            parent: parent.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The active root (`/data/config`).
    pub fn active(&self) -> &Path {
        &self.active
    }

    /// The directory holding the root and its siblings (`/data`).
    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// The staging root (`/data/config-candidate`).
    pub fn candidate(&self) -> PathBuf {
        self.sibling(&format!("{}-candidate", self.name))
    }

    /// The previous active root during a promotion (`/data/config-rollback`).
    pub fn rollback(&self) -> PathBuf {
        self.sibling(&format!("{}-rollback", self.name))
    }

    /// The promotion marker (`/data/config.atomixos-promotion-pending`, content `pending\n`).
    pub fn marker(&self) -> PathBuf {
        self.sibling(&format!("{}.atomixos-promotion-pending", self.name))
    }

    /// The lock file (`/data/.config.lock`).
    pub fn lock_file(&self) -> PathBuf {
        self.sibling(&format!(".{}.lock", self.name))
    }

    /// Where a tree is moved to be deleted (`/data/.config.atomixos-removing`): a rename there
    /// takes a root away in one step, so a crash during the deletion never leaves half a tree
    /// where recovery would read it. Recovery deletes whatever is left there. Not in the
    /// original.
    pub fn trash(&self) -> PathBuf {
        self.sibling(&format!(".{}.atomixos-removing", self.name))
    }

    /// `config.toml` in the active root.
    pub fn active_config(&self) -> PathBuf {
        self.active.join(CONFIG_TOML)
    }

    fn sibling(&self, name: &str) -> PathBuf {
        self.parent.join(name)
    }

    /// Takes the exclusive lock on [`Self::lock_file`] (a blocking `flock`, as the original's,
    /// so both serialise against each other), creating the parent directory and the file if
    /// needed. The lock is held until the guard is dropped.
    pub fn lock(&self) -> Result<LockGuard, RootError> {
        let path = self.lock_file();
        let err = |source| RootError::Lock {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.parent).map_err(err)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(err)?;
        file.lock().map_err(err)?;
        Ok(LockGuard { _file: file })
    }
}

/// Holds the config root lock; dropping it (closing the file) releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: fs::File,
}

/// Like Python's `Path.resolve(strict=False)`: the longest existing prefix through
/// `canonicalize`, the rest lexically.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                match fs::canonicalize(&out) {
                    Ok(real) => out = real,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsafe_ok(_: &str) -> Option<String> {
        Some("1".to_owned())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_siblings_are_named_after_the_root() {
        let root = ConfigRoot::validate(Path::new("/data/config"), Path::new("/"), no_env).unwrap();
        assert_eq!(root.active(), Path::new("/data/config"));
        assert_eq!(root.candidate(), Path::new("/data/config-candidate"));
        assert_eq!(root.rollback(), Path::new("/data/config-rollback"));
        assert_eq!(
            root.marker(),
            Path::new("/data/config.atomixos-promotion-pending")
        );
        assert_eq!(root.lock_file(), Path::new("/data/.config.lock"));
        assert_eq!(root.active_config(), Path::new("/data/config/config.toml"));
    }

    #[test]
    fn only_data_config_without_the_override() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("data/config");
        assert!(matches!(
            ConfigRoot::validate(&other, Path::new("/"), no_env),
            Err(RootError::NotDefault(_))
        ));
        let zero = |_: &str| Some("0".to_owned());
        assert!(ConfigRoot::validate(&other, Path::new("/"), zero).is_err());
        let root = ConfigRoot::validate(&other, Path::new("/"), unsafe_ok).unwrap();
        assert_eq!(
            root.rollback(),
            dir.path()
                .canonicalize()
                .unwrap()
                .join("data/config-rollback")
        );
    }

    #[test]
    fn root_symlinks_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ConfigRoot::validate(Path::new("/"), Path::new("/"), unsafe_ok),
            Err(RootError::Unsafe(_))
        ));
        assert!(matches!(
            ConfigRoot::validate(Path::new("/a/.."), Path::new("/"), unsafe_ok),
            Err(RootError::Unsafe(_))
        ));
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        assert!(matches!(
            ConfigRoot::validate(&dir.path().join("link"), Path::new("/"), unsafe_ok),
            Err(RootError::Symlink(_))
        ));
        // A symlinked ancestor is resolved, as the original does.
        let via_link =
            ConfigRoot::validate(&dir.path().join("link/config"), Path::new("/"), unsafe_ok)
                .unwrap();
        assert_eq!(
            via_link.active(),
            real.canonicalize().unwrap().join("config")
        );
        let relative =
            ConfigRoot::validate(Path::new("real/./x/../config"), dir.path(), unsafe_ok).unwrap();
        assert_eq!(relative.active(), via_link.active());
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let root = ConfigRoot::unchecked(&dir.path().join("data/config")).unwrap();
        let guard = root.lock().unwrap();
        let file = fs::File::open(root.lock_file()).unwrap();
        assert!(file.try_lock().is_err());
        drop(guard);
        file.try_lock().unwrap();
    }
}
