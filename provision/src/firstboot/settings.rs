//! First boot's settings: the original's environment variables (spec 1.2) and the kernel
//! command line, read once into typed values.

use std::path::{Path, PathBuf};

use atomix_config::bundle::{BundleError, Limits};

use crate::store::{ConfigRoot, Owner, RootError};

/// `ATOMIXOS_FIRST_BOOT_SENTINEL`: written when first boot is done; its content is the time.
pub const SENTINEL: &str = "/data/.completed_first_boot";
/// `ATOMIXOS_INITRD_MARKER`: `/init` writes it on a fresh flash (per boot, in the tmpfs `/etc`).
pub const FRESH_FLASH_MARKER: &str = "/etc/atomixos/fresh-flash";
/// `ATOMIXOS_BOOT_SEED_PENDING` (ours): kept on `/data` from a fresh flash's first boot until
/// provisioning completes, so `/boot/config.toml` is still a seed after an interrupted first
/// boot (the original lost it: spec 9.3).
pub const BOOT_SEED_PENDING: &str = "/data/.atomixos-boot-seed-pending";
/// `ATOMIXOS_USB_SEARCH_DIRS`.
pub const USB_SEARCH_DIRS: &str = "/dev/disk/by-label:/dev/disk/by-partlabel";
/// Where the seeds tried and their problems are reported for the web console.
pub const STATUS_FILE: &str = "/run/atomixos/provisioning-status.json";
/// The variable that moves [`STATUS_FILE`] (ours; first boot writes it, the console reads it).
pub const STATUS_ENV: &str = "ATOMIXOS_PROVISIONING_STATUS";

/// Where the day-0 seed on the boot partition is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSeed {
    /// A file (`ATOMIXOS_BOOT_CONFIG_PATH`, as the original's `/boot/config.toml`).
    File(PathBuf),
    /// The booted slot's boot partition, mounted read-only while it is read (`boot-a` for
    /// `boot.0`, `boot-b` for `boot.1`; the default: nothing mounts it at `/boot`).
    Partition(PathBuf),
}

/// Everything first boot reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ATOMIXOS_CONFIG_ROOT`.
    pub config_root: ConfigRoot,
    /// `ATOMIXOS_FIRST_BOOT_SENTINEL`.
    pub sentinel: PathBuf,
    /// `ATOMIXOS_INITRD_MARKER`.
    pub fresh_flash_marker: PathBuf,
    /// `ATOMIXOS_BOOT_SEED_PENDING`.
    pub boot_seed_pending: PathBuf,
    /// The day-0 seed.
    pub boot_seed: BootSeed,
    /// `ATOMIXOS_USB_SEARCH_DIRS`, colon-separated.
    pub usb_search_dirs: Vec<PathBuf>,
    /// `ATOMIXOS_BOOT_SLOT`, else `rauc.slot=` of the kernel command line.
    pub slot: Option<String>,
    /// `ATOMIXOS_RAUC_ENABLE` (`0` skips mark-good).
    pub rauc: bool,
    /// `ATOMIXOS_PROVISIONING_STATUS` ([`STATUS_ENV`], ours).
    pub status_file: PathBuf,
    /// The bundle limits (`ATOMIXOS_MAX_*`).
    pub limits: Limits,
    /// The owner of a bundle's payload (`appsvc`).
    pub payload_owner: Option<Owner>,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config root is refused.
    #[error(transparent)]
    Root(#[from] RootError),
    /// A bundle limit is malformed.
    #[error(transparent)]
    Limits(#[from] BundleError),
}

/// The `rauc.slot=` value of a kernel command line.
pub fn slot_of_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The boot partition of a RAUC boot slot: `boot.1` → `boot-b`, anything else → `boot-a`.
pub fn boot_partlabel(slot: Option<&str>) -> &'static str {
    match slot {
        Some("boot.1") => "boot-b",
        _ => "boot-a",
    }
}

impl Settings {
    /// Reads the settings from `env` (a variable's value, if set) and the kernel command line;
    /// `cwd` resolves a relative config root.
    ///
    /// # Errors
    /// The config root or a limit is refused.
    pub fn from_env(
        env: impl Fn(&str) -> Option<String>,
        cmdline: &str,
        cwd: &Path,
        payload_owner: Option<Owner>,
    ) -> Result<Self, SettingsError> {
        let path = |key: &str, default: &str| PathBuf::from(env(key).unwrap_or(default.into()));
        let root = path(
            "ATOMIXOS_CONFIG_ROOT",
            crate::store::root::DEFAULT_CONFIG_ROOT,
        );
        let config_root = ConfigRoot::validate(&root, cwd, &env)?;
        let slot = env("ATOMIXOS_BOOT_SLOT")
            .filter(|s| !s.is_empty())
            .or_else(|| slot_of_cmdline(cmdline));
        let boot_seed = match env("ATOMIXOS_BOOT_CONFIG_PATH") {
            Some(p) => BootSeed::File(p.into()),
            None => BootSeed::Partition(
                Path::new("/dev/disk/by-partlabel").join(boot_partlabel(slot.as_deref())),
            ),
        };
        let dirs = env("ATOMIXOS_USB_SEARCH_DIRS").unwrap_or(USB_SEARCH_DIRS.into());
        Ok(Self {
            config_root,
            sentinel: path("ATOMIXOS_FIRST_BOOT_SENTINEL", SENTINEL),
            fresh_flash_marker: path("ATOMIXOS_INITRD_MARKER", FRESH_FLASH_MARKER),
            boot_seed_pending: path("ATOMIXOS_BOOT_SEED_PENDING", BOOT_SEED_PENDING),
            boot_seed,
            usb_search_dirs: dirs
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
            slot,
            rauc: env("ATOMIXOS_RAUC_ENABLE").as_deref() != Some("0"),
            status_file: path(STATUS_ENV, STATUS_FILE),
            limits: Limits::from_env(&env)?,
            payload_owner,
        })
    }
}
