//! SSHSIG verification in the process (spec 6.5), against the admin signers of the active
//! config (`<root>/admin-signers`, one OpenSSH public key a line): the signature must be made
//! by one of those keys, in the `atomixos-reapply` namespace, over the exact message. Keys are
//! read with the config's own rules (`atomix_config::users::parse_ssh_key`): certificates and
//! RSA keys under 2048 bits are not signers. No `ssh-keygen` is run.

use std::io;
use std::path::Path;

use atomix_api::NAMESPACE;
use atomix_config::root_files::ADMIN_SIGNERS;
use atomix_config::users::parse_ssh_key;
use ssh_key::{PublicKey, SshSig};

/// The admin keys that may sign requests.
#[derive(Debug, Clone)]
pub struct Signers {
    keys: Vec<PublicKey>,
}

/// Why a signature is refused (all are one 401 for the client; the reason is logged).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The decoded header is not an armored SSHSIG.
    #[error("not an SSH signature")]
    Parse(#[source] ssh_key::Error),
    /// The signing key is not an admin signer.
    #[error("signed by a key that is not an admin signer ({0})")]
    NotASigner(String),
    /// Wrong namespace, or the signature does not match the message.
    #[error("the signature does not verify")]
    Verify(#[source] ssh_key::Error),
}

/// Why the signers cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}", path.display())]
pub struct SignersError {
    /// The file.
    pub path: std::path::PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl Signers {
    /// The signers of the active root `active`: `None` if `admin-signers` is missing or has no
    /// non-empty line (nobody can sign). Lines that are not acceptable keys sign nothing.
    pub fn read(active: &Path) -> Result<Option<Self>, SignersError> {
        let path = active.join(ADMIN_SIGNERS);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SignersError { path, source }),
        };
        Ok(Self::parse(&text))
    }

    /// The signers of an `admin-signers` text; `None` when it has no non-empty line.
    pub fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return None;
        }
        let keys = lines
            .iter()
            .filter_map(|l| parse_ssh_key(l).ok())
            .map(|k| k.key)
            .collect();
        Some(Self { keys })
    }

    /// Verifies the armored SSHSIG `armored` over `message` in the `atomixos-reapply`
    /// namespace, made by one of the signers.
    pub fn verify(&self, armored: &[u8], message: &[u8]) -> Result<(), VerifyError> {
        let sig = SshSig::from_pem(armored).map_err(VerifyError::Parse)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.key_data() == sig.public_key())
            .ok_or_else(|| VerifyError::NotASigner(sig.public_key().algorithm().to_string()))?;
        key.verify(NAMESPACE, message, &sig)
            .map_err(VerifyError::Verify)
    }
}
