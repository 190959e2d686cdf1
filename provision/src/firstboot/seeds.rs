//! Where first boot finds a seed: the boot partition (a fresh flash's day-0 config) and USB
//! storage. [`SeedFinder`] is what the flow asks; [`DeviceSeeds`] looks on the real devices,
//! mounting each read-only for as long as it takes to read the seed into memory.
//!
//! Better than the original (spec 9.4): a USB seed may be on vfat, exfat or ext4, found by its
//! filesystem label or partition label, as `config.toml` or a bundle; the partitions of the
//! system disk are never taken for one, whatever their filesystem labels.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomix_config::bundle::Limits;

use super::settings::BootSeed;
use crate::source::{self, Source};

/// The names a seed may have at the top of its filesystem, in the order they are tried: the
/// plain config, then bundles.
pub const SEED_NAMES: &[&str] = &[
    "config.toml",
    "config.tar.zst",
    "config.tar.zstd",
    "config.tzst",
    "config.tar.gz",
    "config.tgz",
];

/// Partition labels of the system disk: never a USB seed.
pub const SYSTEM_PARTLABELS: &[&str] = &["boot-a", "boot-b", "rootfs-a", "rootfs-b", "data"];

/// Filesystems a seed may be on.
pub const SEED_FSTYPES: &str = "vfat,exfat,ext4";

/// A seed found, read into memory (or why it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Where it came from, for reports: `/dev/sdb1:config.toml`.
    pub origin: String,
    /// Its source, or why it could not be read.
    pub read: Result<Source, String>,
}

/// Finds seeds.
pub trait SeedFinder {
    /// The day-0 seed on the boot partition, if there is one.
    fn boot_seed(&mut self) -> Option<Seed>;
    /// Seeds on USB storage not offered before (a device unplugged and plugged in again is
    /// offered again).
    fn usb_seeds(&mut self) -> Vec<Seed>;
}

/// Reads the first of [`SEED_NAMES`] in `dir`, if any; `origin` prefixes the name.
pub fn read_seed_dir(dir: &Path, origin: &str, limits: &Limits) -> Option<Seed> {
    SEED_NAMES.iter().find_map(|name| {
        let path = dir.join(name);
        path.is_file().then(|| Seed {
            origin: format!("{origin}:{name}"),
            read: source::read(&path, limits).map_err(|e| format!("{:#}", anyhow::Error::new(e))),
        })
    })
}

/// Whether a label names one of the system disk's partitions (`boot-a`, `BOOT-A`, …).
fn is_system_label(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SYSTEM_PARTLABELS.iter().any(|l| name.ends_with(l))
}

/// Mounts a filesystem read-only for a moment.
pub trait Mounter {
    /// Mounts `device` read-only (no devices, no setuid, no exec) at the existing `dir`.
    fn mount(&mut self, device: &Path, dir: &Path) -> Result<(), String>;
    /// Unmounts `dir`.
    fn unmount(&mut self, dir: &Path) -> Result<(), String>;
}

/// `mount -t vfat,exfat,ext4 -o ro,nosuid,nodev,noexec` and `umount`.
#[derive(Debug, Default)]
pub struct MountCommand;

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("{program}: {}: {}", out.status, stderr.trim()))
    }
}

impl Mounter for MountCommand {
    fn mount(&mut self, device: &Path, dir: &Path) -> Result<(), String> {
        run(
            "mount",
            &[
                "-t".as_ref(),
                SEED_FSTYPES.as_ref(),
                "-o".as_ref(),
                "ro,nosuid,nodev,noexec".as_ref(),
                device.as_os_str(),
                dir.as_os_str(),
            ],
        )
    }

    fn unmount(&mut self, dir: &Path) -> Result<(), String> {
        run("umount", &[dir.as_os_str()])
    }
}

/// The real devices.
#[derive(Debug)]
pub struct DeviceSeeds<M> {
    boot: BootSeed,
    search_dirs: Vec<PathBuf>,
    /// Where the system's partitions are linked by label (`/dev/disk/by-partlabel`).
    partlabels: PathBuf,
    /// Under which the temporary mount points are made.
    mount_base: PathBuf,
    limits: Limits,
    mounter: M,
    /// Devices offered already (and still present).
    offered: BTreeSet<PathBuf>,
    mounts: u32,
}

impl<M: Mounter> DeviceSeeds<M> {
    /// Looks for the boot seed at `boot` and for USB seeds in `search_dirs`, mounting under
    /// `mount_base` with `mounter`.
    pub fn new(
        boot: BootSeed,
        search_dirs: Vec<PathBuf>,
        partlabels: PathBuf,
        mount_base: PathBuf,
        limits: Limits,
        mounter: M,
    ) -> Self {
        Self {
            boot,
            search_dirs,
            partlabels,
            mount_base,
            limits,
            mounter,
            offered: BTreeSet::new(),
            mounts: 0,
        }
    }

    /// Mounts `device`, reads a seed from it, unmounts it.
    fn read_device(&mut self, device: &Path) -> Option<Seed> {
        self.mounts += 1;
        let dir = self.mount_base.join(format!(
            "atomixos-seed-{}-{}",
            std::process::id(),
            self.mounts
        ));
        let origin = device.display().to_string();
        if let Err(e) = fs::create_dir_all(&dir) {
            return Some(Seed {
                read: Err(format!(
                    "cannot make the mount point {}: {e}",
                    dir.display()
                )),
                origin,
            });
        }
        let seed = match self.mounter.mount(device, &dir) {
            // Not a filesystem a seed may be on: not a seed, but say why in the journal.
            Err(e) => {
                eprintln!("{origin}: not read as a seed: {e}");
                None
            }
            Ok(()) => {
                let seed = read_seed_dir(&dir, &origin, &self.limits);
                if let Err(e) = self.mounter.unmount(&dir) {
                    eprintln!("warning: cannot unmount {}: {e}", dir.display());
                }
                seed
            }
        };
        let _ = fs::remove_dir(&dir);
        seed
    }

    /// The devices the system's partition labels point at.
    fn system_devices(&self) -> BTreeSet<PathBuf> {
        SYSTEM_PARTLABELS
            .iter()
            .filter_map(|l| fs::canonicalize(self.partlabels.join(l)).ok())
            .collect()
    }

    /// The candidate devices now present, in search order, each once.
    fn candidates(&self) -> Vec<PathBuf> {
        let system = self.system_devices();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for dir in &self.search_dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            names.sort();
            for name in names.iter().filter(|n| !is_system_label(n)) {
                let Ok(device) = fs::canonicalize(dir.join(name)) else {
                    continue;
                };
                if !system.contains(&device) && seen.insert(device.clone()) {
                    out.push(device);
                }
            }
        }
        out
    }
}

impl<M: Mounter> SeedFinder for DeviceSeeds<M> {
    fn boot_seed(&mut self) -> Option<Seed> {
        match self.boot.clone() {
            BootSeed::File(path) => path.is_file().then(|| Seed {
                origin: path.display().to_string(),
                read: source::read(&path, &self.limits)
                    .map_err(|e| format!("{:#}", anyhow::Error::new(e))),
            }),
            BootSeed::Partition(device) => {
                let device = fs::canonicalize(&device).ok()?;
                self.read_device(&device)
            }
        }
    }

    fn usb_seeds(&mut self) -> Vec<Seed> {
        let present = self.candidates();
        self.offered.retain(|d| present.contains(d));
        let mut out = Vec::new();
        for device in present {
            if self.offered.insert(device.clone())
                && let Some(seed) = self.read_device(&device)
            {
                out.push(seed);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_labels_are_recognised_in_any_case() {
        for name in ["boot-a", "BOOT-A", "rootfs-b", "data", "my-data"] {
            assert!(is_system_label(name), "{name}");
        }
        for name in ["ATOMIX-SEED", "usb", "datastick"] {
            assert!(!is_system_label(name), "{name}");
        }
    }
}
