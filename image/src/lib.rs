//! Initramfs and disk image assembly.
//!
//! Owns: the cpio newc writer, the kernel module dependency closure computed from `.modinfo`,
//! the initramfs layout `/init` relies on, and the assembly of disk images (raw loader region,
//! GPT, boot vfat, rootfs squashfs) for flashing and testing, their partitions laid out from the
//! board's repart.d definitions through `atomix_repart::plan` (`disk::layout`); the flashable
//! image of a board
//! (`flashable`: its files, boot.scr, name and manifest). On an existing image file or block
//! device: the board's A/B counters (`bootenv`), filling a slot pair (`slot`) and inspection
//! (`inspect`), all through plain positional reads and writes (sizes and tables through
//! `atomix-repart`).
//!
//! Must not: duplicate the GPT, FAT or planning code of `atomix-repart` (it calls it), keep a
//! partition layout of its own (the definitions are the one source), know the boot stages, or
//! issue block-device ioctls itself.

#![warn(missing_docs)]

pub mod bootenv;
pub mod cpio;
pub mod disk;
pub mod flashable;
pub mod initramfs;
pub mod inspect;
pub mod modules;
pub mod slot;
mod squashfs;
mod target;
