//! A validated board profile ([`Board`]) and its parts: what boot.scr needs, the A/B counters
//! and where they live, the raw loader files, the emulator's firmware, recovery, the root
//! filesystem's facts and the first-boot repartitioning. Reading them from TOML is `parse`'s.

use serde::Deserialize;

use crate::partition_device;

/// A validated board profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// Short name, e.g. `rock64`.
    pub name: String,
    /// One line for `--help` and inspection output.
    pub description: String,
    /// The whole-disk device Linux sees, e.g. `/dev/mmcblk1`.
    pub disk: String,
    /// The `console=` value for the kernel command line.
    pub console: String,
    /// The `earlycon=` value, if the board wants one.
    pub earlycon: Option<String>,
    /// Kernel modules (by module name) the initramfs must load at boot, before the slot device
    /// can appear. Their dependencies are resolved at initramfs build time.
    pub modules: Vec<String>,
    /// First-boot repartitioning.
    pub repart: Repart,
    /// What boot.scr needs to know.
    pub boot: Boot,
    /// The A/B boot counters.
    pub ab: Ab,
    /// Raw loader files written below the first partition; empty when the firmware is not on
    /// the disk (QEMU).
    pub loader: Option<Loader>,
    /// Firmware passed to the emulator instead (QEMU's `-bios`).
    pub firmware: Option<Firmware>,
    /// USB mass-storage recovery, if the board has it.
    pub recovery: Option<Recovery>,
    /// What the board changes in the root filesystem ([`rootfs::files`](crate::rootfs::files)).
    pub rootfs: Rootfs,
}

/// What the boot script needs from the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// U-Boot device type used when distro boot did not set `devtype` (`mmc`, `virtio`).
    pub uboot_devtype: String,
    /// U-Boot device number used when distro boot did not set `devnum`.
    pub uboot_devnum: u32,
    /// The device tree inside the kernel package (`usr/lib/linux-image-<version>/<dtb>`); it
    /// goes into the boot partition's FAT root under its file name. `None`: the firmware's own
    /// (`${fdtcontroladdr}`).
    pub dtb: Option<String>,
    /// Overrides U-Boot's `ramdisk_addr_r`.
    pub ramdisk_addr: Option<String>,
    /// Kernel parameters after the console and slot parameters.
    pub kernel_args: String,
}

impl Boot {
    /// The DTB's name in the FAT root, if the board has one.
    pub fn dtb_file_name(&self) -> Option<&str> {
        self.dtb
            .as_deref()
            .map(|d| d.rsplit('/').next().unwrap_or(d))
    }
}

/// The A/B boot counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ab {
    /// Tries a slot gets (`BOOT_x_LEFT` after mark-good or a reset), 1..=9.
    pub tries: u32,
    /// Where the counters are kept between boots.
    pub store: AbStore,
}

/// Where `BOOT_ORDER`, `BOOT_A_LEFT` and `BOOT_B_LEFT` live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AbStore {
    /// U-Boot's own environment (binary, CRC32 header, not redundant) at a byte offset of the
    /// disk; boot.scr persists with `saveenv`.
    UbootEnv {
        /// Byte offset on the disk.
        offset: u64,
        /// Environment size in bytes (CONFIG_ENV_SIZE), CRC included.
        size: u64,
    },
    /// A text file (`env export -t` format) in the FAT root of a boot partition; boot.scr
    /// persists with `env export -t` + `save`.
    VfatFile {
        /// GPT entry number of the vfat partition.
        partition: u32,
        /// File name in the FAT root.
        file: String,
    },
}

/// Raw loader files below the first partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    /// Debian package that ships them (arm64; unpacked with `dpkg -x`).
    pub package: String,
    /// Directory of the files inside the unpacked package.
    pub dir: String,
    /// The files and where they go.
    pub files: Vec<LoaderFile>,
}

/// One raw loader file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderFile {
    /// File name inside [`Loader::dir`].
    pub file: String,
    /// 512-byte sector it starts at.
    pub sector: u64,
}

impl LoaderFile {
    /// Byte offset on the disk.
    pub fn offset(&self) -> u64 {
        self.sector * 512
    }
}

/// Firmware given to the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Firmware {
    /// QEMU `-bios` file.
    pub bios: String,
    /// Size of the environment U-Boot reads from the start of flash bank 1 (its
    /// CONFIG_ENV_SIZE); a seed with `bootdelay=0` there skips the autoboot countdown.
    pub env_size: u64,
}

/// USB mass-storage recovery in boot.scr.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recovery {
    /// U-Boot GPIO number of the (active-low) recovery button.
    pub gpio: u32,
    /// Seconds the button must stay held.
    pub hold_seconds: u32,
    /// `ums` USB controller index.
    pub usb_controller: u32,
}

/// The board's facts about the root filesystem it runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rootfs {
    /// Log root in on the serial console without a password. For the QEMU bench only, whose
    /// console is the host's own: real boards keep a login prompt.
    pub serial_autologin: bool,
    /// How the WAN NIC is found, to name it `eth0`; `None` (with `lan`): the kernel's names
    /// are kept, so NICs are eth0, eth1 in probe order.
    pub wan: Option<NicMatch>,
    /// How the LAN NIC is found, to name it `eth1`.
    pub lan: Option<NicMatch>,
}

/// A NIC as a systemd `.link` file's `[Match]` finds it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicMatch {
    /// The device's persistent path (`udevadm info` ID_PATH), e.g. `platform-ff540000.ethernet`.
    pub path: Option<String>,
    /// Kernel drivers, any of which matches (e.g. USB Ethernet adapters).
    #[serde(default)]
    pub drivers: Vec<String>,
}

/// How a board's disk is repartitioned on first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repart {
    /// Name of the definition set (`board/repart.d/<name>/`).
    pub set: String,
    /// The definitions in file-name order: (file name, systemd repart.d text). Parsing them is
    /// `atomix-repart`'s job.
    pub definitions: &'static [(&'static str, &'static str)],
    /// Nothing below this byte offset is ever allocated, discarded or written.
    pub first_usable_bytes: u64,
    /// Modules `/init` loads only when repartitioning has work to do.
    pub modules: Vec<String>,
}

impl Board {
    /// The device node of partition `number` on this board's disk (`/dev/vda` → `/dev/vda2`,
    /// `/dev/mmcblk1` → `/dev/mmcblk1p2`), following the kernel's naming rule: a `p` separates
    /// the number when the disk name ends in a digit.
    pub fn partition_device(&self, number: u32) -> String {
        partition_device(&self.disk, number)
    }
}
