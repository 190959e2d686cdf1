//! chrony's part of the LAN: the NTP servers the device follows, and the LAN it serves time
//! to. The image's `chrony/chrony.conf` includes this file.

use std::fmt::Write as _;

use crate::lan::LanSettings;

/// The servers and the served subnet, relative to `/etc`.
pub const CONF: &str = "atomixos/chrony-lan.conf";

/// `atomixos/chrony-lan.conf`: a comment saying who wrote it, `server <s> iburst` per server,
/// then `allow <subnet>`.
pub fn conf(lan: &LanSettings) -> String {
    let mut out = String::from("# Written by atomix-provision from config.toml\n");
    for server in &lan.ntp_servers {
        let _ = writeln!(out, "server {server} iburst");
    }
    let _ = writeln!(out, "allow {}", lan.subnet());
    out
}
