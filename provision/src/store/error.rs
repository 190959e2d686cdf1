//! The store's error type.

use std::path::PathBuf;

use atomix_config::files::RelPath;

pub use super::fs::FsError;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed (it names the operation and the path).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A rendered file set has a path under `files/`, which only the payload may fill.
    #[error("rendered file {0} is under files/, which holds the bundle payload")]
    RenderedPayload(RelPath),
    /// Promotion needs a candidate and there is none.
    #[error("no candidate root at {}", .0.display())]
    NoCandidate(PathBuf),
    /// A re-apply needs an active root and there is none.
    #[error("no active config root at {}", .0.display())]
    NoActiveRoot(PathBuf),
}
