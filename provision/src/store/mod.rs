//! The config root store: everything that writes `/data/config` and its siblings.
//!
//! - [`fs`]: the I/O layer ([`Fs`], [`RealFs`]); [`fault`]: [`FaultFs`], which stops after N
//!   operations to prove crash safety.
//! - [`root`]: [`ConfigRoot`], its sibling paths, the safety rules and the lock.
//! - [`candidate`]: writing a candidate root from a rendered file set, the `files/` payload and
//!   the carry-forward rule.
//! - [`mod@promote`]: initial and re-apply promotion, cleanup, restore, discard.
//! - [`mod@recover`]: the recovery table.
//! - [`quadlet_sync`]: copying rendered Quadlets into the systemd search paths.
//! - [`tree`], [`managed`]: tree helpers and `managed-users.json`.
//!
//! The order of an apply, under [`ConfigRoot::lock`]: [`recover()`], [`write_candidate`],
//! [`promote()`], activation, then [`cleanup`] on success or [`restore`] /
//! [`discard_initial`] on failure.

pub mod candidate;
pub mod error;
pub mod fault;
pub mod fs;
pub mod managed;
pub mod promote;
pub mod quadlet_sync;
pub mod recover;
pub mod root;
pub mod tree;

pub use candidate::{CandidateReport, CandidateSpec, DirModes, Owner, Payload, write_candidate};
pub use error::StoreError;
pub use fault::FaultFs;
pub use fs::{Fs, FsError, FsOp, Kind, Metadata, RealFs};
pub use promote::{Promotion, cleanup, discard_initial, promote, restore};
pub use recover::{Recovery, RecoveryAction, recover};
pub use root::{ConfigRoot, LockGuard, RootError};
