//! The boot stages, their order, names and failure hints.

use std::fmt;

/// One stage of `/init`. [`STAGES`] is the order they run in.
///
/// Adding a stage means adding a variant here, an entry in [`STAGES`], and its call, in the same
/// place, in the runner's sequence ([`crate::boot`]), which passes it what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Mount devtmpfs, proc, sysfs, tmpfs `/run`; console on fds 0-2; logger and panic hook.
    Early,
    /// Parse `/proc/cmdline` into [`crate::cmdline::BootParams`].
    Cmdline,
    /// `finit_module` the list in `/etc/atomix/modules.load`.
    Modules,
    /// Wait for the slot device named by `atomixos.lowerdev=`.
    Device,
    /// Decide whether this boot is a fresh flash (no `boot-b` yet); `/run/atomixos/fresh-flash`.
    FreshFlash,
    /// Apply the repart.d definitions to the disk holding the slot.
    Repart,
    /// Mount the slot read-only at `/run/rootfs-base`.
    Lower,
    /// Overlay over a tmpfs at `/sysroot`.
    Overlay,
    /// Write or remove `/sysroot/etc/atomixos/fresh-flash`; write `/run/atomix/initrd.json`.
    Marker,
    /// Move the API mounts, free the initramfs, switch root; then exec `init=`.
    SwitchRoot,
}

/// The stages in the order `/init` runs them.
pub const STAGES: &[Stage] = &[
    Stage::Early,
    Stage::Cmdline,
    Stage::Modules,
    Stage::Device,
    Stage::FreshFlash,
    Stage::Repart,
    Stage::Lower,
    Stage::Overlay,
    Stage::Marker,
    Stage::SwitchRoot,
];

impl Stage {
    /// The stage's name in logs, `initrd.json` and `atomix.break=`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Early => "early",
            Stage::Cmdline => "cmdline",
            Stage::Modules => "modules",
            Stage::Device => "device",
            Stage::FreshFlash => "fresh-flash",
            Stage::Repart => "repart",
            Stage::Lower => "lower",
            Stage::Overlay => "overlay",
            Stage::Marker => "marker",
            Stage::SwitchRoot => "switch-root",
        }
    }

    /// The stage with this name.
    pub fn from_name(name: &str) -> Option<Stage> {
        STAGES.iter().copied().find(|s| s.name() == name)
    }

    /// Whether `atomix.break=` can stop before this stage. The boot parameters are only known
    /// after `cmdline`, so `early` and `cmdline` cannot be break points.
    pub fn breakable(self) -> bool {
        !matches!(self, Stage::Early | Stage::Cmdline)
    }

    /// One line telling a bring-up engineer where to look when this stage fails.
    pub fn hint(self) -> &'static str {
        match self {
            Stage::Early => {
                "the kernel needs devtmpfs, proc, sysfs and tmpfs, and the initramfs needs /dev/console"
            }
            Stage::Cmdline => {
                "fix the named parameter in the kernel command line (bootargs in boot.scr)"
            }
            Stage::Modules => {
                "the module list is made when the initramfs is built: rebuild it for this kernel"
            }
            Stage::Device => {
                "check atomixos.lowerdev= against the disk's partitions and that the storage driver is built in or in the initramfs"
            }
            Stage::FreshFlash => "/run must be a writable tmpfs",
            Stage::Repart => {
                "the disk holding the slot (or atomix.repart.device=) must have a GPT with room for /etc/repart.d; boot with atomix.repart=auto to continue past a repart failure"
            }
            Stage::Lower => {
                "check atomixos.lowerfstype= and that the slot holds a complete image of that filesystem"
            }
            Stage::Overlay => "the overlay module must be loaded and /run must be a writable tmpfs",
            Stage::Marker => "/run and the overlay at /sysroot must be writable",
            Stage::SwitchRoot => {
                "the slot image must contain init= (default /sbin/init) and be a complete root filesystem"
            }
        }
    }
}

/// Written as its [`Stage::name`] (`initrd.json`'s `stages[].name`).
impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in STAGES {
            assert_eq!(Stage::from_name(s.name()), Some(*s));
            assert!(!s.hint().is_empty());
        }
        assert_eq!(Stage::from_name("nope"), None);
        let names: Vec<_> = STAGES.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "early",
                "cmdline",
                "modules",
                "device",
                "fresh-flash",
                "repart",
                "lower",
                "overlay",
                "marker",
                "switch-root"
            ]
        );
    }
}
