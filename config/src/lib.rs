//! config.toml v1, the device's configuration, as the original AtomixOS provisioner defines it
//! (`research/atomixos-provisioner-spec.md` section 2).
//!
//! Owns: parsing a config (or a bundle that carries one) once into validated types, the report
//! of every error with its TOML path and `line:col`, and the pure rendering of a validated
//! config into the files of a config root and the system files the apply steps write
//! ([`files::FileSet`]).
//!
//! Must not: do I/O beyond the bytes it is given (no file system, no processes, no clock), or
//! know about systemd, the config root on disk or activation: those belong to
//! `atomix-provision`.

#![forbid(unsafe_code)]

pub mod files;
