//! The bootstrap WAN toggle (spec 5.3): tcp/8080 on the WAN is open exactly while the device is
//! unprovisioned (neither `config.toml` nor `admin-signers` in the config root) or a promotion
//! is pending, so the provisioning console is reachable from the WAN until the device has a
//! config. It runs at boot (`atomix-bootstrap-wan.service`) and after first boot commits.

use super::firewall::{CHAIN, Firewall, FirewallError, Interfaces, handles_of, script};
use crate::store::{ConfigRoot, Fs, FsError};
use atomix_config::root_files::ADMIN_SIGNERS;

/// The comment of the bootstrap rule.
pub const TAG_BOOTSTRAP_WAN: &str = "ATOMIXOS_BOOTSTRAP_WAN";
/// The provisioning service's port.
pub const BOOTSTRAP_PORT: u16 = 8080;

/// Why the toggle failed.
#[derive(Debug, thiserror::Error)]
pub enum ToggleError {
    /// The config root could not be read.
    #[error("reading the config root")]
    Fs(#[from] FsError),
    /// nft failed.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
}

/// Whether the WAN's tcp/8080 should be open: a promotion is pending, or the root has neither
/// `config.toml` nor `admin-signers`.
pub fn wan_wanted_open(fs: &dyn Fs, root: &ConfigRoot) -> Result<bool, FsError> {
    if fs.exists(&root.marker())? {
        return Ok(true);
    }
    let provisioned =
        fs.exists(&root.active_config())? || fs.exists(&root.active().join(ADMIN_SIGNERS))?;
    Ok(!provisioned)
}

/// The rule that opens the port on `wan`.
pub fn bootstrap_rule(wan: &str) -> String {
    format!(
        "add rule {CHAIN} iifname \"{wan}\" tcp dport {BOOTSTRAP_PORT} accept comment \"{TAG_BOOTSTRAP_WAN}\""
    )
}

/// Deletes the bootstrap rules and re-adds one if [`wan_wanted_open`], in one transaction;
/// returns whether the port is open now.
pub fn toggle(
    fs: &dyn Fs,
    root: &ConfigRoot,
    firewall: &mut dyn Firewall,
    ifaces: &Interfaces,
) -> Result<bool, ToggleError> {
    let open = wan_wanted_open(fs, root)?;
    let handles = handles_of(&firewall.list_input()?, &[TAG_BOOTSTRAP_WAN]);
    let rules: Vec<String> = open
        .then(|| bootstrap_rule(&ifaces.wan))
        .into_iter()
        .collect();
    if !handles.is_empty() || !rules.is_empty() {
        firewall.apply(&script(&handles, &rules))?;
    }
    Ok(open)
}
