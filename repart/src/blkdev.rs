//! Block-device ioctls: the disk's size and sector size, and telling the kernel about a partition
//! (`BLKPG`) without re-reading the whole table (`BLKRRPART` fails with EBUSY while any partition
//! of the disk is mounted, and is never used here).
//!
//! The only unsafe code of the crate: rustix's generic `ioctl` is unsafe because the opcode and
//! the argument type must agree. Each block names the kernel's definition it matches.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::{Getter, Setter, ioctl, opcode};

/// `BLKGETSIZE64 = _IOR(0x12, 114, size_t)` (`include/uapi/linux/fs.h`); size_t is 64-bit on the
/// targets this crate builds for.
const BLKGETSIZE64: rustix::ioctl::Opcode = opcode::read::<u64>(0x12, 114);
/// `BLKPG = _IO(0x12, 105)`.
const BLKPG: rustix::ioctl::Opcode = opcode::none(0x12, 105);

const BLKPG_ADD_PARTITION: i32 = 1;
const BLKPG_DEL_PARTITION: i32 = 2;
const BLKPG_RESIZE_PARTITION: i32 = 3;

/// `struct blkpg_partition` (`include/uapi/linux/blkpg.h`): start and length in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut c_void,
}

/// Size of the block device in bytes.
pub(crate) fn size_bytes(fd: impl AsFd) -> io::Result<u64> {
    // SAFETY: BLKGETSIZE64 writes one u64 (size_t on 64-bit Linux) through its argument, which
    // is exactly what `Getter<_, u64>` provides.
    let size = unsafe { ioctl(fd, Getter::<BLKGETSIZE64, u64>::new()) }?;
    Ok(size)
}

/// Logical sector size of the block device.
pub(crate) fn sector_size(fd: impl AsFd) -> io::Result<u64> {
    Ok(u64::from(rustix::fs::ioctl_blksszget(fd)?))
}

/// What to do with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlkpgOp {
    Add,
    Resize,
    Delete,
}

impl BlkpgOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlkpgOp::Add => "BLKPG_ADD_PARTITION",
            BlkpgOp::Resize => "BLKPG_RESIZE_PARTITION",
            BlkpgOp::Delete => "BLKPG_DEL_PARTITION",
        }
    }
}

/// Adds, resizes or deletes partition `number` of the disk open as `fd` in the kernel's view
/// only; nothing is written to the disk.
pub(crate) fn blkpg(
    fd: impl AsFd,
    op: BlkpgOp,
    number: u32,
    start_bytes: u64,
    length_bytes: u64,
) -> io::Result<()> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "value out of range for BLKPG");
    let mut partition = BlkpgPartition {
        start: i64::try_from(start_bytes).map_err(|_| too_big())?,
        length: i64::try_from(length_bytes).map_err(|_| too_big())?,
        pno: i32::try_from(number).map_err(|_| too_big())?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: match op {
            BlkpgOp::Add => BLKPG_ADD_PARTITION,
            BlkpgOp::Resize => BLKPG_RESIZE_PARTITION,
            BlkpgOp::Delete => BLKPG_DEL_PARTITION,
        },
        flags: 0,
        datalen: size_of::<BlkpgPartition>() as i32,
        data: (&raw mut partition).cast(),
    };
    // SAFETY: BLKPG reads one `struct blkpg_ioctl_arg` through its argument (what `Setter`
    // passes); its `data` points at a live `struct blkpg_partition` of `datalen` bytes that
    // outlives the call. Both structs are #[repr(C)] copies of include/uapi/linux/blkpg.h.
    unsafe { ioctl(fd, Setter::<BLKPG, BlkpgIoctlArg>::new(arg)) }?;
    Ok(())
}
