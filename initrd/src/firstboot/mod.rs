//! First boot: the `fresh-flash` and `repart` stages' decisions and the fresh-flash marker.
//!
//! Owns: which disk is looked at, the fresh-flash rule ([`is_fresh_flash`]) and its markers
//! ([`fresh_flash::decide`], [`fresh_flash::sysroot_marker`]), whether and how the disk is
//! repartitioned and what a failure means ([`repart::run`]), and the narrow trait they reach
//! the disk through ([`RepartDisk`]). The disk is read as `atomix_repart::apply::Current` and
//! compared with the plan as `atomix_repart::apply::Pending`: repart's own types cross the
//! boundary.
//!
//! Must not: partition itself (plan, format, GPT writes, `BLKPG` are `atomix-repart`'s), nor
//! time or log stages (the runner in [`crate::boot`] does).

use std::path::{Path, PathBuf};

use atomix_repart::apply::{ApplyError, ApplyReport, Current, FormatReason, Pending};
use atomix_repart::definitions::{Definition, DefinitionError};
use atomix_repart::gpt::Table;
use atomix_repart::plan::{Plan, PlanError};

pub mod fresh_flash;
pub mod repart;
#[cfg(test)]
mod tests;

/// The disk work of first boot: `atomix-repart` on the machine.
pub trait RepartDisk {
    /// `atomix_repart::apply::read_current` on `disk`.
    ///
    /// # Errors
    ///
    /// The disk cannot be opened or read, or holds a table that cannot be used.
    fn read_disk(&mut self, disk: &Path) -> Result<Current, ApplyError>;
    /// `atomix_repart::definitions::load_dir` (arm64) on `dir`.
    ///
    /// # Errors
    ///
    /// As `load_dir`; a missing `dir` is [`DefinitionError::ReadDir`] with `NotFound`.
    fn load_definitions(&mut self, dir: &Path) -> Result<Vec<Definition>, DefinitionError>;
    /// `atomix_repart::apply::pending`: what carrying out `plan` on `disk` would change.
    ///
    /// # Errors
    ///
    /// The disk cannot be read.
    fn repart_pending(&mut self, plan: &Plan, disk: &Path) -> Result<Pending, ApplyError>;
    /// `atomix_repart::apply::apply` with `mount_dir` for `MakeDirectories=`; each action is
    /// passed to `progress`. Returns apply's report.
    ///
    /// # Errors
    ///
    /// The first step that failed.
    fn repart_apply(
        &mut self,
        plan: &Plan,
        disk: &Path,
        mount_dir: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApplyReport, ApplyError>;
}

/// A fresh-flash marker that could not be written or removed. Fatal.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// A fresh-flash marker could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The marker.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stale fresh-flash marker could not be removed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The marker.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

use crate::modules::ModulesError;

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

/// The name `initrd.json` and the stage line give `reason`: `created` or `empty` (the
/// serialised [`FormatReason`]; its `Display` is a sentence for `atomix repart`).
pub fn reason_name(reason: FormatReason) -> &'static str {
    match reason {
        FormatReason::Created => "created",
        FormatReason::Empty => "empty",
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
mod rule_tests {
    use super::*;
    use atomix_repart::apply::{Pending, PendingFormat};
    use atomix_repart::definitions::Format;
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
        let none = Pending {
            table: false,
            format: Vec::new(),
        };
        assert!(none.is_empty());
        assert!(
            !Pending {
                table: true,
                ..none.clone()
            }
            .is_empty()
        );
        assert!(
            !Pending {
                table: false,
                format: vec![PendingFormat {
                    number: 5,
                    label: "data".into(),
                    format: Format::F2fs,
                    reason: FormatReason::Empty,
                }],
            }
            .is_empty()
        );
        assert_eq!(reason_name(FormatReason::Created), "created");
        assert_eq!(reason_name(FormatReason::Empty), "empty");
    }
}
