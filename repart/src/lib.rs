//! GPT partition tables and repart.d partitioning.
//!
//! Owns: reading and writing GUID partition tables byte for byte ([`gpt`]), so that callers
//! control every write (protective MBR, both headers, both entry arrays) and its order; the
//! systemd `repart.d` definitions ([`definitions`]) and the pure, deterministic [`plan::plan`]
//! that turns definitions and the current table into the table to write, following
//! systemd-repart v252; and [`apply`], which carries a plan out on image files and block devices
//! in a crash-safe order (file systems into free space first, the table last, then the kernel
//! through `BLKPG`), with [`vfat`] (the one FAT implementation of the workspace) and f2fs through
//! `atomix-f2fs`. Every write goes through the narrow [`io::DiskIo`] layer. [`size`] holds the
//! workspace's one size parser and the plan's size formatter. The kernel's sysfs is read through
//! `atomix-blockdev`.
//!
//! Must not: know the boot flow (slots, stages, kernel command line) or decide policy for its
//! callers (when to repartition, what a failure means); it carries out the plan it is given.
//! Mounting is limited to the file system it just made, to create `MakeDirectories=`.
//!
//! Unsafe code: only the block-device ioctls in the private `blkdev` module.
//!
//! Why not the `gpt` crate (DESIGN section 5 names it): crash safety needs the order of every
//! single write under our control (and a fault-injecting I/O layer under all of them), plus a
//! settable first usable LBA, the protective MBR, the backup moved to the disk's end and UUIDs
//! derived from a seed; gpt 4.1 does its own I/O and offers none of these (research notes,
//! crates-and-f2fs.md section 2). The codec here is checked against `sfdisk` and `sgdisk`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
mod blkdev;
pub mod definitions;
pub mod gpt;
pub mod io;
pub mod plan;
pub mod size;
pub mod vfat;
