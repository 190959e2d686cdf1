//! Reading what an import or a validation is given from a file: a `config.toml` or a bundle
//! (spec 2.4), within the upload limit. Telling them apart and unpacking the bytes is
//! [`atomix_config::source`]'s.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use atomix_config::bundle::{Caller, Limits};
pub use atomix_config::source::Source;

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file cannot be opened or read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a config (a plain config.toml that is not UTF-8, a refused bundle).
    #[error("{}", .path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: atomix_config::source::SourceError,
    },
}

/// Reads `path` as the CLI does: a name ending `.toml` is plain TOML, anything else must be a
/// gzip or zstd bundle. At most `limits.max_upload_bytes` (and one byte more, to tell) are read.
pub fn read(path: &Path, limits: &Limits) -> Result<Source, SourceError> {
    let read_err = |source| SourceError::Read {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(limits.max_upload_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let name = path.file_name().and_then(|n| n.to_str());
    Source::from_bytes(&bytes, name, Caller::Cli, limits).map_err(|source| SourceError::Refused {
        path: path.to_owned(),
        source,
    })
}
