//! A set of files to write, as rendering produces them and the config root store writes them:
//! relative paths (validated), modes and contents. No I/O here.

use std::collections::BTreeMap;
use std::fmt;

/// A relative path inside a config root (or another target directory): at least one component,
/// each a plain name (no empty, `.` or `..` component, no NUL), joined by `/`, no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

/// Why a string is not a [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    /// The path is empty.
    #[error("empty path")]
    Empty,
    /// The path starts with `/`.
    #[error("{0:?} is absolute")]
    Absolute(String),
    /// A component is empty, `.` or `..`, or holds a NUL.
    #[error("{path:?} has a bad component {component:?}")]
    BadComponent {
        /// The path.
        path: String,
        /// The offending component.
        component: String,
    },
}

impl RelPath {
    /// Validates `path`.
    pub fn new(path: &str) -> Result<Self, RelPathError> {
        if path.is_empty() {
            return Err(RelPathError::Empty);
        }
        if path.starts_with('/') {
            return Err(RelPathError::Absolute(path.to_owned()));
        }
        for component in path.split('/') {
            if component.is_empty()
                || component == "."
                || component == ".."
                || component.contains('\0')
            {
                return Err(RelPathError::BadComponent {
                    path: path.to_owned(),
                    component: component.to_owned(),
                });
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The path as a string (`a/b/c`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, first to last.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent directories, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(i, _)| &self.0[..i])
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Permission bits (`0o600`, `0o644`).
    pub mode: u32,
    /// The whole contents.
    pub contents: Vec<u8>,
}

/// Files by path. Directories are implied by the paths (created `0o700` unless the writer is
/// told otherwise); an ordered map, so every walk is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    files: BTreeMap<RelPath, File>,
}

impl FileSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: RelPath, mode: u32, contents: impl Into<Vec<u8>>) {
        self.files.insert(
            path,
            File {
                mode,
                contents: contents.into(),
            },
        );
    }

    /// The file at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&File> {
        RelPath::new(path).ok().and_then(|p| self.files.get(&p))
    }

    /// Every file, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &File)> {
        self.files.iter()
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_plain_names_joined_by_slashes() {
        assert_eq!(
            RelPath::new("quadlet/web.container").unwrap().as_str(),
            "quadlet/web.container"
        );
        assert_eq!(RelPath::new(""), Err(RelPathError::Empty));
        assert!(matches!(
            RelPath::new("/etc/passwd"),
            Err(RelPathError::Absolute(_))
        ));
        for bad in ["a/../b", "./a", "a//b", "a/", "..", "a/\0"] {
            assert!(
                matches!(RelPath::new(bad), Err(RelPathError::BadComponent { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parents_are_listed_outermost_first() {
        let p = RelPath::new("files/app/config.yaml").unwrap();
        assert_eq!(p.parents().collect::<Vec<_>>(), ["files", "files/app"]);
        assert_eq!(RelPath::new("users.json").unwrap().parents().count(), 0);
    }

    #[test]
    fn a_set_is_ordered_by_path() {
        let mut set = FileSet::new();
        set.insert(RelPath::new("users.json").unwrap(), 0o600, "{}\n");
        set.insert(RelPath::new("admin-signers").unwrap(), 0o600, "k\n");
        let paths: Vec<_> = set.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["admin-signers", "users.json"]);
        assert_eq!(set.get("users.json").unwrap().contents, b"{}\n");
        assert!(set.get("../x").is_none());
    }
}
