//! systemd `repart.d` partition definitions: the subset AtomixOS uses, parsed strictly.
//!
//! A definitions directory holds `*.conf` files, read in file-name order. Each file has one
//! `[Partition]` section of `Key=Value` lines (`#` and `;` start comment lines). The keys and
//! their semantics are systemd-repart v252's (`man repart.d`):
//!
//! | key | value | parsed as |
//! |---|---|---|
//! | `Type=` | a symbolic name ([`partition_type`]) or a GUID | required, as in v252 |
//! | `Label=` | up to 36 UTF-16 units; empty is a valid label | no specifiers |
//! | `UUID=` | a GUID (with or without dashes) | |
//! | `Priority=` | `i32` | default 0 |
//! | `Weight=`, `PaddingWeight=` | `0..=1000000` | defaults 1000 and 0 |
//! | `SizeMinBytes=`, `PaddingMinBytes=` | size, `K`/`M`/`G`/`T`/`P`/`E` base 1024 | rounded **up** to 4096 |
//! | `SizeMaxBytes=`, `PaddingMaxBytes=` | size | rounded **down** to 4096 |
//! | `Format=` | `vfat`, `f2fs`, `off` | |
//! | `MakeDirectories=` | absolute paths, space-separated, repeatable | needs `Format=` |
//!
//! Stricter than systemd, on purpose: a key systemd knows but this crate does not implement
//! (`CopyFiles=`, `Encrypt=`, `Verity=`, ...), an unknown key, a second section, a line outside
//! the section, a malformed value, a too-long label or an out-of-range weight is an error that
//! names the file and line, where v252 would often warn and ignore the line. Like systemd, a key
//! given twice takes its last value (`MakeDirectories=` accumulates).
//!
//! Files: loading and parsing here (with its tests, which also cover the type names through
//! `Type=`); the type names and GUIDs in `types.rs`; [`DefinitionError`] in `error.rs`. This file
//! is a little over 800 lines because a third of it is the parser's tests, kept beside it.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::gpt::{Guid, NAME_UNITS};
pub use crate::size::parse_size;

mod error;
mod types;

pub use self::error::DefinitionError;
pub use self::types::{Arch, partition_type, type_is_verity, type_knows_growfs, type_name};

/// Default `SizeMinBytes=` when a definition sets none (systemd's `DEFAULT_MIN_SIZE`).
pub const DEFAULT_MIN_SIZE: u64 = 10 << 20;
/// Sizes in definitions are rounded to multiples of this.
pub const SIZE_GRANULARITY: u64 = 4096;
/// Largest `Weight=` / `PaddingWeight=`.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A file system a definition asks for on a new partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// FAT (`vfat`).
    Vfat,
    /// F2FS (`f2fs`; systemd-repart v252 lacks it).
    F2fs,
}

impl Format {
    /// The `Format=` value.
    pub fn name(self) -> &'static str {
        match self {
            Format::Vfat => "vfat",
            Format::F2fs => "f2fs",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One validated partition definition (one `*.conf` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    name: String,
    #[serde(serialize_with = "crate::plan::serialize_guid")]
    type_guid: Guid,
    label: Option<String>,
    #[serde(serialize_with = "crate::plan::serialize_opt_guid")]
    uuid: Option<Guid>,
    priority: i32,
    weight: u32,
    padding_weight: u32,
    size_min: Option<u64>,
    size_max: Option<u64>,
    padding_min: Option<u64>,
    padding_max: Option<u64>,
    format: Option<Format>,
    make_directories: Vec<String>,
}

impl Definition {
    /// The file name (`30-boot-b.conf`); definitions are ordered by it.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `Type=`.
    pub fn type_guid(&self) -> Guid {
        self.type_guid
    }
    /// `Label=`, if given (possibly empty).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
    /// `UUID=`, if given.
    pub fn uuid(&self) -> Option<Guid> {
        self.uuid
    }
    /// `Priority=` (default 0).
    pub fn priority(&self) -> i32 {
        self.priority
    }
    /// `Weight=` (default 1000).
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// `PaddingWeight=` (default 0).
    pub fn padding_weight(&self) -> u32 {
        self.padding_weight
    }
    /// `SizeMinBytes=`, rounded up to 4096; `None` means [`DEFAULT_MIN_SIZE`].
    pub fn size_min(&self) -> Option<u64> {
        self.size_min
    }
    /// `SizeMaxBytes=`, rounded down to 4096; `None` means unlimited.
    pub fn size_max(&self) -> Option<u64> {
        self.size_max
    }
    /// `PaddingMinBytes=`, rounded up to 4096; `None` means 0.
    pub fn padding_min(&self) -> Option<u64> {
        self.padding_min
    }
    /// `PaddingMaxBytes=`, rounded down to 4096; `None` means unlimited.
    pub fn padding_max(&self) -> Option<u64> {
        self.padding_max
    }
    /// `Format=`; `None` for `off` or absent.
    pub fn format(&self) -> Option<Format> {
        self.format
    }
    /// `MakeDirectories=`, normalised absolute paths in the order given.
    pub fn make_directories(&self) -> &[String] {
        &self.make_directories
    }
}

/// systemd keys this crate knows about but refuses (v252 and later).
const NOT_IMPLEMENTED: &[&str] = &[
    "CopyBlocks",
    "CopyFiles",
    "Compression",
    "CompressionLevel",
    "DefaultSubvolume",
    "Encrypt",
    "EncryptedVolume",
    "ExcludeFiles",
    "ExcludeFilesTarget",
    "FactoryReset",
    "Flags",
    "GrowFileSystem",
    "Minimize",
    "MountPoint",
    "NoAuto",
    "ReadOnly",
    "SizeMultipleOf",
    "SplitName",
    "Subvolumes",
    "Verity",
    "VerityDataBlockSizeBytes",
    "VerityHashBlockSizeBytes",
    "VerityMatchKey",
    "VolumeLabel",
];

/// File systems systemd-repart can make that this crate does not.
const FORMATS_NOT_IMPLEMENTED: &[&str] = &[
    "ext2", "ext3", "ext4", "btrfs", "xfs", "erofs", "squashfs", "swap",
];

/// Reads every `*.conf` in `dir`, in file-name order, with `native` as the architecture of `root`
/// and `usr`. A `*.conf.d` drop-in directory is refused (not implemented); a `.conf` symlink to
/// `/dev/null` is masked (skipped) as in systemd.
pub fn load_dir(dir: &Path, native: Arch) -> Result<Vec<Definition>, DefinitionError> {
    let read_dir_failed = |source| DefinitionError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_failed)? {
        let entry = entry.map_err(read_dir_failed)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".conf.d") && path.is_dir() {
            return Err(DefinitionError::DropInDirectory { path });
        }
        if name.ends_with(".conf") {
            files.push((name, path));
        }
    }
    files.sort();
    let mut definitions = Vec::with_capacity(files.len());
    for (name, path) in files {
        if fs::canonicalize(&path).is_ok_and(|p| p == Path::new("/dev/null")) {
            log::info!("definition {} is masked, skipping it", path.display());
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|source| DefinitionError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let mut definition = parse_definition(&path.display().to_string(), &text, native)?;
        definition.name = name;
        definitions.push(definition);
    }
    Ok(definitions)
}

/// Parses one definition file's `text`. `file` names it in errors and becomes
/// [`Definition::name`] (its last `/`-separated component).
pub fn parse_definition(
    file: &str,
    text: &str,
    native: Arch,
) -> Result<Definition, DefinitionError> {
    let mut d = Definition {
        name: file.rsplit('/').next().unwrap_or(file).to_owned(),
        type_guid: Guid::NIL,
        label: None,
        uuid: None,
        priority: 0,
        weight: 1000,
        padding_weight: 0,
        size_min: None,
        size_max: None,
        padding_min: None,
        padding_max: None,
        format: None,
        make_directories: Vec::new(),
    };
    let mut section_line = None;
    // Lines of SizeMinBytes=, SizeMaxBytes=, PaddingMinBytes=, PaddingMaxBytes= (last given).
    let mut size_lines = [0usize; 4];
    let mut dirs_line = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') || s.starts_with(';') {
            continue;
        }
        if s.ends_with('\\') {
            return Err(DefinitionError::Continuation {
                file: file.to_owned(),
                line,
            });
        }
        if let Some(inner) = s.strip_prefix('[') {
            let Some(section) = inner.strip_suffix(']') else {
                return Err(DefinitionError::Syntax {
                    file: file.to_owned(),
                    line,
                });
            };
            if section != "Partition" {
                return Err(DefinitionError::UnknownSection {
                    file: file.to_owned(),
                    line,
                    section: section.to_owned(),
                });
            }
            if section_line.is_some() {
                return Err(DefinitionError::SecondSection {
                    file: file.to_owned(),
                    line,
                });
            }
            section_line = Some(line);
            continue;
        }
        let Some((key, value)) = s.split_once('=') else {
            return Err(DefinitionError::Syntax {
                file: file.to_owned(),
                line,
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(DefinitionError::Syntax {
                file: file.to_owned(),
                line,
            });
        }
        if section_line.is_none() {
            return Err(DefinitionError::OutsideSection {
                file: file.to_owned(),
                line,
                key: key.to_owned(),
            });
        }
        let at = Site {
            file,
            line,
            key,
            value,
        };
        match key {
            "Type" => d.type_guid = at.partition_type(native)?,
            "Label" => d.label = Some(at.label()?),
            "UUID" => d.uuid = Some(at.uuid()?),
            "Priority" => d.priority = at.number::<i32>()?,
            "Weight" => d.weight = at.weight()?,
            "PaddingWeight" => d.padding_weight = at.weight()?,
            "SizeMinBytes" => {
                d.size_min = Some(at.size(Round::Up)?);
                size_lines[0] = line;
            }
            "SizeMaxBytes" => {
                d.size_max = Some(at.size(Round::Down)?);
                size_lines[1] = line;
            }
            "PaddingMinBytes" => {
                d.padding_min = Some(at.size(Round::Up)?);
                size_lines[2] = line;
            }
            "PaddingMaxBytes" => {
                d.padding_max = Some(at.size(Round::Down)?);
                size_lines[3] = line;
            }
            "Format" => d.format = at.format()?,
            "MakeDirectories" => {
                d.make_directories.extend(at.directories()?);
                dirs_line.get_or_insert(line);
            }
            k if NOT_IMPLEMENTED.contains(&k) => {
                return Err(DefinitionError::NotImplemented {
                    file: file.to_owned(),
                    line,
                    key: key.to_owned(),
                });
            }
            _ => {
                return Err(DefinitionError::UnknownKey {
                    file: file.to_owned(),
                    line,
                    key: key.to_owned(),
                });
            }
        }
    }
    if d.type_guid.is_nil() {
        return Err(DefinitionError::MissingType {
            file: file.to_owned(),
        });
    }
    let check = |min_key, min: Option<u64>, max_key, max: Option<u64>, line| match (min, max) {
        (Some(min), Some(max)) if min > max => Err(DefinitionError::MinAboveMax {
            file: file.to_owned(),
            line,
            min_key,
            min,
            max_key,
            max,
        }),
        _ => Ok(()),
    };
    check(
        "SizeMinBytes",
        d.size_min,
        "SizeMaxBytes",
        d.size_max,
        size_lines[0].max(size_lines[1]),
    )?;
    check(
        "PaddingMinBytes",
        d.padding_min,
        "PaddingMaxBytes",
        d.padding_max,
        size_lines[2].max(size_lines[3]),
    )?;
    if let (Some(line), None) = (dirs_line, d.format) {
        return Err(DefinitionError::DirectoriesWithoutFormat {
            file: file.to_owned(),
            line,
        });
    }
    Ok(d)
}

#[derive(Debug, Clone, Copy)]
enum Round {
    Up,
    Down,
}

/// Where a value sits, for parsing it and naming it in errors.
#[derive(Debug)]
struct Site<'a> {
    file: &'a str,
    line: usize,
    key: &'a str,
    value: &'a str,
}

impl Site<'_> {
    fn invalid(&self, reason: impl Into<String>) -> DefinitionError {
        DefinitionError::InvalidValue {
            file: self.file.to_owned(),
            line: self.line,
            key: self.key.to_owned(),
            value: self.value.to_owned(),
            reason: reason.into(),
        }
    }

    fn partition_type(&self, native: Arch) -> Result<Guid, DefinitionError> {
        if let Some(g) = partition_type(self.value, native) {
            return Ok(g);
        }
        let g = parse_guid(self.value)
            .ok_or_else(|| self.invalid("not a known partition type name or a GUID"))?;
        if g.is_nil() {
            return Err(self.invalid("the nil GUID marks an unused entry"));
        }
        Ok(g)
    }

    fn label(&self) -> Result<String, DefinitionError> {
        if self.value.contains('%') {
            return Err(self.invalid("specifiers (%) are not implemented"));
        }
        let units = self.value.encode_utf16().count();
        if units > NAME_UNITS {
            return Err(self.invalid(format!(
                "{units} UTF-16 units, a GPT label holds at most {NAME_UNITS}"
            )));
        }
        Ok(self.value.to_owned())
    }

    fn uuid(&self) -> Result<Guid, DefinitionError> {
        if self.value == "null" {
            return Err(self.invalid("an all-zero partition UUID is not supported"));
        }
        let g = parse_guid(self.value).ok_or_else(|| self.invalid("not a GUID"))?;
        if g.is_nil() {
            return Err(self.invalid("an all-zero partition UUID is not supported"));
        }
        Ok(g)
    }

    fn number<T: std::str::FromStr>(&self) -> Result<T, DefinitionError> {
        self.value
            .parse()
            .map_err(|_| self.invalid("not an integer in range"))
    }

    fn weight(&self) -> Result<u32, DefinitionError> {
        let w: u32 = self.number()?;
        if w > MAX_WEIGHT {
            return Err(self.invalid(format!("weights range from 0 to {MAX_WEIGHT}")));
        }
        Ok(w)
    }

    fn size(&self, round: Round) -> Result<u64, DefinitionError> {
        let bytes = parse_size(self.value).ok_or_else(|| {
            self.invalid("not a size (bytes, or a number with a K, M, G, T, P or E suffix)")
        })?;
        Ok(match round {
            Round::Down => bytes / SIZE_GRANULARITY * SIZE_GRANULARITY,
            Round::Up => bytes
                .checked_next_multiple_of(SIZE_GRANULARITY)
                .ok_or_else(|| self.invalid("too large"))?,
        })
    }

    fn format(&self) -> Result<Option<Format>, DefinitionError> {
        match self.value {
            "vfat" => Ok(Some(Format::Vfat)),
            "f2fs" => Ok(Some(Format::F2fs)),
            "off" => Ok(None),
            v if FORMATS_NOT_IMPLEMENTED.contains(&v) => {
                Err(DefinitionError::FormatNotImplemented {
                    file: self.file.to_owned(),
                    line: self.line,
                    value: v.to_owned(),
                })
            }
            _ => Err(self.invalid("not a file system type")),
        }
    }

    fn directories(&self) -> Result<Vec<String>, DefinitionError> {
        let mut out = Vec::new();
        for word in self.value.split_whitespace() {
            if word.contains(['"', '\'', '\\', '%']) {
                return Err(self.invalid("quoting, escapes and specifiers are not implemented"));
            }
            if !word.starts_with('/') {
                return Err(self.invalid(format!("{word} is not an absolute path")));
            }
            let parts: Vec<&str> = word
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            if parts.contains(&"..") {
                return Err(self.invalid(format!("{word} contains ..")));
            }
            if parts.is_empty() {
                return Err(self.invalid("/ is not a directory to make"));
            }
            out.push(format!("/{}", parts.join("/")));
        }
        Ok(out)
    }
}

/// A GUID in canonical form or as 32 hex digits (systemd accepts both).
fn parse_guid(text: &str) -> Option<Guid> {
    if let Ok(g) = text.parse::<Guid>() {
        return Some(g);
    }
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let v = u128::from_str_radix(text, 16).ok()?;
        return Some(Guid::from_u128(v));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::types::SEXTET_SUFFIXES;
    use super::*;
    use crate::gpt::types;

    fn parse(text: &str) -> Result<Definition, DefinitionError> {
        parse_definition("defs/t.conf", text, Arch::Arm64)
    }

    fn ok(text: &str) -> Definition {
        parse(&format!("[Partition]\nType=linux-generic\n{text}")).unwrap()
    }

    /// The error's message, which must name file and line.
    fn err(body: &str) -> String {
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let d = ok("");
        assert_eq!(d.name(), "t.conf");
        assert_eq!(d.type_guid(), types::LINUX_GENERIC);
        assert_eq!(d.label(), None);
        assert_eq!(d.uuid(), None);
        assert_eq!(d.priority(), 0);
        assert_eq!(d.weight(), 1000);
        assert_eq!(d.padding_weight(), 0);
        assert_eq!(
            (d.size_min(), d.size_max(), d.padding_min(), d.padding_max()),
            (None, None, None, None)
        );
        assert_eq!(d.format(), None);
        assert!(d.make_directories().is_empty());
    }

    #[test]
    fn every_key() {
        let d = ok(
            "# comment\n; another\n\n  Label = data  \nUUID=0123456789abcdef0123456789ABCDEF\n\
                    Priority=-7\nWeight=2000\nPaddingWeight=5\nSizeMinBytes=64M\nSizeMaxBytes=1G\n\
                    PaddingMinBytes=1K\nPaddingMaxBytes=10000\nFormat=f2fs\n\
                    MakeDirectories=/config /config//quadlet/\nMakeDirectories=/logs/./x\n",
        );
        assert_eq!(d.label(), Some("data"));
        assert_eq!(
            d.uuid(),
            Some(Guid::from_u128(0x01234567_89AB_CDEF_0123_456789ABCDEF))
        );
        assert_eq!(d.priority(), -7);
        assert_eq!((d.weight(), d.padding_weight()), (2000, 5));
        assert_eq!(d.size_min(), Some(64 << 20));
        assert_eq!(d.size_max(), Some(1 << 30));
        assert_eq!(d.padding_min(), Some(4096), "min rounds up");
        assert_eq!(d.padding_max(), Some(8192), "max rounds down");
        assert_eq!(d.format(), Some(Format::F2fs));
        assert_eq!(
            d.make_directories(),
            ["/config", "/config/quadlet", "/logs/x"]
        );
        assert_eq!(ok("Format=vfat").format(), Some(Format::Vfat));
        assert_eq!(ok("Format=off").format(), None);
        assert_eq!(ok("Label=").label(), Some(""), "the empty label is valid");
        assert_eq!(ok("Label=a\nLabel=b").label(), Some("b"), "last one wins");
    }

    #[test]
    fn sizes_as_systemd_parses_them() {
        assert_eq!(ok("SizeMinBytes=4097").size_min(), Some(8192));
        assert_eq!(ok("SizeMaxBytes=8191").size_max(), Some(4096));
    }

    #[test]
    fn type_names() {
        let t = |n| partition_type(n, Arch::Arm64);
        assert_eq!(t("xbootldr"), Some(types::XBOOTLDR));
        assert_eq!(t("esp"), Some(types::ESP));
        assert_eq!(t("root"), Some(types::ROOT_ARM64));
        assert_eq!(t("root-arm64"), Some(types::ROOT_ARM64));
        assert_eq!(t("root-secondary"), t("root-arm"));
        assert_eq!(
            partition_type("root", Arch::X86_64),
            Some(Guid::from_u128(0x4F68BCE3_E8CD_4DB1_96E7_FBCAF984B709))
        );
        assert_eq!(
            t("usr-x86-64-verity-sig"),
            Some(Guid::from_u128(0xE7BB33FB_06CF_4E81_8273_E543B413E2E2))
        );
        assert_eq!(
            t("root-x86"),
            partition_type("root-secondary", Arch::X86_64)
        );
        assert_eq!(t("root-verity"), t("root-arm64-verity"));
        assert_eq!(partition_type("root-secondary", Arch::Riscv64), None);
        assert_eq!(t("root-sparc"), None);
        assert_eq!(t("rootfs"), None);
        assert_eq!(type_name(types::ROOT_ARM64).as_deref(), Some("root-arm64"));
        assert_eq!(
            type_name(types::LINUX_GENERIC).as_deref(),
            Some("linux-generic")
        );
        assert_eq!(type_name(Guid::from_u128(1)), None);
        // every name maps back to itself
        for arch in Arch::ALL {
            for (class, suffix) in SEXTET_SUFFIXES {
                let name = format!("{class}-{arch}{suffix}");
                let g = partition_type(&name, Arch::Arm64).unwrap();
                assert_eq!(type_name(g), Some(name));
            }
        }
        assert!(type_knows_growfs(types::XBOOTLDR));
        assert!(type_knows_growfs(types::ROOT_ARM64));
        assert!(!type_knows_growfs(types::LINUX_GENERIC));
        assert!(!type_knows_growfs(t("root-verity").unwrap()));
        assert!(type_is_verity(t("usr-verity").unwrap()));
        assert!(!type_is_verity(t("usr-verity-sig").unwrap()));
        assert!(!type_is_verity(types::ROOT_ARM64));
        assert_eq!(
            ok("").type_guid(),
            parse("[Partition]\nType=0fc63daf-8483-4772-8e79-3d69d8477de4")
                .unwrap()
                .type_guid()
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[Partition]\nType=esp\nCopyFiles=/a:/b",
                "defs/t.conf:3: CopyFiles= is a systemd-repart setting that atomix-repart does not implement",
            ),
            (
                "[Partition]\n\nEncrypt=tpm2",
                "defs/t.conf:3: Encrypt= is a systemd-repart setting",
            ),
            (
                "[Partition]\nVerity=data",
                "defs/t.conf:2: Verity= is a systemd-repart",
            ),
            (
                "[Partition]\nFrobnicate=1",
                "defs/t.conf:2: unknown key Frobnicate=",
            ),
            (
                "Type=esp",
                "defs/t.conf:1: Type= outside the [Partition] section",
            ),
            (
                "[Partition]\nType=esp\n[Partition]",
                "defs/t.conf:3: a second [Partition] section",
            ),
            ("[Foo]\nType=esp", "defs/t.conf:1: unknown section [Foo]"),
            (
                "[Partition]\nType esp",
                "defs/t.conf:2: expected a [Partition]",
            ),
            (
                "[Partition\nType=esp",
                "defs/t.conf:1: expected a [Partition]",
            ),
            (
                "[Partition]\nType=esp \\",
                "defs/t.conf:2: line continuation",
            ),
            (
                "[Partition]\nType=rootfs",
                "defs/t.conf:2: invalid Type=\"rootfs\"",
            ),
            (
                "[Partition]\nType=00000000-0000-0000-0000-000000000000",
                "defs/t.conf:2: invalid Type=",
            ),
            (
                "[Partition]\nType=esp\nUUID=nope",
                "defs/t.conf:3: invalid UUID=\"nope\"",
            ),
            (
                "[Partition]\nType=esp\nUUID=null",
                "defs/t.conf:3: invalid UUID=",
            ),
            (
                "[Partition]\nType=esp\nPriority=x",
                "defs/t.conf:3: invalid Priority=",
            ),
            (
                "[Partition]\nType=esp\nPriority=2147483648",
                "defs/t.conf:3: invalid Priority=",
            ),
            (
                "[Partition]\nType=esp\nWeight=1000001",
                "defs/t.conf:3: invalid Weight=\"1000001\": weights range",
            ),
            (
                "[Partition]\nType=esp\nPaddingWeight=-1",
                "defs/t.conf:3: invalid PaddingWeight=",
            ),
            (
                "[Partition]\nType=esp\nSizeMinBytes=1MiB",
                "defs/t.conf:3: invalid SizeMinBytes=",
            ),
            (
                "[Partition]\nType=esp\nSizeMaxBytes=",
                "defs/t.conf:3: invalid SizeMaxBytes=",
            ),
            (
                "[Partition]\nType=esp\nPaddingMinBytes=x",
                "defs/t.conf:3: invalid PaddingMinBytes=",
            ),
            (
                "[Partition]\nType=esp\nPaddingMaxBytes=1Q",
                "defs/t.conf:3: invalid PaddingMaxBytes=",
            ),
            (
                "[Partition]\nType=esp\nLabel=0123456789012345678901234567890123456",
                "defs/t.conf:3: invalid Label=",
            ),
            (
                "[Partition]\nType=esp\nLabel=%m",
                "defs/t.conf:3: invalid Label=\"%m\": specifiers",
            ),
            (
                "[Partition]\nType=esp\nFormat=ext4",
                "defs/t.conf:3: Format=ext4 is not implemented",
            ),
            (
                "[Partition]\nType=esp\nFormat=",
                "defs/t.conf:3: invalid Format=",
            ),
            (
                "[Partition]\nType=esp\nFormat=ntfs3!",
                "defs/t.conf:3: invalid Format=",
            ),
            (
                "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=data",
                "defs/t.conf:4: invalid MakeDirectories=\"data\": data is not an absolute path",
            ),
            (
                "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=/a/../b",
                "defs/t.conf:4: invalid MakeDirectories=",
            ),
            (
                "[Partition]\nType=esp\nFormat=vfat\nMakeDirectories=\"/a b\"",
                "defs/t.conf:4: invalid MakeDirectories=",
            ),
            (
                "[Partition]\nType=esp\nMakeDirectories=/a",
                "defs/t.conf:3: MakeDirectories= needs Format=",
            ),
            ("[Partition]\nLabel=x", "defs/t.conf: Type= is missing"),
            ("", "defs/t.conf: Type= is missing"),
            (
                "[Partition]\nType=esp\nSizeMinBytes=2G\nSizeMaxBytes=1G\n",
                "defs/t.conf:4: SizeMinBytes= (2147483648 bytes) is larger than SizeMaxBytes= \
                 (1073741824 bytes)",
            ),
            (
                "[Partition]\nType=esp\nPaddingMinBytes=8K\nPaddingMaxBytes=4K",
                "defs/t.conf:4: PaddingMinBytes= (8192 bytes) is larger than PaddingMaxBytes=",
            ),
        ];
        for (text, expected) in cases {
            let got = err(text);
            assert!(
                got.starts_with(expected),
                "for {text:?}\n  got      {got}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn min_equal_max_after_rounding_is_fine() {
        let d = ok("SizeMinBytes=128M\nSizeMaxBytes=128M");
        assert_eq!(
            (d.size_min(), d.size_max()),
            (Some(128 << 20), Some(128 << 20))
        );
    }

    #[test]
    fn load_dir_sorts_and_refuses_drop_ins() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: &str, t: &str| fs::write(dir.path().join(n), t).unwrap();
        write("20-b.conf", "[Partition]\nType=home\n");
        write("10-a.conf", "[Partition]\nType=srv\n");
        write("README", "not a definition");
        std::os::unix::fs::symlink("/dev/null", dir.path().join("15-masked.conf")).unwrap();
        let defs = load_dir(dir.path(), Arch::Arm64).unwrap();
        let names: Vec<_> = defs.iter().map(Definition::name).collect();
        assert_eq!(names, ["10-a.conf", "20-b.conf"]);

        write("30-bad.conf", "[Partition]\nType=home\nEncrypt=yes\n");
        let e = load_dir(dir.path(), Arch::Arm64).unwrap_err().to_string();
        assert!(e.ends_with("30-bad.conf:3: Encrypt= is a systemd-repart setting that atomix-repart does not implement"), "{e}");
        fs::remove_file(dir.path().join("30-bad.conf")).unwrap();

        fs::create_dir(dir.path().join("20-b.conf.d")).unwrap();
        assert!(matches!(
            load_dir(dir.path(), Arch::Arm64),
            Err(DefinitionError::DropInDirectory { .. })
        ));
        assert!(matches!(
            load_dir(&dir.path().join("missing"), Arch::Arm64),
            Err(DefinitionError::ReadDir { .. })
        ));
    }
}
