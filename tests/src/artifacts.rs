//! Where the build artifacts the system tests boot with live, and how to make a missing one.

use std::path::{Path, PathBuf};

use crate::HarnessError;

/// How to make the artifacts that `scripts/setup.sh` unpacks into the cache.
const MAKE_CACHE: &str = "scripts/setup.sh";
/// How to make the static aarch64 `/init`.
const MAKE_INIT: &str =
    "cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd";

/// How to make the real root filesystem.
const MAKE_ROOTFS: &str = "scripts/rootfs.sh --board qemu-virt";

/// A root filesystem built by `scripts/rootfs.sh`.
#[derive(Debug, Clone, PartialEq)]
pub struct RealRootfs {
    /// The squashfs.
    pub squashfs: PathBuf,
    /// Its build manifest.
    pub manifest: serde_json::Value,
}

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (a relative value counts from the workspace
/// root) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    resolve_dir(
        &workspace_root(),
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        "target",
    )
}

/// `value` (made absolute against `root`), or `root/default`.
fn resolve_dir(root: &Path, value: Option<PathBuf>, default: &str) -> PathBuf {
    match value.filter(|value| !value.as_os_str().is_empty()) {
        Some(value) => root.join(value),
        None => root.join(default),
    }
}

/// The artifacts a test boot is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    /// The workspace root.
    pub root: PathBuf,
    /// The cache: `$ATOMIX_CACHE` or `<root>/.cache`.
    pub cache: PathBuf,
    /// The cargo target directory (see [`target_dir`]).
    pub target_dir: PathBuf,
    /// `<cache>/Image`: the uncompressed Debian arm64 kernel.
    pub kernel_image: PathBuf,
    /// `<cache>/kernel`: the unpacked kernel package (`lib/modules/<release>/...`).
    pub modules_root: PathBuf,
    /// `<cache>/busybox/bin/busybox`: static aarch64 busybox.
    pub busybox_aarch64: PathBuf,
    /// `<target>/aarch64-unknown-linux-gnu/init/init`: the static aarch64 `/init`.
    pub init_binary: PathBuf,
}

impl Artifacts {
    /// Finds the artifacts from the environment (`ATOMIX_CACHE`, `CARGO_TARGET_DIR`) and checks
    /// that each exists.
    ///
    /// # Errors
    /// [`HarnessError::MissingArtifact`] for the first one missing, naming the command that
    /// makes it.
    pub fn locate() -> Result<Self, HarnessError> {
        let artifacts = Self::from_env();
        artifacts.check()?;
        Ok(artifacts)
    }

    /// The artifact paths the environment (`ATOMIX_CACHE`, `CARGO_TARGET_DIR`) gives, none
    /// checked: for tests that need only some of them (such as [`Artifacts::real_rootfs`]),
    /// which check those.
    pub fn from_env() -> Self {
        let root = workspace_root();
        let cache = resolve_dir(
            &root,
            std::env::var_os("ATOMIX_CACHE").map(PathBuf::from),
            ".cache",
        );
        Self::at(&root, &cache, &target_dir())
    }

    /// The artifact paths for a given root, cache and target directory (nothing is checked).
    pub fn at(root: &Path, cache: &Path, target_dir: &Path) -> Self {
        Self {
            root: root.to_owned(),
            cache: cache.to_owned(),
            target_dir: target_dir.to_owned(),
            kernel_image: cache.join("Image"),
            modules_root: cache.join("kernel"),
            busybox_aarch64: cache.join("busybox/bin/busybox"),
            init_binary: target_dir.join("aarch64-unknown-linux-gnu/init/init"),
        }
    }

    /// Checks that every artifact exists.
    ///
    /// # Errors
    /// [`HarnessError::MissingArtifact`] for the first one missing.
    pub fn check(&self) -> Result<(), HarnessError> {
        let wanted = [
            ("kernel Image", &self.kernel_image, MAKE_CACHE, true),
            ("kernel modules tree", &self.modules_root, MAKE_CACHE, false),
            ("busybox (aarch64)", &self.busybox_aarch64, MAKE_CACHE, true),
            ("aarch64 /init", &self.init_binary, MAKE_INIT, true),
        ];
        for (what, path, make, is_file) in wanted {
            let present = if is_file {
                path.is_file()
            } else {
                path.is_dir()
            };
            if !present {
                return Err(HarnessError::MissingArtifact {
                    what,
                    path: path.clone(),
                    make,
                });
            }
        }
        Ok(())
    }

    /// The AtomixOS root filesystem `scripts/rootfs.sh --board <board>` built, as it
    /// published it: `<cache>/rootfs-<board>.squashfs` and its manifest `<cache>/rootfs-<board>.json`
    /// (size, sha256, keys, build times, packages).
    ///
    /// # Errors
    /// [`HarnessError::MissingArtifact`] when either is missing; [`HarnessError::Manifest`]
    /// when the manifest does not parse.
    pub fn real_rootfs(&self, board: &str) -> Result<RealRootfs, HarnessError> {
        let squashfs = self.cache.join(format!("rootfs-{board}.squashfs"));
        let manifest_path = self.cache.join(format!("rootfs-{board}.json"));
        for (what, path) in [
            ("root filesystem squashfs", &squashfs),
            ("root filesystem manifest", &manifest_path),
        ] {
            if !path.is_file() {
                return Err(HarnessError::MissingArtifact {
                    what,
                    path: path.clone(),
                    make: MAKE_ROOTFS,
                });
            }
        }
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| HarnessError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = serde_json::from_str(&text).map_err(|source| HarnessError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        Ok(RealRootfs { squashfs, manifest })
    }

    /// The checked-in overlay of the test rootfs (`<root>/tests/rootfs`).
    pub fn rootfs_overlay(&self) -> PathBuf {
        self.root.join("tests/rootfs")
    }

    /// A fresh scratch directory under `<target>/systest-tmp` (on the same disk as the build,
    /// not a possibly small tmpfs; removed when dropped).
    ///
    /// # Errors
    /// [`HarnessError::CreateDir`] if it cannot be made.
    pub fn scratch_dir(&self, prefix: &str) -> Result<tempfile::TempDir, HarnessError> {
        let parent = self.target_dir.join("systest-tmp");
        std::fs::create_dir_all(&parent).map_err(|source| HarnessError::CreateDir {
            path: parent.clone(),
            source,
        })?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .map_err(|source| HarnessError::CreateDir {
                path: parent,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn paths_follow_the_layout() {
        let a = Artifacts::at(Path::new("/w"), Path::new("/w/.cache"), Path::new("/t"));
        assert_eq!(a.kernel_image, Path::new("/w/.cache/Image"));
        assert_eq!(a.modules_root, Path::new("/w/.cache/kernel"));
        assert_eq!(
            a.busybox_aarch64,
            Path::new("/w/.cache/busybox/bin/busybox")
        );
        assert_eq!(
            a.init_binary,
            Path::new("/t/aarch64-unknown-linux-gnu/init/init")
        );
        assert_eq!(a.rootfs_overlay(), Path::new("/w/tests/rootfs"));
    }

    #[test]
    fn dirs_from_the_environment_are_resolved_against_the_root() {
        let root = Path::new("/w");
        assert_eq!(resolve_dir(root, None, "target"), Path::new("/w/target"));
        assert_eq!(
            resolve_dir(root, Some("".into()), "target"),
            Path::new("/w/target")
        );
        assert_eq!(
            resolve_dir(root, Some("/abs/t".into()), "target"),
            Path::new("/abs/t")
        );
        assert_eq!(
            resolve_dir(root, Some("rel".into()), "target"),
            Path::new("/w/rel")
        );
        assert!(workspace_root().join("tests/Cargo.toml").is_file());
    }

    #[test]
    fn a_missing_artifact_names_itself_and_the_command_that_makes_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let target = dir.path().join("target");
        let a = Artifacts::at(dir.path(), &cache, &target);

        let err = a.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "kernel Image `{}` is missing: make it with `scripts/setup.sh`",
                cache.join("Image").display()
            )
        );

        fs::create_dir_all(cache.join("kernel")).unwrap();
        fs::create_dir_all(cache.join("busybox/bin")).unwrap();
        fs::write(cache.join("Image"), b"kernel").unwrap();
        fs::write(cache.join("busybox/bin/busybox"), b"bb").unwrap();
        let err = a.check().unwrap_err();
        assert!(
            matches!(&err, HarnessError::MissingArtifact { what: "aarch64 /init", make, .. }
                if make.contains("--profile init")),
            "{err}"
        );

        fs::create_dir_all(target.join("aarch64-unknown-linux-gnu/init")).unwrap();
        fs::write(target.join("aarch64-unknown-linux-gnu/init/init"), b"elf").unwrap();
        a.check().unwrap();
    }

    #[test]
    fn scratch_dirs_live_under_the_target_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::at(dir.path(), dir.path(), &dir.path().join("target"));
        let scratch = a.scratch_dir("t3-").unwrap();
        assert!(
            scratch
                .path()
                .starts_with(dir.path().join("target/systest-tmp"))
        );
        assert!(scratch.path().is_dir());
    }
}
