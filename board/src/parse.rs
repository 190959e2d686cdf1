//! Reading a board profile: the built-in profiles and repart.d definition sets, the TOML as
//! written ([`RawBoard`]), and the rules a profile must keep to become a [`Board`].

use serde::Deserialize;

use crate::{
    Ab, AbStore, Board, BoardError, Boot, Firmware, Loader, LoaderFile, Recovery, Repart, Rootfs,
};

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
