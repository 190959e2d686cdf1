//! Board profiles as data.
//!
//! Owns: the per-board facts every other crate asks about (disk device, console, the kernel
//! modules the initramfs must carry), parsed once from the TOML files in `board/profiles/` into
//! validated types. Adding a board means adding a profile file, not a code path.
//!
//! Must not: do I/O beyond reading the files it is given, or know about boot stages, partition
//! plans or image formats.

#![forbid(unsafe_code)]

use serde::Deserialize;

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
        for m in &raw.initramfs.modules {
            if m.is_empty() || m.contains(['/', '.', ' ']) {
                return Err(invalid(
                    "initramfs.modules",
                    format!("`{m}` must be a module name, not a path"),
                ));
            }
        }
        Ok(Self {
            name: raw.name,
            description: raw.description,
            disk: raw.disk,
            console: raw.console,
            earlycon: raw.earlycon,
            modules: raw.initramfs.modules,
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
