//! The RAUC mark-good gate: the booted slot is marked good only after an activation
//! committed (the [`Committed`] token of [`super::engine::complete`]). The first-boot flow calls
//! [`mark_good_gate`] after its first provisioning.

use super::outcome::{Committed, Completion};
use super::rauc::{Marked, Rauc, RaucError};

/// What the gate did.
#[derive(Debug)]
pub enum Gate {
    /// The activation did not commit; RAUC was not called.
    NotCommitted,
    /// The booted slot is marked good (and read back as good).
    Marked(Marked),
    /// RAUC refused or the read-back disagreed.
    Failed(RaucError),
}

/// Marks the booted slot good; needs the proof of a committed activation.
pub fn mark_good(_committed: &Committed, rauc: &mut dyn Rauc) -> Result<Marked, RaucError> {
    rauc.mark_good_booted()
}

/// Marks the booted slot good if `completion` committed.
pub fn mark_good_gate(completion: &Completion, rauc: &mut dyn Rauc) -> Gate {
    match &completion.committed {
        None => Gate::NotCommitted,
        Some(c) => match mark_good(c, rauc) {
            Ok(m) => Gate::Marked(m),
            Err(e) => Gate::Failed(e),
        },
    }
}
