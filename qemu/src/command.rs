//! The `qemu-system-aarch64` command line.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::QemuConfig;

/// The full command line for `cfg`: the binary first, then its arguments (paths that are not
/// UTF-8 are shown lossily). For printing, `--dry-run` and tests; [`crate::run`] uses the same
/// arguments.
///
/// Fixed part: `-M virt -cpu <cpu> -m <MiB> -nographic -serial stdio -monitor none -nic none`
/// (+ `-smp <n>` above one CPU, + `-no-reboot`). The serial port is plain stdio with no monitor
/// multiplexed onto it, so every byte typed goes to the guest (no Ctrl-A escape) and the guest
/// console arrives on stdout; `-nic none` drops the default virtio-net NIC (pitfall P11). Each
/// disk is `-drive file=<path>,if=none,format=raw,id=d<N> -device <model>,drive=d<N>`, each NIC
/// `-netdev user,id=<id>,restrict=on,... -device virtio-net-...,netdev=<id>,...` (see
/// [`crate::Nic`]).
pub fn command_line(cfg: &QemuConfig) -> Vec<String> {
    std::iter::once(cfg.binary.as_os_str())
        .chain(args(cfg).iter().map(OsString::as_os_str))
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect()
}

/// [`command_line`] as one string a POSIX shell can run: arguments that hold anything but
/// `[A-Za-z0-9_./=:,+@%-]` are single-quoted.
pub fn command_line_string(cfg: &QemuConfig) -> String {
    command_line(cfg)
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:,+@%-".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The arguments after the binary.
pub(crate) fn args(cfg: &QemuConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |arg: &str| args.push(arg.into());
    push("-M");
    push("virt");
    push("-cpu");
    push(&cfg.cpu);
    push("-m");
    push(&cfg.memory_mib.to_string());
    if cfg.cpus > 1 {
        push("-smp");
        push(&cfg.cpus.to_string());
    }
    push("-nographic");
    push("-serial");
    push("stdio");
    push("-monitor");
    push("none");
    if cfg.no_reboot {
        push("-no-reboot");
    }
    push("-nic");
    push("none");
    let mut push_path = |flag: &str, value: &OsStr| {
        args.push(flag.into());
        args.push(value.to_owned());
    };
    if let Some(bios) = &cfg.bios {
        push_path("-bios", bios.as_os_str());
    }
    if let Some(bank) = &cfg.flash_bank1 {
        let mut drive = OsString::from("if=pflash,unit=1,format=raw,readonly=on,file=");
        drive.push(escape_commas(bank.as_os_str()));
        push_path("-drive", &drive);
    }
    if let Some(kernel) = &cfg.kernel {
        push_path("-kernel", kernel.as_os_str());
    }
    if let Some(initramfs) = &cfg.initramfs {
        push_path("-initrd", initramfs.as_os_str());
    }
    if let Some(append) = &cfg.append {
        push_path("-append", OsStr::new(append));
    }
    for (index, disk) in cfg.disks.iter().enumerate() {
        let mut drive = OsString::from("file=");
        drive.push(escape_commas(disk.as_os_str()));
        drive.push(format!(",if=none,format=raw,id=d{index}"));
        args.push("-drive".into());
        args.push(drive);
        args.push("-device".into());
        args.push(format!("{},drive=d{index}", cfg.transport.device_model()).into());
    }
    for nic in &cfg.nics {
        args.push("-netdev".into());
        args.push(nic.netdev().into());
        args.push("-device".into());
        args.push(nic.device(cfg.transport).into());
    }
    args.extend(cfg.extra_args.iter().map(OsString::from));
    args
}

/// QEMU's option syntax escapes a comma in a value by doubling it.
fn escape_commas(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        out.push(byte);
        if byte == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;
    use std::path::PathBuf;

    fn joined(cfg: &QemuConfig) -> String {
        command_line(cfg).join(" ")
    }

    #[test]
    fn default_config_has_the_fixed_flags_only() {
        let cfg = QemuConfig::default();
        assert_eq!(
            joined(&cfg),
            "qemu-system-aarch64 -M virt -cpu cortex-a53 -m 1024 -nographic -serial stdio \
             -monitor none -no-reboot -nic none"
        );
    }

    #[test]
    fn direct_kernel_boot_with_two_pci_disks() {
        let cfg = QemuConfig {
            kernel: Some("/c/Image".into()),
            initramfs: Some("/o/initrd.img".into()),
            append: Some("console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a".into()),
            disks: vec!["/o/disk.img".into(), "/o/second.img".into()],
            memory_mib: 512,
            extra_args: vec!["-s".into()],
            ..QemuConfig::default()
        };
        let line = command_line(&cfg);
        let tail: Vec<&str> = line[15..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "-kernel",
                "/c/Image",
                "-initrd",
                "/o/initrd.img",
                "-append",
                "console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a",
                "-drive",
                "file=/o/disk.img,if=none,format=raw,id=d0",
                "-device",
                "virtio-blk-pci,drive=d0",
                "-drive",
                "file=/o/second.img,if=none,format=raw,id=d1",
                "-device",
                "virtio-blk-pci,drive=d1",
                "-s",
            ]
        );
        assert_eq!(line[5..7], ["-m", "512"]);
    }

    #[test]
    fn bios_mmio_and_reboot_allowed() {
        let cfg = QemuConfig {
            binary: PathBuf::from("/opt/qemu"),
            bios: Some("/usr/lib/u-boot/qemu_arm64/u-boot.bin".into()),
            flash_bank1: Some("/t/env,seed.img".into()),
            disks: vec!["d.img".into()],
            transport: Transport::Mmio,
            no_reboot: false,
            cpu: "cortex-a72".into(),
            ..QemuConfig::default()
        };
        assert_eq!(
            joined(&cfg),
            "/opt/qemu -M virt -cpu cortex-a72 -m 1024 -nographic -serial stdio -monitor none \
             -nic none -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin \
             -drive if=pflash,unit=1,format=raw,readonly=on,file=/t/env,,seed.img \
             -drive file=d.img,if=none,format=raw,id=d0 -device virtio-blk-device,drive=d0"
        );
    }

    #[test]
    fn the_shell_form_quotes_what_needs_it() {
        let cfg = QemuConfig {
            kernel: Some("/c/Image".into()),
            append: Some("console=ttyAMA0 init=/it's".into()),
            ..QemuConfig::default()
        };
        assert!(
            command_line_string(&cfg)
                .ends_with(" -kernel /c/Image -append 'console=ttyAMA0 init=/it'\\''s'"),
            "{}",
            command_line_string(&cfg)
        );
        assert_eq!(shell_quote(""), "''");
    }

    /// Every network a command line can attach is restricted user networking whose forwards
    /// listen on loopback only: over NICs of every shape and both transports, no `-netdev` is
    /// anything else, `-nic none` drops QEMU's default NIC, and `-net` never appears.
    #[test]
    fn no_command_line_has_unrestricted_networking() {
        use crate::{Mac, Nic};
        use std::net::Ipv4Addr;
        let shapes = [
            Nic::new("wan", Mac([0x52, 0x54, 0, 0, 0, 1])),
            Nic {
                subnet: Some((Ipv4Addr::new(172, 20, 30, 0), 24)),
                router: Some(Ipv4Addr::new(172, 20, 30, 254)),
                guest: Some(Ipv4Addr::new(172, 20, 30, 1)),
                forwards: vec!["2222:22".parse().unwrap(), "udp:5353:53".parse().unwrap()],
                ..Nic::new("lan", Mac([0x52, 0x54, 0, 0, 0, 2]))
            },
            Nic {
                forwards: vec![
                    "18080:8080".parse().unwrap(),
                    "tcp:10022:22".parse().unwrap(),
                ],
                ..Nic::new("x", Mac([2, 0, 0, 0, 0, 0xff]))
            },
        ];
        for transport in [Transport::Pci, Transport::Mmio] {
            for count in 0..=shapes.len() {
                let cfg = QemuConfig {
                    nics: shapes[..count].to_vec(),
                    transport,
                    ..QemuConfig::default()
                };
                let line = command_line(&cfg);
                assert!(line.windows(2).any(|w| w == ["-nic", "none"]), "{line:?}");
                assert!(!line.iter().any(|a| a == "-net"), "{line:?}");
                let netdevs: Vec<&String> = line
                    .windows(2)
                    .filter(|w| w[0] == "-netdev")
                    .map(|w| &w[1])
                    .collect();
                assert_eq!(netdevs.len(), count, "{line:?}");
                for netdev in netdevs {
                    let mut parts = netdev.split(',');
                    assert_eq!(parts.next(), Some("user"), "{netdev}");
                    let parts: Vec<&str> = parts.collect();
                    assert!(parts.contains(&"restrict=on"), "{netdev}");
                    for part in parts {
                        let (key, value) = part.split_once('=').unwrap();
                        assert!(
                            ["id", "restrict", "net", "host", "hostfwd"].contains(&key),
                            "{netdev}: {key}"
                        );
                        if key == "hostfwd" {
                            let host = value.split(['-']).next().unwrap();
                            assert!(
                                host.starts_with("tcp:127.0.0.1:")
                                    || host.starts_with("udp:127.0.0.1:"),
                                "{netdev}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn two_nics_follow_the_disks_and_smp_follows_the_memory() {
        use crate::{Mac, Nic};
        let cfg = QemuConfig {
            disks: vec!["d.img".into()],
            nics: vec![
                Nic::new("wan", Mac([0x52, 0x54, 0, 0, 0, 0x99])),
                Nic::new("lan", Mac([0x52, 0x54, 0, 0, 0, 1])),
            ],
            cpus: 2,
            ..QemuConfig::default()
        };
        assert_eq!(
            joined(&cfg),
            "qemu-system-aarch64 -M virt -cpu cortex-a53 -m 1024 -smp 2 -nographic -serial stdio \
             -monitor none -no-reboot -nic none \
             -drive file=d.img,if=none,format=raw,id=d0 -device virtio-blk-pci,drive=d0 \
             -netdev user,id=wan,restrict=on \
             -device virtio-net-pci,netdev=wan,mac=52:54:00:00:00:99,romfile= \
             -netdev user,id=lan,restrict=on \
             -device virtio-net-pci,netdev=lan,mac=52:54:00:00:00:01,romfile="
        );
    }

    #[test]
    fn commas_in_disk_paths_are_doubled() {
        let cfg = QemuConfig {
            disks: vec!["/tmp/a,b/disk,1.img".into()],
            ..QemuConfig::default()
        };
        let line = command_line(&cfg);
        assert!(
            line.contains(&"file=/tmp/a,,b/disk,,1.img,if=none,format=raw,id=d0".to_owned()),
            "{line:?}"
        );
    }
}
