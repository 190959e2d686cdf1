//! What an import, a validation or an upload is given, from its bytes: a `config.toml` or a
//! bundle (spec 2.4), told apart by the caller's rule ([`Caller`]) within the limits, into the
//! config text and the bundle's `files/` payload. Reading the bytes from a file or a request is
//! the caller's.

use crate::bundle::{Bundle, BundleError, Caller, Input, Limits};
use crate::files::FileSet;

/// A config as handed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The config.toml text (the input itself, or the bundle's).
    pub toml: String,
    /// The bundle's `files/` payload; `None` for a plain config.toml.
    pub payload: Option<FileSet>,
}

/// Why the bytes are not a config.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A plain config.toml that is not UTF-8.
    #[error("config.toml is not UTF-8 text")]
    NotUtf8,
    /// The bundle (or the upload) is refused.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl Source {
    /// Reads `bytes` (named `name`: a file's or an upload's name) as `caller` hands them in.
    pub fn from_bytes(
        bytes: &[u8],
        name: Option<&str>,
        caller: Caller,
        limits: &Limits,
    ) -> Result<Self, SourceError> {
        match Input::detect(bytes, name, caller, limits)? {
            Input::Toml => {
                let toml = std::str::from_utf8(bytes).map_err(|_| SourceError::NotUtf8)?;
                Ok(Self {
                    toml: toml.to_owned(),
                    payload: None,
                })
            }
            Input::Bundle(_) => {
                let bundle = Bundle::read(bytes, name, limits)?;
                Ok(Self {
                    toml: bundle.config_toml,
                    payload: Some(bundle.files),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_toml_by_the_callers_rule() {
        let limits = Limits::default();
        let toml = b"version = 1\n";
        let s = Source::from_bytes(toml, Some("c.toml"), Caller::Cli, &limits).unwrap();
        assert_eq!((s.toml.as_str(), s.payload), ("version = 1\n", None));
        // The CLI wants a bundle for any other name; the API takes anything else as TOML.
        assert!(matches!(
            Source::from_bytes(toml, Some("c.txt"), Caller::Cli, &limits),
            Err(SourceError::Bundle(BundleError::UnsupportedInput))
        ));
        assert!(Source::from_bytes(toml, None, Caller::Api, &limits).is_ok());
        assert!(matches!(
            Source::from_bytes(b"\xff", Some("c.toml"), Caller::Cli, &limits),
            Err(SourceError::NotUtf8)
        ));
    }
}
