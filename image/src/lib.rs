//! Initramfs and disk image assembly.
//!
//! Owns: the cpio newc writer, the kernel module dependency closure computed from `.modinfo`,
//! the initramfs layout `/init` relies on, and the assembly of disk images (GPT, boot vfat,
//! rootfs squashfs) for flashing and testing.
//!
//! Must not: duplicate the GPT code of `atomix-repart` (it calls it), know the boot stages, or
//! touch block devices.

pub mod cpio;
pub mod disk;
pub mod initramfs;
pub mod modules;
