//! Board profiles as data.
//!
//! Owns: the per-board facts every other crate asks about (disk device, console, the kernel
//! modules the initramfs must carry, the first-boot partition definitions and the raw region
//! below them, the raw loader files, where the A/B boot counters live, recovery), parsed once
//! from the TOML files in `board/profiles/` into validated types, and the repart.d definition
//! sets in `board/repart.d/`. Adding a board means adding a profile file, not a code path.
//! Also owns what U-Boot reads: the generated `boot.scr` ([`bootscript`]) in its legacy image
//! wrapper ([`uimage`]), and the U-Boot environment formats that hold the counters ([`env`]).
//! And the board's part of the root filesystem, rendered from the same facts ([`rootfs`]):
//! RAUC's slots and bootloader backend, `fw_env.config`, NIC names, the serial console.
//!
//! Must not: do I/O beyond reading or writing the bytes it is given, or know about `/init`'s
//! stages, partition plans or image assembly.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootscript;
pub mod env;
pub mod rootfs;
pub mod uimage;

use serde::Deserialize;

/// The repart.d definition sets built into the toolkit: (set name, [(file name, text)]).
const DEFINITION_SETS: &[(&str, &[(&str, &str)])] = &[(
    "atomixos-ab",
    &[
        (
            "10-boot-a.conf",
            include_str!("../repart.d/atomixos-ab/10-boot-a.conf"),
        ),
        (
            "20-rootfs-a.conf",
            include_str!("../repart.d/atomixos-ab/20-rootfs-a.conf"),
        ),
        (
            "30-boot-b.conf",
            include_str!("../repart.d/atomixos-ab/30-boot-b.conf"),
        ),
        (
            "40-rootfs-b.conf",
            include_str!("../repart.d/atomixos-ab/40-rootfs-b.conf"),
        ),
        (
            "50-data.conf",
            include_str!("../repart.d/atomixos-ab/50-data.conf"),
        ),
    ],
)];

/// The profiles built into the toolkit, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("qemu-virt", include_str!("../profiles/qemu-virt.toml")),
    ("rock64", include_str!("../profiles/rock64.toml")),
];

/// A failure to find or parse a board profile.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// No built-in profile has this name.
    #[error("unknown board `{name}` (known boards: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// The profile text is not valid TOML for a board.
    #[error("board profile `{name}` is malformed")]
    Parse {
        /// The profile's name or path.
        name: String,
        /// What the parser said.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The profile parsed but breaks a rule.
    #[error("board profile `{name}`: {field} {problem}")]
    Invalid {
        /// The profile's name or path.
        name: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

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
    /// What the board changes in the root filesystem ([`rootfs::files`]).
    pub rootfs: Rootfs,
}

/// The two slot pairs of the AtomixOS layout (DESIGN section 3) and their RAUC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Slot {
    /// Boot partition 1, rootfs partition 2, RAUC slot `boot.0`, bootname `A`.
    A,
    /// Boot partition 3, rootfs partition 4, RAUC slot `boot.1`, bootname `B`.
    B,
}

impl Slot {
    /// Both slots, in the default boot order.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// RAUC's bootname, as in `BOOT_ORDER` and `BOOT_<name>_LEFT`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    /// GPT entry number of the slot's boot (vfat) partition.
    pub fn boot_partition(self) -> u32 {
        match self {
            Slot::A => 1,
            Slot::B => 3,
        }
    }

    /// GPT entry number of the slot's rootfs partition.
    pub fn rootfs_partition(self) -> u32 {
        self.boot_partition() + 1
    }

    /// PARTLABEL of the boot partition.
    pub fn boot_label(self) -> &'static str {
        match self {
            Slot::A => "boot-a",
            Slot::B => "boot-b",
        }
    }

    /// PARTLABEL of the rootfs partition.
    pub fn rootfs_label(self) -> &'static str {
        match self {
            Slot::A => "rootfs-a",
            Slot::B => "rootfs-b",
        }
    }

    /// The `rauc.slot=` value (the boot slot's RAUC name).
    pub fn rauc_slot(self) -> &'static str {
        match self {
            Slot::A => "boot.0",
            Slot::B => "boot.1",
        }
    }

    /// The env variable holding the slot's tries left.
    pub fn left_var(self) -> &'static str {
        match self {
            Slot::A => "BOOT_A_LEFT",
            Slot::B => "BOOT_B_LEFT",
        }
    }
}

impl std::str::FromStr for Slot {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a" | "A" | "boot.0" => Ok(Slot::A),
            "b" | "B" | "boot.1" => Ok(Slot::B),
            _ => Err(format!(
                "`{s}`: expected a slot: a or b (or boot.0, boot.1)"
            )),
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: String,
    description: String,
    disk: String,
    console: String,
    earlycon: Option<String>,
    initramfs: RawInitramfs,
    repart: RawRepart,
    boot: RawBoot,
    ab: RawAb,
    loader: Option<RawLoader>,
    firmware: Option<Firmware>,
    recovery: Option<Recovery>,
    rootfs: Rootfs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBoot {
    uboot_devtype: String,
    uboot_devnum: u32,
    dtb: Option<String>,
    ramdisk_addr: Option<String>,
    kernel_args: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAb {
    tries: u32,
    store: AbStore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoader {
    package: String,
    dir: String,
    files: Vec<LoaderFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRepart {
    definitions: String,
    first_usable_bytes: u64,
    modules: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInitramfs {
    modules: Vec<String>,
}

impl Board {
    /// The names of the built-in boards.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// Load a built-in board profile by name.
    pub fn builtin(name: &str) -> Result<Self, BoardError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| BoardError::Unknown {
                    name: name.to_owned(),
                    known: Self::names().collect::<Vec<_>>().join(", "),
                })?;
        Self::parse(name, text)
    }

    /// Parse a profile from TOML text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, BoardError> {
        let raw: RawBoard = toml::from_str(text).map_err(|e| BoardError::Parse {
            name: origin.to_owned(),
            source: Box::new(e),
        })?;
        Self::try_from_raw(origin, raw)
    }

    fn try_from_raw(origin: &str, raw: RawBoard) -> Result<Self, BoardError> {
        let invalid = |field, problem: String| BoardError::Invalid {
            name: origin.to_owned(),
            field,
            problem,
        };
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "name",
                format!("`{}` must be [A-Za-z0-9-]+", raw.name),
            ));
        }
        if !raw.disk.starts_with("/dev/") {
            return Err(invalid(
                "disk",
                format!("`{}` must be a /dev path", raw.disk),
            ));
        }
        if raw.console.is_empty() {
            return Err(invalid("console", "must not be empty".into()));
        }
        for (field, list) in [
            ("initramfs.modules", &raw.initramfs.modules),
            ("repart.modules", &raw.repart.modules),
        ] {
            if let Some(m) = list
                .iter()
                .find(|m| m.is_empty() || m.contains(['/', '.', ' ']))
            {
                return Err(invalid(
                    field,
                    format!("`{m}` must be a module name, not a path"),
                ));
            }
        }
        let definitions = DEFINITION_SETS
            .iter()
            .find(|(set, _)| *set == raw.repart.definitions)
            .map(|(_, files)| *files)
            .ok_or_else(|| {
                let known: Vec<&str> = DEFINITION_SETS.iter().map(|(set, _)| *set).collect();
                invalid(
                    "repart.definitions",
                    format!(
                        "unknown set `{}` (known: {})",
                        raw.repart.definitions,
                        known.join(", ")
                    ),
                )
            })?;
        let first_usable = raw.repart.first_usable_bytes;
        if first_usable < 1 << 20 || !first_usable.is_multiple_of(4096) {
            return Err(invalid(
                "repart.first-usable-bytes",
                format!("{first_usable} must be a multiple of 4096 and at least 1 MiB"),
            ));
        }
        let boot = validate_boot(raw.boot).map_err(|(field, problem)| invalid(field, problem))?;
        let ab = validate_ab(raw.ab, first_usable).map_err(|(f, p)| invalid(f, p))?;
        let loader = raw
            .loader
            .map(|l| validate_loader(l, first_usable))
            .transpose()
            .map_err(|(f, p)| invalid(f, p))?;
        if let (Some(loader), AbStore::UbootEnv { offset, size }) = (&loader, &ab.store) {
            let env = *offset..offset + size;
            if let Some(f) = loader.files.iter().find(|f| env.contains(&f.offset())) {
                return Err(invalid(
                    "ab.store",
                    format!(
                        "the environment at {offset:#x}..{:#x} holds the start of {}",
                        env.end, f.file
                    ),
                ));
            }
        }
        validate_rootfs(&raw.rootfs).map_err(|(f, p)| invalid(f, p))?;
        Ok(Self {
            name: raw.name,
            description: raw.description,
            disk: raw.disk,
            console: raw.console,
            earlycon: raw.earlycon,
            modules: raw.initramfs.modules,
            repart: Repart {
                set: raw.repart.definitions,
                definitions,
                first_usable_bytes: first_usable,
                modules: raw.repart.modules,
            },
            boot,
            ab,
            loader,
            firmware: raw.firmware,
            recovery: raw.recovery,
            rootfs: raw.rootfs,
        })
    }

    /// The device node of partition `number` on this board's disk (`/dev/vda` → `/dev/vda2`,
    /// `/dev/mmcblk1` → `/dev/mmcblk1p2`), following the kernel's naming rule: a `p` separates
    /// the number when the disk name ends in a digit.
    pub fn partition_device(&self, number: u32) -> String {
        partition_device(&self.disk, number)
    }
}

type Problem = (&'static str, String);

/// NIC matches: both or neither, each naming something, in words a `.link` file can hold.
fn validate_rootfs(rootfs: &Rootfs) -> Result<(), Problem> {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_graphic() && c != '#');
    for (field, nic) in [("rootfs.wan", &rootfs.wan), ("rootfs.lan", &rootfs.lan)] {
        let Some(nic) = nic else { continue };
        if nic.path.is_none() && nic.drivers.is_empty() {
            return Err((field, "give a path or drivers to match the NIC by".into()));
        }
        if let Some(bad) = nic.path.iter().chain(&nic.drivers).find(|w| !word(w)) {
            return Err((field, format!("`{bad}` must be one printable word")));
        }
    }
    if rootfs.wan.is_some() != rootfs.lan.is_some() {
        return Err((
            "rootfs",
            "give both wan and lan NIC matches, or neither (the kernel's names)".into(),
        ));
    }
    Ok(())
}

fn validate_boot(raw: RawBoot) -> Result<Boot, Problem> {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !word(&raw.uboot_devtype) {
        return Err((
            "boot.uboot-devtype",
            format!("`{}` must be a U-Boot interface name", raw.uboot_devtype),
        ));
    }
    if let Some(dtb) = &raw.dtb
        && (dtb.starts_with('/') || dtb.contains("..") || !dtb.ends_with(".dtb"))
    {
        return Err((
            "boot.dtb",
            format!("`{dtb}` must be a relative path to a .dtb file"),
        ));
    }
    if let Some(addr) = &raw.ramdisk_addr {
        let hex = addr.strip_prefix("0x").unwrap_or("");
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err((
                "boot.ramdisk-addr",
                format!("`{addr}` must be a hex address like 0x08000000"),
            ));
        }
    }
    // The arguments end up inside a double-quoted U-Boot `setenv`.
    if raw.kernel_args.contains(['"', '$', '\\', '\n', ';']) {
        return Err((
            "boot.kernel-args",
            format!(
                "`{}` must not contain quotes, $, \\, ; or newlines",
                raw.kernel_args
            ),
        ));
    }
    Ok(Boot {
        uboot_devtype: raw.uboot_devtype,
        uboot_devnum: raw.uboot_devnum,
        dtb: raw.dtb,
        ramdisk_addr: raw.ramdisk_addr,
        kernel_args: raw.kernel_args,
    })
}

fn validate_ab(raw: RawAb, first_usable: u64) -> Result<Ab, Problem> {
    if !(1..=9).contains(&raw.tries) {
        return Err((
            "ab.tries",
            format!(
                "{} must be 1..=9 (boot.scr counts down without setexpr)",
                raw.tries
            ),
        ));
    }
    match &raw.store {
        AbStore::UbootEnv { offset, size } => {
            if *size < 0x1000 || !size.is_power_of_two() {
                return Err((
                    "ab.store.size",
                    format!("{size:#x} must be a power of two of at least 0x1000"),
                ));
            }
            if *offset < GPT_END || offset + size > first_usable || !offset.is_multiple_of(512) {
                return Err((
                    "ab.store.offset",
                    format!(
                        "{offset:#x}..{:#x} must be sector aligned, after the primary GPT and below the first partition ({first_usable:#x})",
                        offset + size
                    ),
                ));
            }
        }
        AbStore::VfatFile { partition, file } => {
            if *partition == 0 {
                return Err((
                    "ab.store.partition",
                    "must be a GPT entry number (1 or more)".into(),
                ));
            }
            if file.is_empty() || file.contains(['/', '\\', ' ']) {
                return Err((
                    "ab.store.file",
                    format!("`{file}` must be a plain file name"),
                ));
            }
        }
    }
    Ok(Ab {
        tries: raw.tries,
        store: raw.store,
    })
}

/// The primary GPT (protective MBR, header, 128 entries) ends here.
const GPT_END: u64 = 34 * 512;

fn validate_loader(raw: RawLoader, first_usable: u64) -> Result<Loader, Problem> {
    if raw.files.is_empty() {
        return Err(("loader.files", "must name at least one file".into()));
    }
    for f in &raw.files {
        if f.file.is_empty() || f.file.contains('/') {
            return Err(("loader.files", format!("`{}` must be a file name", f.file)));
        }
        if f.offset() < GPT_END || f.offset() >= first_usable {
            return Err((
                "loader.files",
                format!(
                    "{} at sector {} must start after the primary GPT (sector 34) and below the first partition",
                    f.file, f.sector
                ),
            ));
        }
    }
    Ok(Loader {
        package: raw.package,
        dir: raw.dir,
        files: raw.files,
    })
}

/// The kernel's partition naming rule for whole-disk `disk` (`atomix_blockdev::partition_name`,
/// the workspace's one copy of it).
pub fn partition_device(disk: &str, number: u32) -> String {
    atomix_blockdev::partition_name(disk, number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for name in Board::names() {
            let b = Board::builtin(name).unwrap();
            assert_eq!(b.name, name);
            assert!(b.modules.iter().any(|m| m == "squashfs"), "{name}");
            assert!(b.modules.iter().any(|m| m == "overlay"), "{name}");
        }
    }

    #[test]
    fn unknown_board_names_the_known_ones() {
        let e = Board::builtin("pi5").unwrap_err().to_string();
        assert!(
            e.contains("pi5") && e.contains("rock64") && e.contains("qemu-virt"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_is_refused() {
        let text = include_str!("../profiles/qemu-virt.toml").replace("disk =", "disks =");
        let e = Board::parse("t", &text).unwrap_err();
        assert!(matches!(e, BoardError::Parse { .. }), "{e:?}");
    }

    #[test]
    fn module_paths_are_refused() {
        let text =
            include_str!("../profiles/qemu-virt.toml").replace("\"overlay\"", "\"fs/overlay.ko\"");
        let e = Board::parse("t", &text).unwrap_err().to_string();
        assert!(
            e.contains("initramfs.modules") && e.contains("fs/overlay.ko"),
            "{e}"
        );
    }

    #[test]
    fn boards_carry_the_ab_definitions() {
        for name in Board::names() {
            let r = Board::builtin(name).unwrap().repart;
            assert_eq!(r.set, "atomixos-ab");
            assert_eq!(r.first_usable_bytes, 16 << 20);
            let files: Vec<&str> = r.definitions.iter().map(|(f, _)| *f).collect();
            assert_eq!(files.len(), 5);
            assert!(files.windows(2).all(|w| w[0] < w[1]), "sorted: {files:?}");
            assert!(r.definitions.iter().all(|(_, t)| t.contains("[Partition]")));
            assert!(r.modules.iter().any(|m| m == "f2fs"));
        }
    }

    #[test]
    fn unknown_definition_set_is_refused() {
        let text = include_str!("../profiles/qemu-virt.toml")
            .replace("definitions = \"atomixos-ab\"", "definitions = \"nope\"");
        let e = Board::parse("t", &text).unwrap_err().to_string();
        assert!(
            e.contains("repart.definitions") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn a_first_usable_offset_inside_the_gpt_is_refused() {
        let text = include_str!("../profiles/qemu-virt.toml").replace("16777216", "4096");
        let e = Board::parse("t", &text).unwrap_err().to_string();
        assert!(e.contains("first-usable-bytes"), "{e}");
    }

    #[test]
    fn boot_counter_rules_are_checked() {
        let rock64 = include_str!("../profiles/rock64.toml");
        let e = Board::parse("t", &rock64.replace("tries = 3", "tries = 10"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ab.tries"), "{e}");
        // The environment must stay in the raw region and off the loader files.
        let e = Board::parse("t", &rock64.replace("0x3F8000", "0x1000000"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ab.store.offset"), "{e}");
        let e = Board::parse("t", &rock64.replace("0x3F8000", "0x7FC000"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("u-boot.itb"), "{e}");
        let e = Board::parse("t", &rock64.replace("sector = 64", "sector = 8"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loader.files") && e.contains("idbloader"), "{e}");
        let e = Board::parse("t", &rock64.replace("rootwait", "a;b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("boot.kernel-args"), "{e}");
    }

    #[test]
    fn the_boards_differ_where_the_hardware_does() {
        let rock64 = Board::builtin("rock64").unwrap();
        let qemu = Board::builtin("qemu-virt").unwrap();
        assert_eq!(rock64.boot.dtb_file_name(), Some("rk3328-rock64.dtb"));
        assert_eq!(qemu.boot.dtb_file_name(), None);
        assert!(matches!(
            rock64.ab.store,
            AbStore::UbootEnv {
                offset: 0x3F8000,
                size: 0x8000
            }
        ));
        assert!(matches!(
            qemu.ab.store,
            AbStore::VfatFile { partition: 1, .. }
        ));
        let loader = rock64.loader.unwrap();
        assert_eq!(loader.files[0].offset(), 32 * 1024);
        assert_eq!(loader.files[1].offset(), 8 << 20);
        assert!(qemu.loader.is_none() && rock64.firmware.is_none());
        assert_eq!(qemu.firmware.unwrap().env_size, 0x40000);
        assert!(rock64.recovery.is_some() && qemu.recovery.is_none());
        assert_eq!("b".parse::<Slot>(), Ok(Slot::B));
        assert!("c".parse::<Slot>().is_err());
        assert_eq!(
            (Slot::B.boot_partition(), Slot::B.rootfs_partition()),
            (3, 4)
        );
    }

    #[test]
    fn partition_device_naming() {
        assert_eq!(partition_device("/dev/vda", 2), "/dev/vda2");
        assert_eq!(partition_device("/dev/mmcblk1", 4), "/dev/mmcblk1p4");
        assert_eq!(partition_device("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
        assert_eq!(
            Board::builtin("rock64").unwrap().partition_device(2),
            "/dev/mmcblk1p2"
        );
    }
}
