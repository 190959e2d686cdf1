//! Signing as an admin (spec 6.5): an SSHSIG over [`atomix_api::signed_message`] in namespace
//! [`atomix_api::NAMESPACE`], made with an OpenSSH private key file ([`atomix_api::sign`]) or by
//! ssh-agent, sent as the strict base64 of the whole armored signature
//! ([`atomix_api::sign::header_value`]).
//!
//! Passphrase-protected key files are refused with a hint rather than prompted for: ssh-agent
//! already asks for the passphrase once (`ssh-add KEY`) and keeps it out of this process, so
//! `--agent --key KEY` signs with them.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh_agent_client_rs::Client;
use ssh_key::{HashAlg, PrivateKey, PublicKey};

/// How long ssh-agent may take to answer (it may ask its user to confirm a key's use).
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a key cannot be used or a signature not made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key file cannot be read.
    #[error("cannot read the key {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is neither an OpenSSH private key nor a public key.
    #[error("{}: not an OpenSSH private key or a public key", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ssh_key::Error,
    },
    /// A passphrase-protected private key without `--agent`.
    #[error(
        "{}: the key is protected by a passphrase, which atomix does not ask for: load it \
         into ssh-agent (ssh-add {0}) and add --agent",
        .path.display()
    )]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// A public key without `--agent`.
    #[error(
        "{}: a public key: add --agent to sign with its private half in ssh-agent",
        .path.display()
    )]
    PublicOnly {
        /// The file.
        path: PathBuf,
    },
    /// `--agent` without `SSH_AUTH_SOCK`.
    #[error("--agent: SSH_AUTH_SOCK is not set (start ssh-agent and ssh-add the admin key)")]
    NoAgent,
    /// ssh-agent cannot be reached or answered with an error.
    #[error("ssh-agent at {}", .socket.display())]
    Agent {
        /// Its socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: ssh_agent_client_rs::Error,
    },
    /// ssh-agent holds no key (or not the one asked for).
    #[error("ssh-agent at {} does not hold {wanted}", .socket.display())]
    AgentLacks {
        /// Its socket.
        socket: PathBuf,
        /// `any key`, or the fingerprint asked for.
        wanted: String,
    },
    /// ssh-agent holds several keys and none was named.
    #[error(
        "ssh-agent at {} holds {} keys ({}): name the admin key with --key KEY.pub",
        .socket.display(), .keys.len(), .keys.join(", ")
    )]
    AgentAmbiguous {
        /// Its socket.
        socket: PathBuf,
        /// Their fingerprints.
        keys: Vec<String>,
    },
    /// The signature cannot be made or encoded.
    #[error("cannot sign with {fingerprint}")]
    Sign {
        /// The key's fingerprint.
        fingerprint: String,
        /// The cause.
        #[source]
        source: ssh_key::Error,
    },
}

/// What signs: a private key in this process, or a key held by ssh-agent.
pub enum Signer {
    /// An unencrypted OpenSSH private key read from a file.
    Key(Box<PrivateKey>),
    /// A key held by ssh-agent.
    Agent {
        /// The connection.
        client: Client,
        /// Its socket (for messages).
        socket: PathBuf,
        /// The key it signs with.
        key: PublicKey,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(_) => write!(f, "Signer::Key({})", self.fingerprint()),
            Self::Agent { socket, .. } => write!(
                f,
                "Signer::Agent({}, {})",
                socket.display(),
                self.fingerprint()
            ),
        }
    }
}

/// A key file's contents.
enum KeyFile {
    Private(Box<PrivateKey>),
    Public(PublicKey),
}

fn read_key_file(path: &Path) -> Result<KeyFile, SignError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse = |source| SignError::Parse {
        path: path.to_owned(),
        source,
    };
    if text.trim_start().starts_with("-----BEGIN") {
        PrivateKey::from_openssh(&text)
            .map(|k| KeyFile::Private(Box::new(k)))
            .map_err(parse)
    } else {
        PublicKey::from_openssh(text.trim())
            .map(KeyFile::Public)
            .map_err(parse)
    }
}

impl Signer {
    /// Signs with the unencrypted OpenSSH private key in `path`.
    pub fn from_key_file(path: &Path) -> Result<Self, SignError> {
        match read_key_file(path)? {
            KeyFile::Private(key) if key.is_encrypted() => Err(SignError::Encrypted {
                path: path.to_owned(),
            }),
            KeyFile::Private(key) => Ok(Self::Key(key)),
            KeyFile::Public(_) => Err(SignError::PublicOnly {
                path: path.to_owned(),
            }),
        }
    }

    /// Signs through the ssh-agent at `SSH_AUTH_SOCK` with the key whose public half is
    /// `key` (a public key file, or a private key file, encrypted or not), or with the only
    /// key it holds.
    pub fn from_agent(key: Option<&Path>) -> Result<Self, SignError> {
        let socket = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .ok_or(SignError::NoAgent)?;
        let wanted = match key.map(read_key_file).transpose()? {
            Some(KeyFile::Private(k)) => Some(k.public_key().clone()),
            Some(KeyFile::Public(k)) => Some(k),
            None => None,
        };
        Self::with_agent(&socket, wanted.as_ref())
    }

    /// Signs through the ssh-agent listening on `socket`.
    pub fn with_agent(socket: &Path, wanted: Option<&PublicKey>) -> Result<Self, SignError> {
        let agent_err = |source| SignError::Agent {
            socket: socket.to_owned(),
            source,
        };
        let stream = UnixStream::connect(socket)
            .and_then(|s| {
                s.set_read_timeout(Some(AGENT_TIMEOUT))?;
                s.set_write_timeout(Some(AGENT_TIMEOUT))?;
                Ok(s)
            })
            .map_err(|e| agent_err(e.into()))?;
        let mut client = Client::with_read_write(Box::new(stream));
        let held: Vec<PublicKey> = client
            .list_all_identities()
            .map_err(agent_err)?
            .into_iter()
            .filter_map(|identity| match identity {
                ssh_agent_client_rs::Identity::PublicKey(key) => Some(key.into_owned()),
                ssh_agent_client_rs::Identity::Certificate(_) => None,
            })
            .collect();
        let lacks = |wanted: String| SignError::AgentLacks {
            socket: socket.to_owned(),
            wanted,
        };
        let key = match wanted {
            Some(w) => held
                .into_iter()
                .find(|k| k.key_data() == w.key_data())
                .ok_or_else(|| lacks(fingerprint(w)))?,
            None => match <[PublicKey; 1]>::try_from(held) {
                Ok([only]) => only,
                Err(held) if held.is_empty() => return Err(lacks("any key".into())),
                Err(held) => {
                    return Err(SignError::AgentAmbiguous {
                        socket: socket.to_owned(),
                        keys: held.iter().map(fingerprint).collect(),
                    });
                }
            },
        };
        Ok(Self::Agent {
            client,
            socket: socket.to_owned(),
            key,
        })
    }

    /// The signing key's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        match self {
            Self::Key(key) => fingerprint(key.public_key()),
            Self::Agent { key, .. } => fingerprint(key),
        }
    }

    /// The armored SSHSIG of `message` (as `ssh-keygen -Y sign -n atomixos-reapply` writes it).
    pub fn sign(&mut self, message: &str) -> Result<String, SignError> {
        let sign_err = |fingerprint: String| {
            move |source| SignError::Sign {
                fingerprint,
                source,
            }
        };
        match self {
            Self::Key(key) => atomix_api::sign::sign(key, message)
                .map_err(sign_err(fingerprint(key.public_key()))),
            Self::Agent {
                client,
                socket,
                key,
            } => {
                let data =
                    atomix_api::sign::signed_data(message).map_err(sign_err(fingerprint(key)))?;
                let raw = client
                    .sign(&*key, &data)
                    .map_err(|source| SignError::Agent {
                        socket: socket.clone(),
                        source,
                    })?;
                atomix_api::sign::armor(key.key_data(), raw).map_err(sign_err(fingerprint(key)))
            }
        }
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;

    /// Makes `dir/name` (and `.pub`) with `ssh-keygen -t kind`.
    fn keygen(dir: &Path, name: &str, kind: &[&str], passphrase: &str) -> PathBuf {
        let path = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-N", passphrase, "-C", name, "-f"])
            .arg(&path)
            .args(kind)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    fn public(path: &Path) -> PublicKey {
        let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        PublicKey::from_openssh(text.trim()).unwrap()
    }

    /// `ssh-keygen -Y verify -n atomixos-reapply -I x` of `armored` over `message`, trusting
    /// `key` only.
    fn ssh_keygen_verifies(dir: &Path, key: &PublicKey, message: &str, armored: &str) -> bool {
        let signers = dir.join("allowed_signers");
        let sig = dir.join("message.sig");
        std::fs::write(&signers, format!("x {}\n", key.to_openssh().unwrap())).unwrap();
        std::fs::write(&sig, armored).unwrap();
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", atomix_api::NAMESPACE, "-I", "x", "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(&sig)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        child.wait().unwrap().success()
    }

    const KINDS: &[(&str, &[&str])] = &[
        ("ed25519", &["-t", "ed25519"]),
        ("rsa3072", &["-t", "rsa", "-b", "3072"]),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"]),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384"]),
    ];

    #[test]
    fn key_file_signatures_verify_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let message = atomix_api::signed_message("n0nce", "/api/config", b"version = 1\n");
        for (name, kind) in KINDS {
            let path = keygen(dir.path(), name, kind, "");
            let mut signer = Signer::from_key_file(&path).unwrap();
            let armored = signer
                .sign(&message)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(
                armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"),
                "{armored}"
            );
            let key = public(&path);
            assert!(
                ssh_keygen_verifies(dir.path(), &key, &message, &armored),
                "{name}"
            );
            // Bound to the message: another nonce, path or body does not verify.
            let other = atomix_api::signed_message("n0nce", "/api/config", b"version = 2\n");
            assert!(!ssh_keygen_verifies(dir.path(), &key, &other, &armored));
        }
    }

    #[test]
    fn public_and_encrypted_key_files_are_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let locked = keygen(dir.path(), "locked", &["-t", "ed25519"], "secret phrase");
        let err = Signer::from_key_file(&locked).unwrap_err();
        assert!(matches!(err, SignError::Encrypted { .. }), "{err}");
        assert!(err.to_string().contains("ssh-add"), "{err}");
        let err = Signer::from_key_file(&locked.with_extension("pub")).unwrap_err();
        assert!(err.to_string().contains("--agent"), "{err}");
        // The public half of an encrypted file names the agent's key.
        let Ok(KeyFile::Private(key)) = read_key_file(&locked) else {
            panic!("an encrypted key file is read for its public half");
        };
        assert_eq!(key.public_key().key_data(), public(&locked).key_data());
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key\n").unwrap();
        assert!(matches!(
            Signer::from_key_file(&junk),
            Err(SignError::Parse { .. })
        ));
    }

    /// A real `ssh-agent -D` on a socket in a temporary directory, killed by pid on drop.
    struct Agent {
        child: Child,
        socket: PathBuf,
    }

    impl Agent {
        fn start(dir: &Path) -> Self {
            let socket = dir.join("agent.sock");
            let child = Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let agent = Self { child, socket };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !agent.socket.exists() {
                assert!(Instant::now() < deadline, "ssh-agent did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            agent
        }

        fn add(&self, key: &Path) {
            let status = Command::new("ssh-add")
                .arg("-q")
                .arg(key)
                .env("SSH_AUTH_SOCK", &self.socket)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn agent_signatures_verify_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::start(dir.path());
        let err = Signer::with_agent(&agent.socket, None).unwrap_err();
        assert!(err.to_string().contains("does not hold any key"), "{err}");

        let message = atomix_api::signed_message("n0nce", "/api/config/export", b"");
        let mut keys = Vec::new();
        for (name, kind) in KINDS {
            let path = keygen(dir.path(), name, kind, "");
            agent.add(&path);
            keys.push(public(&path));
        }
        for key in &keys {
            let mut signer = Signer::with_agent(&agent.socket, Some(key)).unwrap();
            assert_eq!(signer.fingerprint(), fingerprint(key));
            let armored = signer.sign(&message).unwrap();
            assert!(
                ssh_keygen_verifies(dir.path(), key, &message, &armored),
                "{}",
                key.algorithm()
            );
        }
        let err = Signer::with_agent(&agent.socket, None).unwrap_err();
        assert!(
            matches!(&err, SignError::AgentAmbiguous { keys, .. } if keys.len() == KINDS.len()),
            "{err}"
        );
        let stranger = keygen(dir.path(), "stranger", &["-t", "ed25519"], "");
        let err = Signer::with_agent(&agent.socket, Some(&public(&stranger))).unwrap_err();
        assert!(matches!(err, SignError::AgentLacks { .. }), "{err}");
    }
}
