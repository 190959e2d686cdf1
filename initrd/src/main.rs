//! `/init` of the AtomixOS initramfs; the logic is in the `atomix_initrd` library.
//!
//! `#![no_main]`: glibc's start code calls the C `main` below directly, skipping Rust's runtime
//! set-up (`std::rt::lang_start`: stdio sanitising, SIGPIPE set to ignored, the main-thread
//! stack-overflow handler with its alternate signal stack). PID 1 of the initramfs needs none of
//! it, and under QEMU TCG it costs about 12 ms before the first line of `/init` runs (measured:
//! median 48 ms from the kernel's "Run /init" to `main` for a std `fn main`, 36 ms with
//! `no_main`, 36 ms for a C program). std itself works the same without it.

// The unit-test build of this file keeps the test harness's own `main`.
#![cfg_attr(not(test), no_main)]
#![deny(unsafe_code)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// The process entry point, called by glibc's `__libc_start_main` like C's `main`.
// The only unsafe here is the attribute: `main` is the one symbol of that name in the binary
// (the std `main` shim is not generated under `#![no_main]`), with C's signature.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    atomix_initrd::host::main()
}
