//! Reading what an import or a validation is given: a `config.toml` or a bundle (spec 2.4),
//! from a file or an upload's bytes, within the upload limit, into the config text and the
//! `files/` payload.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use atomix_config::bundle::{Bundle, BundleError, Caller, Input, Limits};
use atomix_config::files::FileSet;

/// A read source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The config.toml text (from the file, or from the bundle).
    pub toml: String,
    /// The bundle's `files/` payload; `None` for a plain config.toml.
    pub payload: Option<FileSet>,
}

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
    /// The plain config.toml is not UTF-8.
    #[error("{}: config.toml is not UTF-8 text", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The bundle (or the upload) is refused.
    #[error("{}", .path.display())]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BundleError,
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
    from_bytes(bytes, path, name, Caller::Cli, limits)
}

/// Reads a source from its bytes, as `caller` tells a config.toml from a bundle (the API: a
/// bundle by magic or by `name`, anything else plain TOML). `path` names the source in errors.
pub fn from_bytes(
    bytes: Vec<u8>,
    path: &Path,
    name: Option<&str>,
    caller: Caller,
    limits: &Limits,
) -> Result<Source, SourceError> {
    let bundle_err = |source| SourceError::Bundle {
        path: path.to_owned(),
        source,
    };
    match Input::detect(&bytes, name, caller, limits).map_err(bundle_err)? {
        Input::Toml => {
            let toml = String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8 {
                path: path.to_owned(),
            })?;
            Ok(Source {
                toml,
                payload: None,
            })
        }
        Input::Bundle(_) => {
            let bundle = Bundle::read(&bytes, name, limits).map_err(bundle_err)?;
            Ok(Source {
                toml: bundle.config_toml,
                payload: Some(bundle.files),
            })
        }
    }
}
