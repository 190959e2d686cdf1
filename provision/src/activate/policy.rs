//! The activation policy (spec 5.6 step 1): `activation-policy.json` (strict) or, if it is
//! missing, `health-required.json` (non-strict), and how policy names resolve to runtime units.
//!
//! Both files are `atomix-config`'s types ([`PolicyFile`], [`HealthRequired`]), the ones its
//! rendering writes.

use std::path::{Path, PathBuf};

use atomix_config::activation::{HealthRequired, PolicyFile};

use crate::store::Fs;
use crate::store::quadlet_sync::{Mode, RuntimeUnit, service_name};

/// The strict policy file, and the older, non-strict list of required containers.
pub use atomix_config::root_files::{ACTIVATION_POLICY, HEALTH_REQUIRED};
/// The default `timeout_seconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// The policy the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Required container names (without `.service`).
    pub required: Vec<String>,
    /// Deadline from the start of the activation.
    pub timeout_seconds: u64,
    /// Settle window.
    pub settle_seconds: u64,
    /// Containers to restart.
    pub restart: Vec<String>,
    /// Containers allowed to be degraded.
    pub allow_degraded: Vec<String>,
    /// `allow_degraded` given explicitly.
    pub allow_degraded_configured: bool,
    /// Read from `activation-policy.json`.
    pub strict: bool,
}

impl Default for Policy {
    /// Nothing required, 300 s, no settle, non-strict (neither file exists).
    fn default() -> Self {
        Self {
            required: Vec::new(),
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            settle_seconds: 0,
            restart: Vec::new(),
            allow_degraded: Vec::new(),
            allow_degraded_configured: false,
            strict: false,
        }
    }
}

/// Why the policy cannot be used (an activation failure).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading the file failed.
    #[error(transparent)]
    Fs(#[from] crate::store::FsError),
    /// The file is not the expected JSON.
    #[error("invalid activation policy {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A strict-mode rule is broken.
    #[error("invalid activation policy {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which rule.
        reason: String,
    },
}

/// The runtime unit a policy name means: the one whose service is `<name>.service`.
pub fn resolve<'a>(name: &str, units: &'a [RuntimeUnit]) -> Option<&'a RuntimeUnit> {
    let service = format!("{name}.service");
    units
        .iter()
        .find(|u| service_name(&u.filename).as_deref() == Some(service.as_str()))
}

/// The service and mode of a policy name; a name missing from the metadata is a rootful
/// `<name>.service` (non-strict policies only; strict ones were checked).
pub fn service_of(name: &str, units: &[RuntimeUnit]) -> (String, Mode) {
    match resolve(name, units) {
        Some(u) => (
            service_name(&u.filename).unwrap_or_else(|| format!("{name}.service")),
            u.mode,
        ),
        None => (format!("{name}.service"), Mode::Rootful),
    }
}

/// Loads the policy of `config_root` (spec 5.6 step 1). Strict checks: every listed name is a
/// runtime unit, the integers are in range, the strategy is `rollback`. Neither file:
/// [`Policy::default`].
pub fn load_policy(
    fs: &dyn Fs,
    config_root: &Path,
    units: &[RuntimeUnit],
) -> Result<Policy, PolicyError> {
    let strict = config_root.join(ACTIVATION_POLICY);
    if fs.exists(&strict)? {
        let bytes = fs.read(&strict)?;
        let file: PolicyFile =
            serde_json::from_slice(&bytes).map_err(|source| PolicyError::Json {
                path: strict.clone(),
                source,
            })?;
        let invalid = |reason: String| PolicyError::Invalid {
            path: strict.clone(),
            reason,
        };
        if !(1..=3600).contains(&file.timeout_seconds) {
            return Err(invalid(format!("timeout_seconds {}", file.timeout_seconds)));
        }
        if file.settle_seconds > 300 {
            return Err(invalid(format!("settle_seconds {}", file.settle_seconds)));
        }
        if file.strategy != "rollback" {
            return Err(invalid(format!("strategy {:?}", file.strategy)));
        }
        let names = file
            .required
            .iter()
            .chain(&file.restart)
            .chain(&file.allow_degraded);
        for name in names {
            if resolve(name, units).is_none() {
                return Err(invalid(format!("unknown unit {name:?}")));
            }
        }
        return Ok(Policy {
            required: file.required,
            timeout_seconds: file.timeout_seconds,
            settle_seconds: file.settle_seconds,
            restart: file.restart,
            allow_degraded: file.allow_degraded,
            allow_degraded_configured: file.allow_degraded_configured,
            strict: true,
        });
    }
    let loose = config_root.join(HEALTH_REQUIRED);
    if !fs.exists(&loose)? {
        return Ok(Policy::default());
    }
    let bytes = fs.read(&loose)?;
    let HealthRequired(required) =
        serde_json::from_slice(&bytes).map_err(|source| PolicyError::Json {
            path: loose.clone(),
            source,
        })?;
    Ok(Policy {
        required,
        ..Policy::default()
    })
}
