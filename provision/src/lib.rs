//! The device side of provisioning (DESIGN section 9), the replacement of the original
//! AtomixOS `atomixos-provision` service.
//!
//! Owns: the config root under `/data/config` (candidate, promotion, rollback, recovery, the
//! lock, fsync of every file and directory), the activation engine behind narrow traits
//! (systemd, RAUC, accounts, the network files, nftables), first boot, and the
//! `atomix-provision` binary.
//!
//! Modules: [`store`] (the config root, its promotion and recovery, and the Quadlet sync into
//! the systemd search paths), [`activate`] (the activation engine: users, Quadlets, network,
//! firewall, the health window, commit or rollback, the bootstrap WAN toggle, and the RAUC
//! mark-good gate), [`source`] (a config.toml or bundle from a file), [`validate`] (parse and
//! render, every error located), [`import`] (the one mutation path: initial import or re-apply,
//! activating through the engine), [`firstboot`] (seed discovery and the first provisioning),
//! [`api`] (the HTTP API and the first-boot web console), and the `atomix-provision` binary
//! over them.
//!
//! Must not: parse or render config.toml itself (that is `atomix-config`), or be needed by
//! `/init` or the host tools.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activate;
pub mod api;
pub mod firstboot;
pub mod import;
pub mod source;
pub mod store;
pub mod validate;
