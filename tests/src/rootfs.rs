//! The test rootfs tree: busybox, the applets the probe uses, and the checked-in overlay.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::HarnessError;

/// The busybox applets linked in `/bin` (what `tests/rootfs/sbin/init` runs, plus a few for
/// debugging a boot by hand).
pub const PROBE_APPLETS: &[&str] = &[
    "[", "cat", "dmesg", "echo", "grep", "head", "ls", "mkdir", "mount", "poweroff", "printf",
    "reboot", "rm", "sh", "sleep", "sync", "test", "touch", "tr", "umount", "uname",
];

/// Directories every test rootfs has (mount points and writable places).
const DIRS: &[&str] = &["bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc"];

/// The checked-in overlay copied over every test rootfs (`tests/rootfs/`).
pub fn rootfs_overlay() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs")
}

/// Fills `dir` (created if missing; meant to be empty) with the test rootfs: `/bin/busybox`
/// (a copy of `busybox`) and relative symlinks for [`PROBE_APPLETS`], the directories
/// `/proc /sys /dev /run /tmp /etc` (`/tmp` mode 1777), and the overlay from
/// [`rootfs_overlay`] copied on top (modes and symlinks kept; `/sbin/init` made 0755).
///
/// # Errors
/// The first file-system operation that fails, with its path.
pub fn build_test_rootfs(dir: &Path, busybox: &Path) -> Result<(), HarnessError> {
    for sub in DIRS {
        create_dir(&dir.join(sub))?;
    }
    set_mode(&dir.join("tmp"), 0o1777)?;
    let target = dir.join("bin/busybox");
    fs::copy(busybox, &target).map_err(|source| HarnessError::Copy {
        from: busybox.to_owned(),
        to: target.clone(),
        source,
    })?;
    set_mode(&target, 0o755)?;
    for applet in PROBE_APPLETS {
        let link = dir.join("bin").join(applet);
        symlink("busybox", &link).map_err(|source| HarnessError::Symlink { path: link, source })?;
    }
    copy_tree(&rootfs_overlay(), dir)?;
    set_mode(&dir.join("sbin/init"), 0o755)
}

fn create_dir(path: &Path) -> Result<(), HarnessError> {
    fs::create_dir_all(path).map_err(|source| HarnessError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), HarnessError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
        HarnessError::SetMode {
            path: path.to_owned(),
            source,
        }
    })
}

/// Copies the tree `from` into `to`: directories merged, files copied with their mode,
/// symlinks recreated (an existing file or link in the way is replaced).
fn copy_tree(from: &Path, to: &Path) -> Result<(), HarnessError> {
    create_dir(to)?;
    let read_dir_error = |source| HarnessError::ReadDir {
        path: from.to_owned(),
        source,
    };
    for entry in fs::read_dir(from).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let source_path = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().map_err(read_dir_error)?;
        if kind.is_dir() {
            copy_tree(&source_path, &dest)?;
        } else if kind.is_symlink() {
            let link_error = |source| HarnessError::Symlink {
                path: dest.clone(),
                source,
            };
            let points_to = fs::read_link(&source_path).map_err(link_error)?;
            remove_if_present(&dest).map_err(link_error)?;
            symlink(points_to, &dest).map_err(link_error)?;
        } else {
            let copy_error = |source| HarnessError::Copy {
                from: source_path.clone(),
                to: dest.clone(),
                source,
            };
            remove_if_present(&dest).map_err(copy_error)?;
            fs::copy(&source_path, &dest).map_err(copy_error)?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_checked_in_probe_is_an_executable_sh_script() {
        let init = rootfs_overlay().join("sbin/init");
        let text = fs::read_to_string(&init).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"));
        for marker in [
            "ROOTFS-INIT pid=",
            "PROBE mount ",
            "PROBE initrd-json ",
            "PROBE cmdline ",
            "PROBE write-root ok",
            "PROBE lower-writable no",
            "PROBE fresh-flash yes",
            "ROOTFS-DONE",
            "poweroff -f",
            crate::bench::ROOTFS_STARTED_MARK,
        ] {
            assert!(text.contains(marker), "the probe lacks `{marker}`");
        }
        assert_eq!(
            mode(&init) & 0o111,
            0o111,
            "tests/rootfs/sbin/init is not executable"
        );
    }

    #[test]
    fn the_probe_uses_only_linked_applets() {
        let text = fs::read_to_string(rootfs_overlay().join("sbin/init")).unwrap();
        let commands = crate::shell_words::command_words(&text);
        // The ones the probe is known to run are found (the lexer sees the script).
        for command in ["mount", "tr", "cat", "rm", "sync", "poweroff", "sleep"] {
            assert!(commands.iter().any(|c| c == command), "{command}");
        }
        for command in &commands {
            assert!(
                PROBE_APPLETS.contains(&command.as_str()),
                "the probe runs `{command}`, which is not linked in /bin"
            );
        }
    }

    #[test]
    fn builds_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let busybox = dir.path().join("fake-busybox");
        fs::write(&busybox, b"\x7fELF busybox").unwrap();
        let root = dir.path().join("rootfs");
        build_test_rootfs(&root, &busybox).unwrap();

        assert_eq!(
            fs::read(root.join("bin/busybox")).unwrap(),
            b"\x7fELF busybox"
        );
        assert_eq!(mode(&root.join("bin/busybox")), 0o755);
        for applet in PROBE_APPLETS {
            let link = root.join("bin").join(applet);
            assert_eq!(
                fs::read_link(&link).unwrap(),
                Path::new("busybox"),
                "{applet}"
            );
        }
        for sub in ["proc", "sys", "dev", "run", "tmp", "etc", "sbin"] {
            assert!(root.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(mode(&root.join("tmp")), 0o1777);
        let init = root.join("sbin/init");
        assert_eq!(mode(&init), 0o755);
        assert_eq!(
            fs::read(&init).unwrap(),
            fs::read(rootfs_overlay().join("sbin/init")).unwrap()
        );
    }

    #[test]
    fn copy_tree_keeps_modes_and_symlinks_and_replaces_what_is_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("etc/deep")).unwrap();
        fs::write(from.join("etc/deep/file"), b"x").unwrap();
        set_mode(&from.join("etc/deep/file"), 0o640).unwrap();
        symlink("deep/file", from.join("etc/link")).unwrap();
        let to = dir.path().join("to");
        fs::create_dir_all(to.join("etc")).unwrap();
        fs::write(to.join("etc/link"), b"old").unwrap();

        copy_tree(&from, &to).unwrap();
        assert_eq!(mode(&to.join("etc/deep/file")), 0o640);
        assert_eq!(
            fs::read_link(to.join("etc/link")).unwrap(),
            Path::new("deep/file")
        );
        assert_eq!(fs::read(to.join("etc/link")).unwrap(), b"x");

        let err = copy_tree(&dir.path().join("nope"), &to).unwrap_err();
        assert!(matches!(err, HarnessError::ReadDir { .. }), "{err}");
    }
}
