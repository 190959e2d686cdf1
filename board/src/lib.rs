//! Board profiles as data.
//!
//! Owns: the per-board facts every other crate asks about (disk device, console, the kernel
//! modules the initramfs must carry, the first-boot partition definitions and the raw region
//! below them), parsed once from the TOML files in `board/profiles/` into validated types, and
//! the repart.d definition sets in `board/repart.d/`. Adding a board means adding a profile
//! file, not a code path.
//!
//! Must not: do I/O beyond reading the files it is given, or know about boot stages, partition
//! plans or image formats.

#![forbid(unsafe_code)]

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
        })
    }

    /// The device node of partition `number` on this board's disk (`/dev/vda` → `/dev/vda2`,
    /// `/dev/mmcblk1` → `/dev/mmcblk1p2`), following the kernel's naming rule: a `p` separates
    /// the number when the disk name ends in a digit.
    pub fn partition_device(&self, number: u32) -> String {
        partition_device(&self.disk, number)
    }
}

/// The kernel's partition naming rule for whole-disk `disk`.
pub fn partition_device(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
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
