//! `[users]`: accounts, their shells and OpenSSH public keys, and the rule that some admin has a
//! key. Keys are decoded for real (`ssh-key`): the blob must be the declared type, RSA at least
//! 2048 bits, no certificates.

use std::fmt;

use ssh_key::PublicKey;
use ssh_key::public::KeyData;

use crate::check::{Checker, join};
use crate::tree::Node;

/// Names the system owns, refused as config users.
pub const RESERVED_USER_NAMES: [&str; 10] = [
    "appsvc",
    "bin",
    "chrony",
    "daemon",
    "dnsmasq",
    "nobody",
    "root",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
];

/// The key types accepted in `ssh_key` (the first field of the line).
pub const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A user name: `[a-z_][a-z0-9_-]{0,31}`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let b = name.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || *c == b'_');
        let rest_ok = b[1.min(b.len())..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
        if !first_ok || !rest_ok || b.len() > 32 {
            return Err(format!(
                "invalid user name {name:?}: 1 to 32 of a-z, 0-9, `_`, `-`, starting with a-z or `_`"
            ));
        }
        if RESERVED_USER_NAMES.contains(&name) {
            return Err(format!("user name {name:?} is reserved for the system"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shell {
    /// `bash`.
    Bash,
    /// `sh`.
    Sh,
    /// `zsh`.
    Zsh,
}

impl Shell {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Sh => "sh",
            Shell::Zsh => "zsh",
        }
    }
}

/// A validated OpenSSH public key: the trimmed line as written and the decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// The line, trimmed (type, base64 blob, optional comment).
    pub line: String,
    /// The decoded key.
    pub key: PublicKey,
}

/// Parses one OpenSSH public key line.
pub fn parse_ssh_key(raw: &str) -> Result<SshKey, String> {
    let line = raw.trim();
    if line.chars().any(|c| c.is_control()) {
        return Err("an SSH public key must not contain control characters".into());
    }
    let mut fields = line.split_whitespace();
    let kind = fields.next().unwrap_or("");
    let Some(blob) = fields.next() else {
        return Err("an SSH public key needs a type and a base64 key".into());
    };
    if kind.contains("-cert-") {
        return Err(format!("SSH certificates are not accepted ({kind})"));
    }
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "unsupported SSH key type {kind:?} (one of: {})",
            SSH_KEY_TYPES.join(", ")
        ));
    }
    // The crate wants single spaces between the fields; the comment keeps its own spacing.
    let comment = fields.collect::<Vec<_>>().join(" ");
    let normal = if comment.is_empty() {
        format!("{kind} {blob}")
    } else {
        format!("{kind} {blob} {comment}")
    };
    let key = PublicKey::from_openssh(&normal)
        .map_err(|e| format!("the {kind} key does not decode: {e}"))?;
    if key.algorithm().as_str() != kind {
        return Err(format!(
            "the key is declared {kind} but its data is {}",
            key.algorithm().as_str()
        ));
    }
    if let KeyData::Rsa(rsa) = key.key_data() {
        let n = rsa.n.as_positive_bytes().unwrap_or(&[]);
        let bits = n
            .first()
            .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key has {bits} bits, at least {MIN_RSA_BITS} needed"
            ));
        }
    }
    Ok(SshKey {
        line: line.to_owned(),
        key,
    })
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: UserName,
    /// `isAdmin` (default `false`).
    pub is_admin: bool,
    /// `ssh_key`, when not blank.
    pub ssh_key: Option<SshKey>,
    /// `shell`, when given.
    pub shell: Option<Shell>,
}

/// The accounts in config order; at least one admin has a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// The accounts, in config order.
    pub list: Vec<User>,
}

impl Users {
    /// The admins' key lines, in config order (the admin signers).
    pub fn admin_keys(&self) -> impl Iterator<Item = &SshKey> {
        self.list
            .iter()
            .filter(|u| u.is_admin)
            .filter_map(|u| u.ssh_key.as_ref())
    }
}

/// Checks `[users]`.
pub(crate) fn check(c: &mut Checker<'_>, node: &Node) -> Option<Users> {
    let before = c.error_count();
    let table = c.any_table(node, "users")?;
    let entries = table.entries().unwrap_or(&[]);
    if entries.is_empty() {
        c.error("users", &node.span, "at least one user is needed");
    }
    let mut list = Vec::new();
    for e in entries {
        let path = join("users", &e.key);
        let name = UserName::new(&e.key).map_err(|m| c.error(&path, &e.key_span, m));
        let user = user(c, &e.node, &path);
        if let (Ok(name), Some((is_admin, ssh_key, shell))) = (name, user) {
            list.push(User {
                name,
                is_admin,
                ssh_key,
                shell,
            });
        }
    }
    if c.error_count() > before {
        return None;
    }
    let users = Users { list };
    if users.admin_keys().next().is_none() {
        c.error(
            "users",
            &node.span,
            "at least one user needs isAdmin = true and a non-empty ssh_key",
        );
        return None;
    }
    Some(users)
}

/// The keys of a user's entry (also what `PUT /api/config/users/{name}` takes).
pub(crate) const KEYS: [&str; 3] = ["isAdmin", "ssh_key", "shell"];

type UserFields = (bool, Option<SshKey>, Option<Shell>);

fn user(c: &mut Checker<'_>, node: &Node, path: &str) -> Option<UserFields> {
    let before = c.error_count();
    let t = c.table(node, path, &KEYS, &[])?;
    let is_admin = match t.get("isAdmin") {
        Some(n) => c.boolean(n, &join(path, "isAdmin")).unwrap_or(false),
        None => false,
    };
    let mut ssh_key = None;
    if let Some(n) = t.get("ssh_key") {
        let p = join(path, "ssh_key");
        if let Some(s) = c.string(n, &p)
            && !s.trim().is_empty()
        {
            ssh_key = parse_ssh_key(s).map_err(|m| c.error(&p, &n.span, m)).ok();
        }
    }
    let mut shell = None;
    if let Some(n) = t.get("shell") {
        let p = join(path, "shell");
        shell = match c.string(n, &p) {
            Some("bash") => Some(Shell::Bash),
            Some("sh") => Some(Shell::Sh),
            Some("zsh") => Some(Shell::Zsh),
            Some(other) => {
                c.error(
                    &p,
                    &n.span,
                    format!("unknown shell {other:?} (one of: bash, sh, zsh)"),
                );
                None
            }
            None => None,
        };
    }
    (c.error_count() == before).then_some((is_admin, ssh_key, shell))
}
