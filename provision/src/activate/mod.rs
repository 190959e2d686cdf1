//! The activation engine (DESIGN section 9, spec 5.5-5.7), behind narrow traits with fakes.
//!
//! - [`systemd`]: the [`Systemd`] trait, job results, [`FakeSystemd`]; [`systemd_dbus`]: the
//!   system manager over zbus; [`systemctl_user`]: `appsvc`'s manager through `systemctl
//!   --user --machine=appsvc@.host` (or `runuser`).
//! - [`rauc`]: the [`Rauc`] trait, [`FakeRauc`], [`DbusRauc`].
//! - [`accounts`]: the user apply as a pure [`accounts::plan`] and the [`Accounts`] executor.
//! - [`firewall`]: the inbound rules as a pure function to one nft script, the [`Firewall`]
//!   trait, [`Nft`].
//! - [`network`]: the network step's trait and restart rules; [`etc_network`]: the step itself
//!   ([`EtcNetwork`]: the files of spec 5.2 written into `/etc`, `networkctl reload`).
//! - [`bootstrap`]: the bootstrap WAN toggle (tcp/8080 on the WAN while unprovisioned).
//! - [`policy`]: `activation-policy.json` / `health-required.json`.
//! - [`clock`]: [`Clock`], real and fake; [`timesync`]: the clock check before image pulls.
//! - [`health`]: the health window.
//! - [`outcome`]: events, failures, outcomes, rollback status.
//! - [`engine`]: [`activate`], [`run`] and [`complete`] (or, for a change held for
//!   confirmation, [`activate_promoted`] then [`commit`] or [`revert`]); [`gate`]: mark-good
//!   after a commit.
//! - [`system`]: [`RealSystem`], the real implementations wired for a device.

pub mod accounts;
pub mod bootstrap;
pub mod clock;
pub mod engine;
pub mod etc_network;
pub mod firewall;
pub mod gate;
pub mod health;
pub mod network;
pub mod outcome;
pub mod policy;
pub mod rauc;
pub mod system;
pub mod systemctl_user;
pub mod systemd;
pub mod systemd_dbus;
pub mod timesync;

pub use accounts::{AccountOp, AccountPlan, Accounts, AccountsError, FakeAccounts, RealAccounts};
pub use clock::{Clock, FakeClock, RealClock};
pub use engine::{
    Activated, Deps, Rootless, activate, activate_promoted, check_health, commit, complete,
    reactivate, restart_order, revert, run,
};
pub use etc_network::{EtcNetwork, FakeRunner, ProcessRunner, Runner};
pub use firewall::{FakeFirewall, Firewall, FirewallError, Inbound, Interfaces, Nft, Ports};
pub use gate::{Gate, mark_good, mark_good_gate};
pub use network::{FakeNetwork, Network, NetworkChanges, NetworkError, NoNetwork};
pub use outcome::{
    Committed, Completion, DeployStatus, Event, Failure, Outcome, RollbackStatus, ServiceStatus,
    Step,
};
pub use policy::{Policy, PolicyError, load_policy};
pub use rauc::{DbusRauc, FakeRauc, Marked, Rauc, RaucError};
pub use system::RealSystem;
pub use systemctl_user::SystemctlUser;
pub use systemd::{ActiveState, FakeSystemd, JobResult, Systemd, SystemdCall, SystemdError};
pub use systemd_dbus::DbusSystemd;
pub use timesync::{Chronyc, FakeTimeSync, TimeSync};
