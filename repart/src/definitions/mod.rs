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
//! Files: loading and parsing here; their tests (which also cover the type names through
//! `Type=`) in `tests.rs`; the type names and GUIDs in `types.rs`; [`DefinitionError`] in
//! `error.rs`.

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
mod tests;
