//! `managed-users.json`: the sorted JSON list of the user names `apply-users` manages, written
//! by `apply-users` into the active root. A rollback keeps the union of the failed and the
//! previous root's sets, so users the failed activation created are still locked later.

use std::collections::BTreeSet;
use std::path::Path;

use super::fs::{Fs, FsError};
use super::tree::write_atomic;

/// The file name under a config root.
pub const MANAGED_USERS: &str = "managed-users.json";

/// The set in `root`: empty when the file is missing or is not a JSON list (as the original
/// reads it); non-string entries are ignored.
pub fn read_managed(fs: &dyn Fs, root: &Path) -> Result<BTreeSet<String>, FsError> {
    let path = root.join(MANAGED_USERS);
    if !fs.exists(&path)? {
        return Ok(BTreeSet::new());
    }
    let bytes = fs.read(&path)?;
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&bytes) else {
        return Ok(BTreeSet::new());
    };
    Ok(items
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
        .collect())
}

/// The file's bytes for `names`: a sorted list, two-space indented, with a trailing newline.
pub fn managed_bytes(names: &BTreeSet<String>) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(names).unwrap_or_else(|_| b"[]".to_vec());
    out.push(b'\n');
    out
}

/// Adds the names of `failed` (the root being given up) to those of `kept` (the root being
/// restored), rewriting `kept`'s file atomically (mode 0600) only if that adds a name.
/// Whether it wrote.
pub fn merge_into(fs: &dyn Fs, failed: &Path, kept: &Path) -> Result<bool, FsError> {
    let old = read_managed(fs, kept)?;
    let mut merged = old.clone();
    if fs.exists(failed)? {
        merged.extend(read_managed(fs, failed)?);
    }
    if merged == old {
        return Ok(false);
    }
    write_atomic(
        fs,
        &kept.join(MANAGED_USERS),
        0o600,
        &managed_bytes(&merged),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::fs::RealFs;
    use super::*;

    #[test]
    fn merging_adds_only_missing_names() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs.create_dir(&a, 0o755).unwrap();
        fs.create_dir(&b, 0o755).unwrap();
        fs.write_file(&a.join(MANAGED_USERS), 0o600, b"[\"x\", \"y\", 3]")
            .unwrap();
        fs.write_file(&b.join(MANAGED_USERS), 0o600, b"[\"x\"]")
            .unwrap();
        assert!(!merge_into(&fs, &b, &a).unwrap());
        assert!(merge_into(&fs, &a, &b).unwrap());
        assert_eq!(
            fs.read(&b.join(MANAGED_USERS)).unwrap(),
            b"[\n  \"x\",\n  \"y\"\n]\n"
        );
        fs.write_file(&a.join(MANAGED_USERS), 0o600, b"{}").unwrap();
        assert!(read_managed(&fs, &a).unwrap().is_empty());
        assert!(!merge_into(&fs, &dir.path().join("gone"), &b).unwrap());
    }
}
