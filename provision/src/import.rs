//! `import`: a validated config (and its bundle payload) made the active config root, through
//! the store (spec 3.3) under the lock: recover, write the candidate, promote, clean up.
//!
//! Only the initial import is here: a re-apply over a provisioned root activates the new
//! config and checks its health before it commits, which is the activation engine's job.

use atomix_config::quadlet::APP_USER;

use crate::source::Source;
use crate::store::{
    self, CandidateSpec, ConfigRoot, DirModes, Fs, Owner, Payload, Promotion, Recovery, RootError,
    StoreError,
};
use crate::validate::Valid;

/// How an import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Leave the promotion pending (marker and rollback kept) for the first-boot flow, which
    /// completes it after its checks (`ATOMIXOS_KEEP_INITIAL_PROMOTION_PENDING=1`).
    pub keep_pending: bool,
    /// The owner of the bundle payload (`appsvc`); needed when there is one.
    pub payload_owner: Option<Owner>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// What recovery found and did first.
    pub recovery: Recovery,
    /// Top-level names carried forward from the previous root (hand-placed files).
    pub carried: Vec<String>,
    /// Whether the promotion was left pending ([`Options::keep_pending`]).
    pub pending: bool,
}

/// Why an import failed. Nothing of the active root was changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] RootError),
    /// A store step failed; recovery at the next boot (or the next import) leaves the old or
    /// the new root whole.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config root is provisioned already: a re-apply needs activation and health checks.
    #[error(
        "{} is provisioned already: a re-apply activates the new config and checks its health, \
         which the activation engine does (not in this build yet)",
        .0.display()
    )]
    Provisioned(std::path::PathBuf),
    /// The bundle has `files/` and the user that owns them does not exist.
    #[error("the bundle's files/ belong to the {APP_USER} user, which does not exist")]
    NoAppUser,
}

/// Imports `source` (validated as `valid`) into `root`.
pub fn import(
    fs: &dyn Fs,
    root: &ConfigRoot,
    source: &Source,
    valid: &Valid,
    options: Options,
) -> Result<Imported, ImportError> {
    let payload = match &source.payload {
        Some(files) => {
            if options.payload_owner.is_none() {
                return Err(ImportError::NoAppUser);
            }
            Payload::Replace(files.clone())
        }
        None => Payload::None,
    };
    let _lock = root.lock()?;
    let recovery = store::recover(fs, root)?;
    if fs.exists(&root.active_config()).map_err(StoreError::from)? {
        return Err(ImportError::Provisioned(root.active().to_owned()));
    }
    let report = store::write_candidate(
        fs,
        root,
        &CandidateSpec {
            files: &valid.root.files,
            dir_modes: &DirModes::standard(),
            payload: &payload,
            payload_owner: options.payload_owner,
        },
    )?;
    store::promote(fs, root, Promotion::Initial)?;
    if !options.keep_pending {
        store::cleanup(fs, root)?;
    }
    Ok(Imported {
        recovery,
        carried: report.carried,
        pending: options.keep_pending,
    })
}
