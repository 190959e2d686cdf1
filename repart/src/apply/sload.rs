//! `sload.f2fs`: making `MakeDirectories=` in an unmounted f2fs (image files, and block
//! devices where the running kernel has no f2fs), and accepting its known self-repairs only when
//! a separate `fsck.f2fs --dry-run` finds the file system clean.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{ApplyError, PendingFormat};
use crate::plan::Action;

/// `sload.f2fs -f <staging dir with the directories> -t / [-T epoch] <device>`.
pub(super) fn sload_dirs(
    device: &Path,
    action: &Action,
    f: &PendingFormat,
    epoch: Option<u64>,
    temp_dir: &Path,
) -> Result<SloadCheck, ApplyError> {
    let staging = tempfile::Builder::new()
        .prefix(".atomix-repart-dirs-")
        .tempdir_in(temp_dir)
        .map_err(|source| ApplyError::Temp {
            dir: temp_dir.to_owned(),
            source,
        })?;
    for d in &action.make_directories {
        let path = staging.path().join(d.trim_start_matches('/'));
        fs::create_dir_all(&path).map_err(|source| ApplyError::MakeDir {
            number: f.number,
            label: f.label.clone(),
            path: path.clone(),
            source,
        })?;
    }
    let mut last_err = None;
    for tool in ["sload.f2fs", "/usr/sbin/sload.f2fs", "/sbin/sload.f2fs"] {
        let mut cmd = Command::new(tool);
        cmd.arg("-f").arg(staging.path()).args(["-t", "/"]);
        if let Some(epoch) = epoch {
            cmd.arg("-T").arg(epoch.to_string());
        }
        match cmd.arg(device).output() {
            Ok(out) if out.status.success() => return Ok(SloadCheck::default()),
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stdout));
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
                let failed = |output: String| ApplyError::Sload {
                    number: f.number,
                    label: f.label.clone(),
                    status: out.status,
                    output,
                };
                if !only_inline_xattr_fixes(&text) {
                    return Err(failed(tail));
                }
                // The verification runs while the caller copies the metadata into free space.
                let fsck = tool.replace("sload.f2fs", "fsck.f2fs");
                let child = Command::new(fsck)
                    .arg("--dry-run")
                    .arg(device)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| failed(format!("{tail} / cannot run fsck.f2fs: {e}")))?;
                return Ok(SloadCheck {
                    fsck: Some((
                        child,
                        failed(format!("{tail} / fsck.f2fs afterwards: not clean")),
                    )),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => last_err = Some(e),
            Err(source) => {
                return Err(ApplyError::SloadSpawn {
                    number: f.number,
                    label: f.label.clone(),
                    source,
                });
            }
        }
    }
    log::debug!("sload.f2fs not found: {last_err:?}");
    Err(ApplyError::SloadMissing {
        number: f.number,
        label: f.label.clone(),
    })
}

/// sload.f2fs 1.15 creates inodes with `inline_xattr_size` 0 under `flexible_inline_xattr` (a
/// default feature), then its own closing fsck repairs them to 50 (which also redoes their inode
/// checksums) and exits 1 ("other corrupted bugs [Fail]"). Such a run is accepted when those
/// repairs are its only complaints and a separate `fsck.f2fs --dry-run` then finds the file
/// system clean.
pub(super) fn only_inline_xattr_fixes(output: &str) -> bool {
    let mut asserts = output.lines().filter(|l| l.contains("[ASSERT]")).peekable();
    asserts.peek().is_some()
        && asserts.all(|l| {
            l.contains("wrong inline_xattr_size")
                || (l.contains("chksum:") && l.contains("but calculated one is"))
        })
}

/// The `fsck.f2fs --dry-run` that confirms a repaired sload.f2fs run, if one is running, with
/// the error to return when it does not come out clean.
#[derive(Debug, Default)]
#[must_use]
pub(super) struct SloadCheck {
    fsck: Option<(Child, ApplyError)>,
}

impl SloadCheck {
    /// Waits for the verification.
    pub(super) fn finish(self) -> Result<(), ApplyError> {
        let Some((mut child, failed)) = self.fsck else {
            return Ok(());
        };
        match child.wait() {
            Ok(status) if status.success() => {
                log::debug!("sload.f2fs repaired its own inline_xattr_size slips; fsck is clean");
                Ok(())
            }
            _ => Err(failed),
        }
    }

    /// Stops the verification (the caller failed anyway).
    pub(super) fn abandon(self) {
        if let Some((mut child, _)) = self.fsck {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
