//! The options file systems are made with: UUIDs derived from the partition's, labels, and
//! times (fixed for reproducible images). Must not: write.

use std::time::SystemTime;

use super::{ApplyOptions, MakeDirsOutcome};
use crate::gpt::Guid;
use crate::plan::{Action, derive_uuid};
use crate::vfat::{self, VfatOptions};

pub(super) fn fs_uuid(action: &Action) -> Guid {
    derive_uuid(action.uuid, "file-system-uuid")
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn f2fs_options(action: &Action, opts: &ApplyOptions) -> atomix_f2fs::FormatOptions {
    let mut o = atomix_f2fs::FormatOptions::new(action.label.clone());
    o.discard = false;
    o.reproducible = opts.reproducible.map(|time| atomix_f2fs::Reproducible {
        uuid: atomix_f2fs::Uuid::from_bytes(fs_uuid(action).to_bytes()),
        time,
    });
    o
}

pub(super) fn vfat_options(action: &Action, opts: &ApplyOptions) -> VfatOptions {
    let id = fs_uuid(action).to_bytes();
    VfatOptions {
        volume_label: vfat::label_from_partition(&action.label),
        volume_id: u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
        fat_type: None,
        time: opts.reproducible.unwrap_or_else(now),
    }
}

pub(super) fn vfat_dirs_outcome(action: &Action) -> Option<MakeDirsOutcome> {
    (!action.make_directories.is_empty()).then(|| {
        MakeDirsOutcome::Skipped(
            "MakeDirectories= on vfat is not supported (fatfs writes subdirectories fsck.vfat \
             rejects)"
                .into(),
        )
    })
}
