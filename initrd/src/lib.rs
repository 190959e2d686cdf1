//! The AtomixOS `/init`: PID 1 of the initramfs.
//!
//! Owns: the stage order ([`stage::STAGES`]) and its runner ([`boot`]), the boot parameters
//! ([`cmdline`]), module loading ([`modules`]), waiting for the slot device ([`device`]), the
//! first-boot decisions ([`firstboot`]), the failure policy ([`policy`]), the kmsg logger
//! ([`kmsg`]), and the timings in `/run/atomix/initrd.json` ([`report`]).
//!
//! Must not: hold mount, GPT or filesystem-format logic itself; that lives in `atomix-sysroot`,
//! `atomix-repart` and `atomix-board`. Every side effect goes through the narrow traits in
//! [`system`] (and [`firstboot::RepartDisk`]), whose real implementation is [`host::HostSystem`];
//! the rest is plain logic with unit tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot;
pub mod cmdline;
pub mod device;
#[cfg(test)]
mod fake;
pub mod firstboot;
pub mod host;
pub mod kmsg;
pub mod modules;
pub mod policy;
pub mod report;
pub mod stage;
pub mod system;
