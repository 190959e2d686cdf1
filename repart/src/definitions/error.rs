//! [`DefinitionError`]: why a definitions directory or file was refused, naming the file, line
//! and key.

use std::io;
use std::path::PathBuf;

/// Failures loading or parsing definitions. `file` is the path as given (or the name passed to
/// [`parse_definition`](super::parse_definition)), `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The definitions directory cannot be listed.
    #[error("cannot list the definitions directory {}", path.display())]
    ReadDir {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A definition file cannot be read.
    #[error("cannot read the definition {}", path.display())]
    ReadFile {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A `<file>.d/` drop-in directory exists (not implemented).
    #[error("{}: drop-in directories are not implemented", path.display())]
    DropInDirectory {
        /// The file or directory.
        path: PathBuf,
    },
    /// A line ends in a backslash (line continuation is not implemented).
    #[error("{file}:{line}: line continuation with a trailing backslash is not implemented")]
    Continuation {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
    },
    /// A line is neither a section header, `Key=Value` nor a comment.
    #[error("{file}:{line}: expected a [Partition] section header, a Key=Value line or a comment")]
    Syntax {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
    },
    /// A section other than `[Partition]`.
    #[error("{file}:{line}: unknown section [{section}] (only [Partition] is allowed)")]
    UnknownSection {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The section name.
        section: String,
    },
    /// A second `[Partition]` section in the same file.
    #[error("{file}:{line}: a second [Partition] section (one partition per file)")]
    SecondSection {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
    },
    /// A key before the `[Partition]` section.
    #[error("{file}:{line}: {key}= outside the [Partition] section")]
    OutsideSection {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The key.
        key: String,
    },
    /// A systemd-repart key atomix-repart does not implement.
    #[error(
        "{file}:{line}: {key}= is a systemd-repart setting that atomix-repart does not implement"
    )]
    NotImplemented {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The key.
        key: String,
    },
    /// A key systemd-repart does not know either.
    #[error("{file}:{line}: unknown key {key}=")]
    UnknownKey {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The key.
        key: String,
    },
    /// A value that does not parse or is out of range for its key.
    #[error("{file}:{line}: invalid {key}={value:?}: {reason}")]
    InvalidValue {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `Format=` names a file system other than vfat, f2fs or off.
    #[error("{file}:{line}: Format={value} is not implemented (only vfat, f2fs and off are)")]
    FormatNotImplemented {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The value as written.
        value: String,
    },
    /// The file has no `Type=`.
    #[error("{file}: Type= is missing")]
    MissingType {
        /// The definition file (its name).
        file: String,
    },
    /// A minimum (`SizeMinBytes=`, `PaddingMinBytes=`) above its maximum.
    #[error("{file}:{line}: {min_key}= ({min} bytes) is larger than {max_key}= ({max} bytes)")]
    MinAboveMax {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
        /// The minimum's key.
        min_key: &'static str,
        /// The minimum in bytes.
        min: u64,
        /// The maximum's key.
        max_key: &'static str,
        /// The maximum in bytes.
        max: u64,
    },
    /// `MakeDirectories=` without `Format=`.
    #[error(
        "{file}:{line}: MakeDirectories= needs Format= (systemd would pick ext4, which is not \
         implemented)"
    )]
    DirectoriesWithoutFormat {
        /// The definition file (its name).
        file: String,
        /// Line number, from 1.
        line: usize,
    },
}
