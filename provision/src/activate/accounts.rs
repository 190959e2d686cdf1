//! The user apply of spec 5.1 as a pure [`plan`] from `users.json`, the previous
//! `managed-users.json` and what exists, and the [`Accounts`] executor that carries it out.
//!
//! Shells: `/usr/bin/<shell>` (the Debian root filesystem has `bash`, `sh` and, if installed,
//! `zsh` there). A user's `shell` from the config is used at creation; otherwise admins get
//! `/usr/bin/zsh` if it exists, else `/usr/bin/bash`, and other users `/usr/bin/bash`
//! ([`Shells::detect`]). Shells are never changed after creation (as the original).
//!
//! Deliberate changes from the original: an unmanaged existing user refuses the whole plan
//! before anything runs (the original aborted half-way); admin groups include Debian's `sudo`
//! besides `wheel` and `podman` (whichever exist); removed users are locked only if they exist,
//! and stay managed while they do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_config::quadlet::APP_USER;
use serde::Deserialize;

use crate::store::Owner;

/// Names never created, changed or locked.
pub const PROTECTED: &[&str] = &["root", "appsvc"];

/// Groups admins are added to and other users removed from, those that exist.
pub const ADMIN_GROUPS: &[&str] = &["wheel", "sudo", "podman"];

/// Where shells live on the root filesystem.
pub const SHELL_DIR: &str = "/usr/bin";

/// The shell of a removed user.
pub const NOLOGIN: &str = "/usr/sbin/nologin";

/// One user of `users.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserSpec {
    /// An admin (home directory, admin groups).
    #[serde(rename = "isAdmin", default)]
    pub is_admin: bool,
    /// The SSH key (its file is `ssh-authorized-keys/<user>`).
    #[serde(default)]
    pub ssh_key: String,
    /// `bash`, `sh` or `zsh`, if given.
    #[serde(default)]
    pub shell: Option<String>,
}

/// The users of `users.json`, by name.
pub type Users = BTreeMap<String, UserSpec>;

/// What exists on the system now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// User names.
    pub users: BTreeSet<String>,
    /// Groups and their (supplementary) members.
    pub groups: BTreeMap<String, BTreeSet<String>>,
}

/// The default shells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shells {
    /// For admins without a `shell`.
    pub admin: PathBuf,
    /// For other users without a `shell`.
    pub system: PathBuf,
}

impl Shells {
    /// zsh for admins if `/usr/bin/zsh` exists (`exists` decides), else bash; bash for others.
    pub fn detect(exists: impl Fn(&Path) -> bool) -> Self {
        let zsh = Path::new(SHELL_DIR).join("zsh");
        let bash = Path::new(SHELL_DIR).join("bash");
        Self {
            admin: if exists(&zsh) { zsh } else { bash.clone() },
            system: bash,
        }
    }
}

/// One step of an account plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOp {
    /// `useradd --create-home --shell <shell> [--no-user-group] <name>`.
    CreateAdmin {
        /// The user.
        name: String,
        /// Its shell.
        shell: PathBuf,
        /// A group of the user's name exists already (Debian has `operator`, `staff`, …):
        /// useradd would refuse to make it, so the user gets the default group instead.
        no_user_group: bool,
    },
    /// `useradd --system --shell <shell> [--no-user-group] <name>`.
    CreateSystem {
        /// The user.
        name: String,
        /// Its shell.
        shell: PathBuf,
        /// As for [`AccountOp::CreateAdmin`].
        no_user_group: bool,
    },
    /// `usermod --lock <name>` (no passwords) after a creation.
    Lock(String),
    /// `usermod --expiredate= --lock <name>` for a managed user that exists.
    UnexpireLock(String),
    /// `gpasswd --add <name> <group>`.
    AddToGroup {
        /// The user.
        name: String,
        /// The group.
        group: String,
    },
    /// `gpasswd --delete <name> <group>`.
    RemoveFromGroup {
        /// The user.
        name: String,
        /// The group.
        group: String,
    },
    /// `chown <name>: <key>` and mode 0600.
    ChownKey {
        /// The user.
        name: String,
        /// `ssh-authorized-keys/<name>`.
        path: PathBuf,
    },
    /// `loginctl enable-linger <name>`: its user manager runs without a login (the rootless
    /// containers' user).
    EnableLinger(String),
    /// `usermod --lock --expiredate=1 --shell=/usr/sbin/nologin <name>`.
    LockRemoved(String),
}

/// A plan and the managed set to save after it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPlan {
    /// The steps, in order.
    pub ops: Vec<AccountOp>,
    /// `managed-users.json` afterwards.
    pub managed: BTreeSet<String>,
    /// Names skipped (protected or not a valid user name).
    pub skipped: Vec<String>,
}

/// Why a plan or its execution failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// A declared user exists and was not managed before.
    #[error("refusing to modify unmanaged existing user: {0}")]
    Unmanaged(String),
    /// A command failed.
    #[error("{program} for user {user:?} failed: {reason}")]
    Command {
        /// `useradd`, `usermod`, `gpasswd`, `chown`.
        program: &'static str,
        /// The user.
        user: String,
        /// Exit status and stderr, or the spawn error.
        reason: String,
    },
    /// Reading `/etc/passwd` or `/etc/group` failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// `^[a-z_][a-z0-9_-]{0,31}$`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 32
        && (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Plans the apply: creations (admin or system, then lock), unexpire-and-lock of managed users
/// that exist, groups, key ownership, and locking users managed before but no longer declared.
/// `keys_dir` is `ssh-authorized-keys`; keys are chowned for users with a non-empty key.
pub fn plan(
    users: &Users,
    managed_before: &BTreeSet<String>,
    existing: &Existing,
    shells: &Shells,
    keys_dir: &Path,
) -> Result<AccountPlan, AccountsError> {
    let mut out = AccountPlan::default();
    let mut declared = BTreeSet::new();
    for name in users.keys() {
        if PROTECTED.contains(&name.as_str()) || !valid_name(name) {
            out.skipped.push(name.clone());
            continue;
        }
        if existing.users.contains(name) && !managed_before.contains(name) {
            return Err(AccountsError::Unmanaged(name.clone()));
        }
        declared.insert(name.clone());
    }
    for name in &declared {
        let Some(spec) = users.get(name) else {
            continue;
        };
        plan_user(&mut out.ops, name, spec, existing, shells, keys_dir);
    }
    for name in managed_before.difference(&declared) {
        if PROTECTED.contains(&name.as_str()) || !existing.users.contains(name) {
            continue;
        }
        out.ops.push(AccountOp::LockRemoved(name.clone()));
        out.managed.insert(name.clone());
    }
    out.managed.extend(declared);
    Ok(out)
}

fn plan_user(
    ops: &mut Vec<AccountOp>,
    name: &str,
    spec: &UserSpec,
    existing: &Existing,
    shells: &Shells,
    keys_dir: &Path,
) {
    let user = name.to_owned();
    if existing.users.contains(name) {
        ops.push(AccountOp::UnexpireLock(user.clone()));
    } else {
        let shell = match &spec.shell {
            Some(s) => Path::new(SHELL_DIR).join(s),
            None if spec.is_admin => shells.admin.clone(),
            None => shells.system.clone(),
        };
        let no_user_group = existing.groups.contains_key(name);
        ops.push(if spec.is_admin {
            AccountOp::CreateAdmin {
                name: user.clone(),
                shell,
                no_user_group,
            }
        } else {
            AccountOp::CreateSystem {
                name: user.clone(),
                shell,
                no_user_group,
            }
        });
        ops.push(AccountOp::Lock(user.clone()));
    }
    for group in ADMIN_GROUPS {
        let Some(members) = existing.groups.get(*group) else {
            continue;
        };
        let group = (*group).to_owned();
        if spec.is_admin && !members.contains(name) {
            ops.push(AccountOp::AddToGroup {
                name: user.clone(),
                group,
            });
        } else if !spec.is_admin && members.contains(name) {
            ops.push(AccountOp::RemoveFromGroup {
                name: user.clone(),
                group,
            });
        }
    }
    if !spec.ssh_key.is_empty() {
        ops.push(AccountOp::ChownKey {
            name: user,
            path: keys_dir.join(name),
        });
    }
}

/// Carries out account steps.
pub trait Accounts {
    /// The users and groups that exist now.
    fn existing(&mut self) -> Result<Existing, AccountsError>;
    /// Runs one step.
    fn run(&mut self, op: &AccountOp) -> Result<(), AccountsError>;
}

/// A recording executor with a scripted system.
#[derive(Debug, Default)]
pub struct FakeAccounts {
    /// What [`Accounts::existing`] returns.
    pub existing: Existing,
    /// Every step run, in order.
    pub ran: Vec<AccountOp>,
    /// The step number (0-based) that fails, if any.
    pub fail_at: Option<usize>,
}

impl Accounts for FakeAccounts {
    fn existing(&mut self) -> Result<Existing, AccountsError> {
        Ok(self.existing.clone())
    }

    fn run(&mut self, op: &AccountOp) -> Result<(), AccountsError> {
        if self.fail_at == Some(self.ran.len()) {
            return Err(AccountsError::Command {
                program: "useradd",
                user: String::new(),
                reason: "scripted".to_owned(),
            });
        }
        self.ran.push(op.clone());
        Ok(())
    }
}

/// `useradd`, `usermod`, `gpasswd`, `chown`, `chmod`; reads `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone)]
pub struct RealAccounts {
    /// `/etc` (another directory in tests).
    pub etc: PathBuf,
}

impl Default for RealAccounts {
    fn default() -> Self {
        Self {
            etc: PathBuf::from("/etc"),
        }
    }
}

/// The program and arguments of a step.
pub fn command_of(op: &AccountOp) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let path = |p: &Path| p.display().to_string();
    match op {
        AccountOp::CreateAdmin {
            name,
            shell,
            no_user_group,
        } => vec![(
            "useradd",
            useradd("--create-home", shell, *no_user_group, name),
        )],
        AccountOp::CreateSystem {
            name,
            shell,
            no_user_group,
        } => vec![("useradd", useradd("--system", shell, *no_user_group, name))],
        AccountOp::Lock(name) => vec![("usermod", s(&["--lock", name]))],
        AccountOp::UnexpireLock(name) => vec![("usermod", s(&["--expiredate=", "--lock", name]))],
        AccountOp::AddToGroup { name, group } => vec![("gpasswd", s(&["--add", name, group]))],
        AccountOp::RemoveFromGroup { name, group } => {
            vec![("gpasswd", s(&["--delete", name, group]))]
        }
        AccountOp::ChownKey { name, path: key } => vec![
            ("chown", s(&[&format!("{name}:"), &path(key)])),
            ("chmod", s(&["0600", &path(key)])),
        ],
        AccountOp::EnableLinger(name) => vec![("loginctl", s(&["enable-linger", name]))],
        AccountOp::LockRemoved(name) => vec![(
            "usermod",
            s(&[
                "--lock",
                "--expiredate=1",
                &format!("--shell={NOLOGIN}"),
                name,
            ]),
        )],
    }
}

fn user_of(op: &AccountOp) -> &str {
    match op {
        AccountOp::CreateAdmin { name, .. }
        | AccountOp::CreateSystem { name, .. }
        | AccountOp::AddToGroup { name, .. }
        | AccountOp::RemoveFromGroup { name, .. }
        | AccountOp::ChownKey { name, .. } => name,
        AccountOp::Lock(name)
        | AccountOp::UnexpireLock(name)
        | AccountOp::LockRemoved(name)
        | AccountOp::EnableLinger(name) => name,
    }
}

fn useradd(kind: &str, shell: &Path, no_user_group: bool, name: &str) -> Vec<String> {
    let mut args = vec![
        kind.to_owned(),
        "--shell".to_owned(),
        shell.display().to_string(),
    ];
    if no_user_group {
        args.push("--no-user-group".to_owned());
    }
    args.push(name.to_owned());
    args
}

/// A user's entry in a passwd file: its ids and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdUser {
    /// Its ids.
    pub owner: Owner,
    /// Its home directory.
    pub home: PathBuf,
}

/// The entry of `user` in a passwd file's text (`name:x:uid:gid:gecos:home:shell`).
pub fn lookup_user(passwd: &str, user: &str) -> Option<PasswdUser> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        let _gecos = fields.next()?;
        let home = PathBuf::from(fields.next()?);
        Some(PasswdUser {
            owner: Owner { uid, gid },
            home,
        })
    })
}

/// The app user (`appsvc`: owner of bundle payloads, runs the rootless containers) on this
/// system, from `/etc/passwd` under `sysroot`.
pub fn app_user(sysroot: &Path) -> Option<PasswdUser> {
    let passwd = std::fs::read_to_string(sysroot.join("etc/passwd")).ok()?;
    lookup_user(&passwd, APP_USER)
}

/// Parses `/etc/passwd` and `/etc/group` text.
pub fn parse_existing(passwd: &str, group: &str) -> Existing {
    let users = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let groups = group
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            let name = fields.first()?;
            let members = fields.get(3).copied().unwrap_or("");
            let members = members
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            (!name.is_empty()).then(|| ((*name).to_owned(), members))
        })
        .collect();
    Existing { users, groups }
}

impl Accounts for RealAccounts {
    fn existing(&mut self) -> Result<Existing, AccountsError> {
        let read = |name: &str| {
            let path = self.etc.join(name);
            std::fs::read_to_string(&path).map_err(|source| AccountsError::Read { path, source })
        };
        Ok(parse_existing(&read("passwd")?, &read("group")?))
    }

    fn run(&mut self, op: &AccountOp) -> Result<(), AccountsError> {
        for (program, args) in command_of(op) {
            let fail = |reason: String| AccountsError::Command {
                program,
                user: user_of(op).to_owned(),
                reason,
            };
            let out = Command::new(program)
                .args(&args)
                .output()
                .map_err(|e| fail(e.to_string()))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(fail(format!("{}: {}", out.status, stderr.trim())));
            }
        }
        Ok(())
    }
}
