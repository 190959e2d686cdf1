//! What the `fresh-flash` and `repart` stages share: their paths, the fresh-flash rule, the
//! types that cross the [`crate::system::System`] boundary and the repart stage's errors.
//!
//! The partitioning itself (plan, format, GPT writes, `BLKPG`) is `atomix-repart`'s; the stage
//! runner in [`crate::boot`] only decides which disk, when, and what a failure means.

use std::path::PathBuf;

use atomix_repart::apply::ApplyError;
use atomix_repart::definitions::DefinitionError;
use atomix_repart::gpt::Table;
use atomix_repart::plan::PlanError;

use crate::modules::ModulesError;
use crate::report::FormatRecord;

/// The repart.d definitions inside the initramfs.
pub const REPART_D: &str = "/etc/repart.d";
/// The fresh-flash marker in `/run` (for the initrd and the real root alike: `/run` is moved).
pub const FRESH_FLASH_RUN: &str = "/run/atomixos/fresh-flash";
/// The fresh-flash marker in the new root (in the overlay's tmpfs upper: per boot).
pub const FRESH_FLASH_SYSROOT: &str = "/sysroot/etc/atomixos/fresh-flash";
/// Where apply mounts a new f2fs to make its directories.
pub const REPART_MOUNT_DIR: &str = "/run/atomix/repart";
/// The label whose absence makes a boot a fresh flash.
pub const BOOT_B: &str = "boot-b";

/// The disk before repartitioning, as read by `atomix_repart::apply::read_current`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskState {
    /// Size in bytes.
    pub disk_bytes: u64,
    /// Logical sector size.
    pub sector_size: u64,
    /// The GPT, if the disk has one.
    pub table: Option<Table>,
    /// The primary GPT was damaged and the table was read from the backup.
    pub repaired_from_backup: bool,
}

/// What carrying out a plan would change, as `atomix_repart::apply::pending` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingWork {
    /// The table on the disk differs from the plan's.
    pub table: bool,
    /// File systems to make.
    pub formats: Vec<FormatRecord>,
}

impl PendingWork {
    /// Nothing to write and nothing to format.
    pub fn is_empty(&self) -> bool {
        !self.table && self.formats.is_empty()
    }
}

/// Fresh flash: the disk has no partition labelled [`BOOT_B`] before repart ran (a disk without
/// a GPT has none either).
pub fn is_fresh_flash(table: Option<&Table>) -> bool {
    table.is_none_or(|t| t.by_name(BOOT_B).is_none())
}

/// Why the repart stage did not carry out its plan. Recorded in `initrd.json`; fatal only with
/// `atomix.repart=required`.
#[derive(Debug, thiserror::Error)]
pub enum RepartError {
    /// The partition table could not be read.
    #[error("cannot read the partition table of {}", disk.display())]
    ReadDisk {
        /// The disk.
        disk: PathBuf,
        /// What apply said.
        #[source]
        source: ApplyError,
    },
    /// The disk has no GPT.
    #[error(
        "{} has no GPT: /init only completes a flashed disk and never initialises an empty one",
        disk.display()
    )]
    NoTable {
        /// The disk.
        disk: PathBuf,
    },
    /// The definitions could not be loaded.
    #[error("cannot load the partition definitions in {REPART_D}")]
    Definitions(#[source] DefinitionError),
    /// No plan could be made (too small, a foreign partition in the way, ...).
    #[error("cannot plan the partitions of {}", disk.display())]
    Plan {
        /// The disk.
        disk: PathBuf,
        /// What the planner said.
        #[source]
        source: PlanError,
    },
    /// The disk could not be compared with the plan.
    #[error("cannot check {} against the plan", disk.display())]
    Pending {
        /// The disk.
        disk: PathBuf,
        /// What apply said.
        #[source]
        source: ApplyError,
    },
    /// A module for formatting did not load.
    #[error("cannot load the modules for repartitioning")]
    Modules(#[source] ModulesError),
    /// Carrying out the plan failed.
    #[error("cannot repartition {}", disk.display())]
    Apply {
        /// The disk.
        disk: PathBuf,
        /// What apply said.
        #[source]
        source: ApplyError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomix_repart::gpt::{Guid, Partition};

    fn part(number: u32, name: &str) -> Partition {
        Partition {
            number,
            type_guid: atomix_repart::gpt::types::XBOOTLDR,
            uuid: Guid::from_u128(u128::from(number)),
            first_lba: u64::from(number) * 2048,
            last_lba: u64::from(number) * 2048 + 2047,
            attributes: 0,
            name: name.into(),
        }
    }

    #[test]
    fn fresh_flash_is_no_boot_b() {
        let mut t = Table {
            disk_guid: Guid::from_u128(1),
            first_usable_lba: 34,
            last_usable_lba: 100_000,
            partitions: vec![part(1, "boot-a"), part(2, "rootfs-a")],
        };
        assert!(is_fresh_flash(Some(&t)));
        assert!(is_fresh_flash(None));
        t.partitions.push(part(3, "boot-b"));
        assert!(!is_fresh_flash(Some(&t)));
        // Only the label counts, not the number.
        t.partitions = vec![part(7, "boot-b")];
        assert!(!is_fresh_flash(Some(&t)));
    }

    #[test]
    fn pending_is_empty_only_without_table_and_formats() {
        assert!(PendingWork::default().is_empty());
        assert!(
            !PendingWork {
                table: true,
                ..PendingWork::default()
            }
            .is_empty()
        );
        assert!(
            !PendingWork {
                table: false,
                formats: vec![FormatRecord {
                    number: 5,
                    label: "data".into(),
                    format: "f2fs".into(),
                    reason: "empty".into(),
                }],
            }
            .is_empty()
        );
    }
}
