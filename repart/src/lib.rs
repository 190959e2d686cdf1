//! GPT partition tables and (later) repart.d partitioning.
//!
//! Owns: reading and writing GUID partition tables byte for byte ([`gpt`]), so that callers
//! control every write (protective MBR, both headers, both entry arrays) and its order; later
//! also the repart.d definitions, the pure `plan` and the `apply` that carries a plan out on
//! image files and block devices.
//!
//! Must not: know the boot flow (slots, stages, kernel command line), mount anything, or
//! decide policy for its callers; it reads and writes the tables it is given.

#![forbid(unsafe_code)]

pub mod gpt;
