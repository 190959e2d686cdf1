//! config.toml v1, the device's configuration, as the original AtomixOS provisioner defines it
//! (`research/atomixos-provisioner-spec.md` section 2).
//!
//! Owns: parsing a config (or a bundle that carries one) once into validated types, the report
//! of every error with its TOML path and `line:col`, and the pure rendering of a validated
//! config into the files of a config root ([`files::FileSet`]) and into the system files the
//! network apply step writes under `/etc` ([`system`]: dnsmasq, chrony, `/etc/hosts`,
//! systemd-networkd).
//!
//! Must not: do I/O beyond the bytes it is given (no file system, no processes, no clock: the
//! network files take the LAN NIC's MAC address and the current `/etc/hosts` as values), or
//! talk to systemd or know the config root on disk or activation: those belong to
//! `atomix-provision`.
//!
//! Entry points: [`Config::parse`] (a config.toml text to a [`Config`] or a [`Report`]),
//! [`bundle::Bundle::read`] and [`bundle::Input::detect`] (bundles), and the `*_json` methods
//! and [`Config::json_files`] for the config root's JSON files ([`json`]), [`quadlet::render`]
//! for the Quadlet units, [`root_files::render`] for the whole config root, and
//! [`system::render`] for the network files under `/etc`; [`source::Source::from_bytes`] (a
//! config or bundle as handed in) and [`validate::validate`] (parse and render, as an import
//! does) for the device and the operator's client alike; [`edit::Edit`] for the provisioning
//! API's typed partial updates, made on the config's text (its comments and order kept).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activation;
pub mod bundle;
mod check;
pub mod containers;
pub mod diag;
pub mod edit;
pub mod files;
pub mod firewall;
pub mod json;
pub mod lan;
pub mod model;
pub mod net;
pub mod network;
pub mod quadlet;
pub mod root_files;
pub mod source;
pub mod system;
mod tree;
pub mod users;
pub mod validate;

pub use diag::{Diagnostic, Report, Severity};
pub use model::Config;
