//! The engine's dependencies on a device: systemd over D-Bus, `appsvc`'s manager through
//! `systemctl --user`, the accounts tools, the network files, nftables, the real clock, chrony,
//! and the rootless user from `/etc/passwd`.

use std::path::Path;

use atomix_config::quadlet::APP_USER;

use super::accounts::{self, RealAccounts, Shells};
use super::clock::RealClock;
use super::engine::{Deps, Rootless};
use super::etc_network::{EtcNetwork, ProcessRunner};
use super::firewall::{Interfaces, Nft};
use super::network::Network;
use super::systemctl_user::SystemctlUser;
use super::systemd::SystemdError;
use super::systemd_dbus::DbusSystemd;
use super::timesync::Chronyc;
use crate::store::RealFs;

/// Where rootful Quadlet units go.
pub const ROOTFUL_TARGET: &str = "/etc/containers/systemd";

/// The real implementations, owned; [`RealSystem::deps`] lends them to the engine.
#[derive(Debug)]
pub struct RealSystem {
    system: DbusSystemd,
    user: SystemctlUser,
    accounts: RealAccounts,
    network: EtcNetwork<ProcessRunner>,
    firewall: Nft,
    clock: RealClock,
    time_sync: Chronyc,
    rootless: Option<Rootless>,
}

impl RealSystem {
    /// Connects to the system bus and reads the rootless user from `/etc/passwd`.
    ///
    /// # Errors
    /// The system bus cannot be reached (no systemd).
    pub fn connect() -> Result<Self, SystemdError> {
        let rootless = accounts::app_user(Path::new("/")).map(|u| Rootless {
            user: APP_USER.to_owned(),
            owner: u.owner,
            home: u.home,
        });
        Ok(Self {
            system: DbusSystemd::system()?,
            user: SystemctlUser::machine(APP_USER),
            accounts: RealAccounts::default(),
            network: EtcNetwork::default(),
            firewall: Nft::default(),
            clock: RealClock::new(),
            time_sync: Chronyc,
            rootless,
        })
    }

    /// The engine's view of this system.
    pub fn deps(&mut self) -> Deps<'_> {
        Deps {
            fs: &RealFs,
            system: &mut self.system,
            user: &mut self.user,
            accounts: &mut self.accounts,
            network: &mut self.network as &mut dyn Network,
            firewall: &mut self.firewall,
            clock: &self.clock,
            time_sync: &mut self.time_sync,
            shells: Shells::detect(Path::exists),
            interfaces: Interfaces::default(),
            rootful_target: ROOTFUL_TARGET.into(),
            rootless: self.rootless.clone(),
        }
    }
}
