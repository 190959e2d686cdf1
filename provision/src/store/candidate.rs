//! Writing a candidate root (`config-candidate`): the rendered [`FileSet`], the `files/`
//! payload (spec 2.4) and the entries carried forward from the active root, every file and
//! directory fsynced.
//!
//! **The carry-forward rule.** Provisioning owns the top-level names [`is_owned`] accepts:
//! each apply writes them afresh from the rendered set (and a name it does not render, such as
//! `os-upgrade.json` without `[os_upgrade]`, is thereby deleted). Every *other* top-level entry
//! of the active root is copied into the candidate unchanged (contents, modes, owners, symlinks):
//! `managed-users.json` (written by `apply-users`), the files other units read but provisioning
//! never writes (`ssh-wan-enabled`, `openvpn/`, `hawkbit/`, see [`KNOWN_CARRIED`]) and any
//! hand-placed file such as a `local.env` referred to through `${CONFIG_DIR}`. The original
//! carried only `managed-users.json` and lost the rest on the first re-apply (spec 9.5). A
//! rendered file wins over a carried entry of the same top-level name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atomix_config::files::FileSet;
use atomix_config::root_files::RENDERED_NAMES;

use super::error::StoreError;
use super::fs::{Fs, Kind};
use super::root::ConfigRoot;
use super::tree::{TEMP_SUFFIX, copy_tree};

/// Whether provisioning writes the top-level name `name` and so replaces it on every apply
/// (spec 3.1): the names rendering owns ([`RENDERED_NAMES`]) and the bundle payload.
pub fn is_owned(name: &str) -> bool {
    RENDERED_NAMES.contains(&name) || name == PAYLOAD_DIR
}

/// Names known to be carried forward by the rule above (documentation and tests; the rule
/// itself carries every name [`is_owned`] refuses).
pub const KNOWN_CARRIED: &[&str] = &[
    "managed-users.json",
    "ssh-wan-enabled",
    "openvpn",
    "hawkbit",
];

/// The bundle payload directory under the root.
pub const PAYLOAD_DIR: &str = "files";

/// Mode of payload directories (spec 2.4).
pub const PAYLOAD_DIR_MODE: u32 = 0o700;

/// Mode of payload files (spec 2.4).
pub const PAYLOAD_FILE_MODE: u32 = 0o600;

/// The modes of the directories a candidate's paths imply: the root's, some by path, and a
/// default (0700) for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirModes {
    /// The candidate root itself.
    pub root: u32,
    /// By relative path (`quadlet`, `a/b`).
    pub by_path: BTreeMap<String, u32>,
    /// Any other directory.
    pub default: u32,
}

impl DirModes {
    /// The original's layout: the root, `quadlet/` and `ssh-authorized-keys/` 0755 (sshd opens
    /// `ssh-authorized-keys/<user>` as the user, who must be able to traverse to it), any other
    /// directory 0700.
    pub fn standard() -> Self {
        Self {
            root: 0o755,
            by_path: [("quadlet", 0o755), ("ssh-authorized-keys", 0o755)]
                .into_iter()
                .map(|(p, m)| (p.to_owned(), m))
                .collect(),
            default: 0o700,
        }
    }

    /// The mode for the directory at `path`.
    pub fn mode_of(&self, path: &str) -> u32 {
        self.by_path.get(path).copied().unwrap_or(self.default)
    }
}

/// What goes into `files/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// No `files/` (a plain `config.toml` import: an existing payload is dropped, spec 2.4).
    None,
    /// The bundle's `files/`, paths relative to it; written with 0700 directories and 0600
    /// files whatever the set says.
    Replace(FileSet),
    /// A copy of the active root's `files/` (partial updates, spec 8.6).
    KeepActive,
}

/// An owner (numeric ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Everything a candidate is made of.
#[derive(Debug, Clone, Copy)]
pub struct CandidateSpec<'a> {
    /// The rendered files (no paths under `files/`).
    pub files: &'a FileSet,
    /// Directory modes.
    pub dir_modes: &'a DirModes,
    /// The `files/` payload.
    pub payload: &'a Payload,
    /// If set, every payload entry (and `files/` itself) is chowned to it: the hook for
    /// `appsvc`, whose ids the activation side resolves (the original fails the import when
    /// `appsvc` does not exist).
    pub payload_owner: Option<Owner>,
}

/// What [`write_candidate`] did besides writing the rendered set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CandidateReport {
    /// Top-level names carried forward from the active root.
    pub carried: Vec<String>,
    /// Active-root entries not copied (devices, FIFOs, sockets).
    pub skipped: Vec<PathBuf>,
    /// The payload entries written under the candidate's `files/` (directories first).
    pub payload: Vec<PathBuf>,
}

/// Writes a fresh candidate root (an old one is deleted first). On failure the partial
/// candidate is deleted as far as possible; [`super::recover()`] deletes any remains.
pub fn write_candidate(
    fs: &dyn Fs,
    root: &ConfigRoot,
    spec: &CandidateSpec<'_>,
) -> Result<CandidateReport, StoreError> {
    let candidate = root.candidate();
    fs.remove_dir_all(&candidate)?;
    let result = fill(fs, root, &candidate, spec);
    if result.is_err() {
        let _ = fs.remove_dir_all(&candidate);
    }
    result
}

fn fill(
    fs: &dyn Fs,
    root: &ConfigRoot,
    candidate: &Path,
    spec: &CandidateSpec<'_>,
) -> Result<CandidateReport, StoreError> {
    let mut report = CandidateReport::default();
    for (path, _) in spec.files.iter() {
        if path.components().next() == Some(PAYLOAD_DIR) {
            return Err(StoreError::RenderedPayload(path.clone()));
        }
    }
    fs.create_dir(candidate, spec.dir_modes.root)?;
    let mut dirs = BTreeSet::new();
    for (path, file) in spec.files.iter() {
        for parent in path.parents() {
            if dirs.insert(parent.to_owned()) {
                fs.create_dir(&candidate.join(parent), spec.dir_modes.mode_of(parent))?;
            }
        }
        fs.write_file(&candidate.join(path.as_str()), file.mode, &file.contents)?;
    }

    let payload_root = candidate.join(PAYLOAD_DIR);
    match spec.payload {
        Payload::None => {}
        Payload::Replace(set) => {
            fs.create_dir(&payload_root, PAYLOAD_DIR_MODE)?;
            report.payload.push(payload_root.clone());
            let mut made = BTreeSet::new();
            for (path, file) in set.iter() {
                for parent in path.parents() {
                    if made.insert(parent.to_owned()) {
                        let dir = payload_root.join(parent);
                        fs.create_dir(&dir, PAYLOAD_DIR_MODE)?;
                        report.payload.push(dir);
                    }
                }
                let target = payload_root.join(path.as_str());
                fs.write_file(&target, PAYLOAD_FILE_MODE, &file.contents)?;
                report.payload.push(target);
            }
        }
        Payload::KeepActive => {
            let active = root.active().join(PAYLOAD_DIR);
            if fs.exists(&active)? {
                report
                    .skipped
                    .extend(copy_tree(fs, &active, &payload_root)?);
                report.payload.push(payload_root.clone());
            }
        }
    }
    if let Some(owner) = spec.payload_owner {
        for path in &report.payload {
            fs.chown(path, owner.uid, owner.gid)?;
            // The owner changed after the file's fsync: sync it again (POSIX does not promise
            // that syncing its directory keeps it). Directories are synced at the end.
            if fs.metadata(path)?.map(|m| m.kind) == Some(Kind::File) {
                fs.fsync_file(path)?;
            }
        }
    }

    let rendered: BTreeSet<&str> = spec
        .files
        .iter()
        .filter_map(|(p, _)| p.components().next())
        .collect();
    if fs.exists(root.active())? {
        for name in fs.read_dir(root.active())? {
            if is_owned(&name) || rendered.contains(name.as_str()) || name.ends_with(TEMP_SUFFIX) {
                continue;
            }
            report.skipped.extend(copy_tree(
                fs,
                &root.active().join(&name),
                &candidate.join(&name),
            )?);
            report.carried.push(name);
        }
    }
    fsync_dirs(fs, candidate)?;
    Ok(report)
}

/// fsyncs every directory below and including `path`, deepest first (the files were fsynced
/// as they were written).
fn fsync_dirs(fs: &dyn Fs, path: &Path) -> Result<(), StoreError> {
    for name in fs.read_dir(path)? {
        let child = path.join(name);
        if fs.metadata(&child)?.map(|m| m.kind) == Some(Kind::Dir) {
            fsync_dirs(fs, &child)?;
        }
    }
    fs.fsync_dir(path)?;
    Ok(())
}
