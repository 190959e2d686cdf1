//! GPT partition tables and repart.d partitioning.
//!
//! Owns: reading and writing GUID partition tables byte for byte ([`gpt`]), so that callers
//! control every write (protective MBR, both headers, both entry arrays) and its order; the
//! systemd `repart.d` definitions ([`definitions`]) and the pure, deterministic [`plan::plan`]
//! that turns definitions and the current table into the table to write, following
//! systemd-repart v252. Later also the `apply` that carries a plan out on image files and block
//! devices.
//!
//! Must not: know the boot flow (slots, stages, kernel command line), mount anything, or
//! decide policy for its callers; it reads and writes the tables it is given.

#![forbid(unsafe_code)]

pub mod definitions;
pub mod gpt;
pub mod plan;
