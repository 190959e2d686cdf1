//! The board's part of the root filesystem, rendered from the profile so that each fact has one
//! source: the slots and labels RAUC works on, where the A/B counters live and the tool that
//! reads and writes them, the NIC names and the serial console.
//!
//! The common files of every board are plain text under `rootfs/tree/`; the build
//! (`scripts/rootfs.sh`) writes these beside them with `atomix rootfs files`.

use crate::{AbStore, Board, NicMatch, Slot};

/// Where RAUC finds its bootloader backend on the device.
pub const RAUC_BACKEND: &str = "/usr/libexec/atomix/rauc-backend";
/// Where the `atomix` command is on the device.
pub const ATOMIX_BIN: &str = "/usr/bin/atomix";
/// RAUC's status file (on /data, so it survives the per-boot root).
pub const RAUC_STATUS_FILE: &str = "/data/rauc/status.raucs";

/// One file of the root filesystem, by its path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path, e.g. `etc/rauc/system.conf`.
    pub path: String,
    /// What it is.
    pub contents: Contents,
}

/// A regular file or a symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A regular file with these bytes and permission bits.
    Text {
        /// The contents.
        text: String,
        /// Permission bits (0o644, 0o755).
        mode: u32,
    },
    /// A symbolic link to this target.
    Symlink(String),
}

/// The files `board` puts into its root filesystem, in path order.
pub fn files(board: &Board) -> Vec<File> {
    let mut files = vec![
        text("etc/rauc/system.conf", rauc_system_conf(board), 0o644),
        text(
            RAUC_BACKEND.trim_start_matches('/'),
            rauc_backend(board),
            0o755,
        ),
    ];
    if let AbStore::UbootEnv { offset, size } = board.ab.store {
        files.push(text(
            "etc/fw_env.config",
            format!(
                "# U-Boot's environment for fw_printenv/fw_setenv (board {}): device, offset, size.\n\
                 {} {offset:#x} {size:#x}\n",
                board.name, board.disk
            ),
            0o644,
        ));
    }
    match (&board.rootfs.wan, &board.rootfs.lan) {
        (Some(wan), Some(lan)) => {
            files.push(text(
                "etc/systemd/network/10-wan.link",
                link(wan, "eth0", "WAN"),
                0o644,
            ));
            files.push(text(
                "etc/systemd/network/20-lan.link",
                link(lan, "eth1", "LAN"),
                0o644,
            ));
        }
        // Masking systemd's default naming policy keeps the kernel's names.
        _ => files.push(File {
            path: "etc/systemd/network/99-default.link".into(),
            contents: Contents::Symlink("/dev/null".into()),
        }),
    }
    if board.rootfs.serial_autologin {
        let tty = console_tty(board);
        files.push(text(
            &format!("etc/systemd/system/serial-getty@{tty}.service.d/autologin.conf"),
            format!(
                "# Board {}: root is logged in on the serial console without a password.\n\
                 [Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - $TERM\n",
                board.name
            ),
            0o644,
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The serial console's tty name (`ttyS2,1500000` → `ttyS2`).
pub fn console_tty(board: &Board) -> &str {
    board
        .console
        .split(',')
        .next()
        .unwrap_or(board.console.as_str())
}

fn text(path: &str, text: String, mode: u32) -> File {
    File {
        path: path.to_owned(),
        contents: Contents::Text { text, mode },
    }
}

/// RAUC's system.conf: two slot pairs by partition label, the booted one taken from
/// `rauc.slot=` (the boot slot's name, which boot.scr passes), the counters through
/// [`RAUC_BACKEND`].
fn rauc_system_conf(board: &Board) -> String {
    let mut conf = format!(
        "# RAUC on board {name}: generated from its profile by `atomix rootfs files`.\n\
         [system]\n\
         compatible=atomixos-{name}\n\
         # The A/B counters boot.scr reads, through `atomix env` ({store}); mark-good and\n\
         # set-primary give a slot the board's {tries} tries.\n\
         bootloader=custom\n\
         statusfile={RAUC_STATUS_FILE}\n\
         bundle-formats=-plain +verity\n\
         \n\
         [handlers]\n\
         bootloader-custom-backend={RAUC_BACKEND}\n",
        name = board.name,
        tries = board.ab.tries,
        store = match &board.ab.store {
            AbStore::UbootEnv { offset, .. } =>
                format!("the U-Boot environment at {offset:#x} of {}", board.disk),
            AbStore::VfatFile { partition, file } => format!("{file} on partition {partition}"),
        },
    );
    for (index, slot) in Slot::ALL.into_iter().enumerate() {
        conf.push_str(&format!(
            "\n[slot.boot.{index}]\n\
             device=/dev/disk/by-partlabel/{boot}\n\
             type=vfat\n\
             bootname={bootname}\n\
             \n\
             [slot.rootfs.{index}]\n\
             device=/dev/disk/by-partlabel/{rootfs}\n\
             type=raw\n\
             parent=boot.{index}\n",
            boot = slot.boot_label(),
            rootfs = slot.rootfs_label(),
            bootname = slot.name(),
        ));
    }
    conf
}

/// The script RAUC runs as its bootloader backend: `atomix env` on the board's disk.
fn rauc_backend(board: &Board) -> String {
    format!(
        "#!/bin/sh\n\
         # RAUC's bootloader backend on board {name}: get-primary, set-primary, get-state,\n\
         # set-state and get-current on the A/B counters boot.scr reads (see `atomix env --help`).\n\
         exec {ATOMIX_BIN} env --board {name} {disk} rauc \"$@\"\n",
        name = board.name,
        disk = board.disk,
    )
}

/// A `.link` file naming the NIC `matching` finds.
fn link(matching: &NicMatch, name: &str, role: &str) -> String {
    let mut text = format!("# The {role} NIC is {name}.\n[Match]\n");
    if let Some(path) = &matching.path {
        text.push_str(&format!("Path={path}\n"));
    }
    if !matching.drivers.is_empty() {
        text.push_str(&format!("Driver={}\n", matching.drivers.join(" ")));
    }
    text.push_str(&format!("\n[Link]\nName={name}\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_path<'f>(files: &'f [File], path: &str) -> &'f Contents {
        &files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path} in {files:#?}"))
            .contents
    }

    fn text_of<'f>(files: &'f [File], path: &str) -> &'f str {
        match by_path(files, path) {
            Contents::Text { text, .. } => text,
            other => panic!("{path} is {other:?}"),
        }
    }

    #[test]
    fn qemu_virt_keeps_kernel_names_and_logs_root_in_on_its_console() {
        let board = Board::builtin("qemu-virt").unwrap();
        let files = files(&board);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/rauc/system.conf",
                "etc/systemd/network/99-default.link",
                "etc/systemd/system/serial-getty@ttyAMA0.service.d/autologin.conf",
                "usr/libexec/atomix/rauc-backend",
            ]
        );
        assert_eq!(
            by_path(&files, "etc/systemd/network/99-default.link"),
            &Contents::Symlink("/dev/null".into())
        );
        assert!(
            text_of(&files, "usr/libexec/atomix/rauc-backend")
                .ends_with("exec /usr/bin/atomix env --board qemu-virt /dev/vda rauc \"$@\"\n")
        );
        assert!(matches!(
            by_path(&files, "usr/libexec/atomix/rauc-backend"),
            Contents::Text { mode: 0o755, .. }
        ));
        let conf = text_of(&files, "etc/rauc/system.conf");
        for line in [
            "compatible=atomixos-qemu-virt",
            "bootloader=custom",
            "bootloader-custom-backend=/usr/libexec/atomix/rauc-backend",
            "statusfile=/data/rauc/status.raucs",
            "[slot.boot.1]\ndevice=/dev/disk/by-partlabel/boot-b\ntype=vfat\nbootname=B",
            "[slot.rootfs.0]\ndevice=/dev/disk/by-partlabel/rootfs-a\ntype=raw\nparent=boot.0",
        ] {
            assert!(conf.contains(line), "{line}\n{conf}");
        }
        assert!(conf.contains("abstate.txt on partition 1"), "{conf}");
    }

    #[test]
    fn rock64_names_nics_by_match_and_describes_its_environment() {
        let board = Board::builtin("rock64").unwrap();
        let files = files(&board);
        assert_eq!(
            text_of(&files, "etc/fw_env.config").lines().last(),
            Some("/dev/mmcblk1 0x3f8000 0x8000")
        );
        assert_eq!(
            text_of(&files, "etc/systemd/network/10-wan.link"),
            "# The WAN NIC is eth0.\n[Match]\nPath=platform-ff540000.ethernet\n\n[Link]\nName=eth0\n"
        );
        assert!(
            text_of(&files, "etc/systemd/network/20-lan.link")
                .contains("Driver=r8152 ax88179_178a cdc_ether\n\n[Link]\nName=eth1\n")
        );
        assert!(!files.iter().any(|f| f.path.contains("autologin")));
        assert!(!files.iter().any(|f| f.path.ends_with("99-default.link")));
        assert_eq!(console_tty(&board), "ttyS2");
    }

    #[test]
    fn nic_matches_are_validated() {
        let profile = include_str!("../profiles/rock64.toml");
        let only_wan = profile.replace(
            "lan = { drivers = [\"r8152\", \"ax88179_178a\", \"cdc_ether\"] }",
            "",
        );
        assert!(
            Board::parse("t", &only_wan)
                .unwrap_err()
                .to_string()
                .contains("both wan and lan")
        );
        let empty = profile.replace("{ path = \"platform-ff540000.ethernet\" }", "{ }");
        assert!(
            Board::parse("t", &empty)
                .unwrap_err()
                .to_string()
                .contains("a path or drivers")
        );
        let spaced = profile.replace("platform-ff540000.ethernet", "platform ff540000");
        assert!(
            Board::parse("t", &spaced)
                .unwrap_err()
                .to_string()
                .contains("one printable word")
        );
    }
}
