//! Board profiles as data.
//!
//! Owns: the per-board facts every other crate asks about (disk device, console, the kernel
//! modules the initramfs must carry, the first-boot partition definitions and the raw region
//! below them, the raw loader files, where the A/B boot counters live, recovery), parsed once
//! from the TOML files in `board/profiles/` into validated types, and the repart.d definition
//! sets in `board/repart.d/`. Adding a board means adding a profile file, not a code path.
//! Also owns what U-Boot reads: the generated `boot.scr` ([`bootscript`]) in its legacy image
//! wrapper ([`uimage`]), and the U-Boot environment formats that hold the counters ([`env`](mod@env)).
//! And the board's part of the root filesystem, rendered from the same facts ([`rootfs`]):
//! RAUC's slots and bootloader backend, `fw_env.config`, NIC names, the serial console.
//!
//! The profile's types are in `profile`, reading and checking a profile in `parse`, the A/B
//! slots in `slot`; all of them are re-exported here.
//!
//! Must not: do I/O beyond reading or writing the bytes it is given, or know about `/init`'s
//! stages, partition plans or image assembly.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootscript;
pub mod env;
mod parse;
mod profile;
pub mod rootfs;
mod slot;
#[cfg(test)]
mod tests;
pub mod uimage;

pub use profile::{
    Ab, AbStore, Board, Boot, Firmware, Loader, LoaderFile, NicMatch, Recovery, Repart, Rootfs,
};
pub use slot::Slot;

/// A failure to find or parse a board profile.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// No built-in profile has this name.
    #[error("unknown board `{name}` (known boards: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// The profile text is not valid TOML for a board.
    #[error("board profile `{name}` is malformed")]
    Parse {
        /// The profile's name or path.
        name: String,
        /// What the parser said.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The profile parsed but breaks a rule.
    #[error("board profile `{name}`: {field} {problem}")]
    Invalid {
        /// The profile's name or path.
        name: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// The kernel's partition naming rule for whole-disk `disk` (`atomix_blockdev::partition_name`,
/// the workspace's one copy of it).
pub fn partition_device(disk: &str, number: u32) -> String {
    atomix_blockdev::partition_name(disk, number)
}
