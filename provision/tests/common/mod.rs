//! Shared helpers of the tests: whole-tree snapshots and sample roots (store), where the
//! original is ([`oracle`]), keys and signatures made by `ssh-keygen` ([`sshkeys`]), the API
//! in process ([`api`]) and as a server process ([`server`]).

#![allow(clippy::unwrap_used, dead_code)]

pub mod api;
pub mod oracle;
pub mod server;
pub mod sshkeys;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use atomix_config::files::{FileSet, RelPath};
use atomix_provision::store::{
    CandidateSpec, ConfigRoot, DirModes, Fs, Payload, RealFs, StoreError, write_candidate,
};

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(String),
}

/// A whole tree by relative path ("" is the root itself), or `None` if absent.
pub type Tree = Option<BTreeMap<String, Entry>>;

pub fn snapshot(path: &Path) -> Tree {
    fs::symlink_metadata(path).ok()?;
    let mut out = BTreeMap::new();
    walk(path, "", &mut out);
    Some(out)
}

fn walk(path: &Path, rel: &str, out: &mut BTreeMap<String, Entry>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let mode = meta.permissions().mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(path).unwrap();
        out.insert(rel.to_owned(), Entry::Link(target.display().to_string()));
    } else if ft.is_dir() {
        out.insert(rel.to_owned(), Entry::Dir(mode));
        let mut names: Vec<_> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            walk(&path.join(&name), &child, out);
        }
    } else {
        out.insert(rel.to_owned(), Entry::File(mode, fs::read(path).unwrap()));
    }
}

pub fn set(files: &[(&str, u32, &str)]) -> FileSet {
    let mut set = FileSet::new();
    for (path, mode, contents) in files {
        set.insert(RelPath::new(path).unwrap(), *mode, contents.as_bytes());
    }
    set
}

/// The rendered set of the "old" config.
pub fn old_rendered() -> FileSet {
    set(&[
        ("config.toml", 0o600, "version = 1 # old\n"),
        ("users.json", 0o600, "{\"admin\": {}}\n"),
        ("admin-signers", 0o600, "ssh-ed25519 AAAA old\n"),
        ("ssh-authorized-keys/admin", 0o600, "ssh-ed25519 AAAA old\n"),
        ("ssh-authorized-keys/bob", 0o600, "ssh-ed25519 AAAA bob\n"),
        (
            "os-upgrade.json",
            0o600,
            "{\"server_url\": \"https://u\"}\n",
        ),
        ("quadlet/web.container", 0o644, "[Container]\nImage=old\n"),
        ("quadlet-runtime.json", 0o600, "{\"units\": []}\n"),
    ])
}

/// The rendered set of the "new" config (no os-upgrade, no bob, another unit).
pub fn new_rendered() -> FileSet {
    set(&[
        ("config.toml", 0o600, "version = 1 # new\n"),
        ("users.json", 0o600, "{\"admin\": {}, \"carol\": {}}\n"),
        ("admin-signers", 0o600, "ssh-ed25519 AAAA new\n"),
        ("ssh-authorized-keys/admin", 0o600, "ssh-ed25519 AAAA new\n"),
        (
            "ssh-authorized-keys/carol",
            0o600,
            "ssh-ed25519 AAAA carol\n",
        ),
        ("quadlet/app.container", 0o644, "[Container]\nImage=new\n"),
        ("quadlet/data.volume", 0o644, "[Volume]\n"),
        ("quadlet-runtime.json", 0o600, "{\"units\": [1]}\n"),
    ])
}

pub fn payload(files: &[(&str, &str)]) -> Payload {
    let list: Vec<_> = files.iter().map(|(p, c)| (*p, 0o644, *c)).collect();
    Payload::Replace(set(&list))
}

/// Writes a candidate from `files` and `payload` with the standard directory modes.
pub fn candidate(
    fs: &dyn Fs,
    root: &ConfigRoot,
    files: &FileSet,
    payload: &Payload,
) -> Result<(), StoreError> {
    let modes = DirModes::standard();
    let spec = CandidateSpec {
        files,
        dir_modes: &modes,
        payload,
        payload_owner: None,
    };
    write_candidate(fs, root, &spec).map(|_| ())
}

pub fn root_in(dir: &Path) -> ConfigRoot {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    ConfigRoot::unchecked(&data.join("config")).unwrap()
}

/// A provisioned old root: the old rendered set, a payload, `managed-users.json` and
/// hand-placed files (including a symlink).
pub fn provision_old(root: &ConfigRoot) {
    let fs = RealFs;
    let p = payload(&[("app/config.yaml", "old: 1\n")]);
    candidate(&fs, root, &old_rendered(), &p).unwrap();
    atomix_provision::store::promote(&fs, root, atomix_provision::store::Promotion::Initial)
        .unwrap();
    atomix_provision::store::cleanup(&fs, root).unwrap();
    hand_place(root.active());
    fs.write_file(
        &root.active().join("managed-users.json"),
        0o600,
        b"[\n  \"admin\",\n  \"bob\"\n]\n",
    )
    .unwrap();
}

/// What an operator puts into a root by hand.
pub fn hand_place(active: &Path) {
    let fs = RealFs;
    fs.write_file(&active.join("ssh-wan-enabled"), 0o644, b"")
        .unwrap();
    fs.create_dir(&active.join("openvpn"), 0o700).unwrap();
    fs.write_file(&active.join("openvpn/client.conf"), 0o600, b"remote vpn\n")
        .unwrap();
    fs.write_file(&active.join("local.env"), 0o640, b"A=1\n")
        .unwrap();
    fs.symlink(Path::new("openvpn/client.conf"), &active.join("vpn.conf"))
        .unwrap();
}

/// Asserts no candidate, marker or trash is left.
pub fn assert_settled(root: &ConfigRoot, what: &str) {
    for path in [root.candidate(), root.marker(), root.trash()] {
        assert!(
            fs::symlink_metadata(&path).is_err(),
            "{what}: {} left over",
            path.display()
        );
    }
}
