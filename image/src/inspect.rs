//! What is on an image file or a block device: the GPT layout with free space, the raw loader
//! files, each boot partition's files and build ID, the A/B counters and the slot that boots
//! next, whether first boot has happened (boot-b exists) and whether `/data` holds a file
//! system. Reads only.
//!
//! Only a target that cannot be opened (or whose GPT cannot be read at all) is an error; every
//! other finding, a damaged boot.scr or environment included, is part of the [`Report`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use atomix_board::bootscript;
use atomix_board::uimage;
use atomix_board::{Board, Slot};
use atomix_errchain::one_line;
use atomix_repart::apply::probe_signature;
use atomix_repart::definitions::type_name;
use atomix_repart::gpt::{Geometry, Partition};
use atomix_repart::vfat::{self, RootEntry};
use serde::Serialize;

use crate::bootenv::{self, AbState};
use crate::target::{Target, TargetError};

/// Bytes read from a partition's start to recognise its file system.
const PROBE_BYTES: u64 = 128 * 1024;
/// Bytes of a loader file's start that tell present from missing (zeros) without the file.
const LOADER_PROBE: usize = 4096;
/// Largest boot.scr read.
const MAX_SCRIPT: usize = 1 << 20;

/// Failures that stop an inspection.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The image file or block device cannot be opened or sized.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A loader file to compare against cannot be read.
    #[error("cannot read the loader file {}", path.display())]
    LoaderFile {
        /// The loader file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Everything found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The image file or device.
    pub target: PathBuf,
    /// The board profile used.
    pub board: String,
    /// Size in bytes.
    pub disk_bytes: u64,
    /// Logical sector size.
    pub sector_size: u64,
    /// A block device rather than an image file.
    pub block_device: bool,
    /// The partition table; `None`: no GPT.
    pub table: Option<TableReport>,
    /// The raw loader files (empty when the board has none on the disk).
    pub loader: Vec<LoaderCheck>,
    /// Slot A's and B's boot partitions, where present.
    pub boot: Vec<BootPartition>,
    /// The A/B counters.
    pub ab: AbReport,
    /// First boot has happened: a partition labelled boot-b exists.
    pub first_boot_done: bool,
    /// The `/data` partition.
    pub data: DataReport,
}

/// The GPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// Disk GUID.
    pub disk_guid: String,
    /// First usable byte (the end of the raw region).
    pub first_usable: u64,
    /// End (exclusive) of the usable range.
    pub usable_end: u64,
    /// The primary copy was damaged and the table was read from the backup.
    pub read_from_backup: bool,
    /// The partitions, by number.
    pub partitions: Vec<PartitionReport>,
    /// Unallocated ranges inside the usable range.
    pub free: Vec<Region>,
    /// Bytes past the table's usable range that a table spanning the disk would add (the
    /// backup GPT is not at the disk's end: the image was copied to a larger disk; first boot
    /// moves it).
    pub beyond_table: u64,
}

/// A byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// Entry number.
    pub number: u32,
    /// PARTLABEL.
    pub label: String,
    /// Type GUID.
    pub type_guid: String,
    /// systemd's name of the type, if known.
    pub type_name: Option<String>,
    /// PARTUUID.
    pub uuid: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// The attribute bits by name (sfdisk's names; `GUID:<bit>` for the type-specific ones).
    pub attribute_names: Vec<String>,
    /// The file system (or other content) recognised at its start.
    pub filesystem: Option<String>,
    /// For a squashfs: its size in bytes (`bytes_used`).
    pub filesystem_bytes: Option<u64>,
}

/// One raw loader file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoaderCheck {
    /// File name.
    pub file: String,
    /// 512-byte sector.
    pub sector: u64,
    /// What is there.
    pub state: LoaderState,
    /// The file compared against, if any.
    pub compared_with: Option<PathBuf>,
}

/// What is at a loader file's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoaderState {
    /// The bytes equal the file.
    Matches,
    /// The bytes differ from the file (another U-Boot, or damaged).
    Differs,
    /// Not compared (no loader directory); the first bytes are not zero.
    Present,
    /// The first bytes are zero: not written.
    Missing,
}

impl LoaderState {
    /// Short text for people.
    pub fn describe(self) -> &'static str {
        match self {
            LoaderState::Matches => "in place (matches the file)",
            LoaderState::Differs => "DIFFERS from the file",
            LoaderState::Present => "present (not compared)",
            LoaderState::Missing => "missing (zeros)",
        }
    }
}

/// A slot's boot partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootPartition {
    /// The slot.
    pub slot: Slot,
    /// Entry number.
    pub number: u32,
    /// PARTLABEL.
    pub label: String,
    /// The files in the FAT root (empty when there is no FAT).
    pub files: Vec<RootEntry>,
    /// The build ID boot.scr echoes.
    pub build_id: Option<String>,
    /// Anything worth saying: no FAT file system, empty, no boot.scr (so no build ID), a
    /// damaged boot.scr.
    pub note: Option<String>,
}

/// The A/B counters, or why they cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbReport {
    /// The counters.
    pub state: Option<AbState>,
    /// The error chain when they cannot be read (a CRC mismatch, a missing partition).
    pub error: Option<String>,
}

/// The `/data` partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataReport {
    /// Its entry number, if the partition exists.
    pub number: Option<u32>,
    /// The file system on it.
    pub filesystem: Option<String>,
    /// One line for people.
    pub summary: String,
}

/// The label of the data partition (DESIGN section 3).
const DATA_LABEL: &str = "data";

/// Inspects `target` as `board`'s disk. `loader_dir` holds the board's loader files to compare
/// with; without it the loader places are only checked for zeros.
pub fn inspect(
    target: &Path,
    board: &Board,
    loader_dir: Option<&Path>,
) -> Result<Report, InspectError> {
    let t = Target::open(target, false)?;
    let table = t.table().map(|table| {
        let geometry = Geometry::new(t.disk.disk_bytes, t.disk.sector_size).ok();
        let sector = t.disk.sector_size;
        let mut parts: Vec<&Partition> = table.partitions.iter().collect();
        parts.sort_by_key(|p| p.number);
        let partitions = parts
            .iter()
            .map(|p| partition_report(&t, p))
            .collect::<Result<Vec<_>, _>>();
        partitions.map(|partitions| TableReport {
            disk_guid: table.disk_guid.to_string(),
            first_usable: table.first_usable_lba * sector,
            usable_end: (table.last_usable_lba + 1) * sector,
            read_from_backup: t.disk.repaired_from_backup,
            partitions,
            free: free_regions(&t),
            beyond_table: geometry.map_or(0, |g| {
                g.max_last_usable_lba()
                    .saturating_sub(table.last_usable_lba)
                    * sector
            }),
        })
    });
    let table = table.transpose()?;
    let loader = loader_checks(&t, board, loader_dir)?;
    let mut boot = Vec::new();
    for slot in Slot::ALL {
        if let Some(p) = t.partition(slot.boot_partition()) {
            boot.push(boot_partition(&t, slot, p));
        }
    }
    let ab = match bootenv::read(target, board) {
        Ok(state) => AbReport {
            state: Some(state),
            error: None,
        },
        Err(e) => AbReport {
            state: None,
            error: Some(one_line(&e)),
        },
    };
    let first_boot_done = t
        .table()
        .is_some_and(|table| table.by_name(Slot::B.boot_label()).is_some());
    let data = data_report(&t, first_boot_done)?;
    Ok(Report {
        target: t.path.clone(),
        board: board.name.clone(),
        disk_bytes: t.disk.disk_bytes,
        sector_size: t.disk.sector_size,
        block_device: t.disk.is_block_device,
        table,
        loader,
        boot,
        ab,
        first_boot_done,
        data,
    })
}

/// The boards whose disks `target` looks like: those whose loader files are present (not
/// zeros) at their sectors; when no board's are, the boards that keep no loader on the disk.
pub fn matching_boards(target: &Path) -> Result<Vec<String>, InspectError> {
    let t = Target::open(target, false)?;
    let mut with_loader = Vec::new();
    let mut without = Vec::new();
    for name in Board::names() {
        // The built-in profiles are checked by the board crate's tests.
        let Ok(board) = Board::builtin(name) else {
            continue;
        };
        match &board.loader {
            Some(loader) => {
                let mut present = true;
                for f in &loader.files {
                    let head = t.read(f.offset(), LOADER_PROBE)?;
                    present &= head.iter().any(|&b| b != 0);
                }
                if present {
                    with_loader.push(board.name);
                }
            }
            None => without.push(board.name),
        }
    }
    Ok(if with_loader.is_empty() {
        without
    } else {
        with_loader
    })
}

fn partition_report(t: &Target, p: &Partition) -> Result<PartitionReport, InspectError> {
    let (start, size) = t.range(p);
    let head = t.read(start, usize::try_from(PROBE_BYTES.min(size)).unwrap_or(0))?;
    let filesystem = probe_signature(&head).map(str::to_owned);
    let filesystem_bytes = match filesystem.as_deref() {
        // squashfs superblock: bytes_used at offset 40, little endian.
        Some("squashfs") => head
            .get(40..48)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes),
        _ => None,
    };
    Ok(PartitionReport {
        number: p.number,
        label: p.name.clone(),
        type_guid: p.type_guid.to_string(),
        type_name: type_name(p.type_guid),
        uuid: p.uuid.to_string(),
        start,
        size,
        attributes: p.attributes,
        attribute_names: attribute_names(p.attributes),
        filesystem,
        filesystem_bytes,
    })
}

/// sfdisk's attribute names.
fn attribute_names(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| bits & (1u64 << bit) != 0)
        .map(|bit| match bit {
            0 => "RequiredPartition".to_owned(),
            1 => "NoBlockIOProtocol".to_owned(),
            2 => "LegacyBIOSBootable".to_owned(),
            _ => format!("GUID:{bit}"),
        })
        .collect()
}

/// Gaps between partitions inside the usable range.
fn free_regions(t: &Target) -> Vec<Region> {
    let Some(table) = t.table() else {
        return Vec::new();
    };
    let sector = t.disk.sector_size;
    let mut spans: Vec<(u64, u64)> = table
        .partitions
        .iter()
        .map(|p| (p.first_lba, p.last_lba + 1))
        .collect();
    spans.sort_unstable();
    let mut free = Vec::new();
    let mut at = table.first_usable_lba;
    let end = table.last_usable_lba + 1;
    for (first, past) in spans {
        if first > at {
            free.push(Region {
                start: at * sector,
                size: (first.min(end) - at) * sector,
            });
        }
        at = at.max(past);
    }
    if end > at {
        free.push(Region {
            start: at * sector,
            size: (end - at) * sector,
        });
    }
    free
}

fn loader_checks(
    t: &Target,
    board: &Board,
    loader_dir: Option<&Path>,
) -> Result<Vec<LoaderCheck>, InspectError> {
    let Some(loader) = &board.loader else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for f in &loader.files {
        let (state, compared_with) = match loader_dir {
            Some(dir) => {
                let path = dir.join(&f.file);
                let want = fs::read(&path).map_err(|source| InspectError::LoaderFile {
                    path: path.clone(),
                    source,
                })?;
                let have = t.read(f.offset(), want.len())?;
                let state = if have == want {
                    LoaderState::Matches
                } else if have.iter().all(|&b| b == 0) {
                    LoaderState::Missing
                } else {
                    LoaderState::Differs
                };
                (state, Some(path))
            }
            None => {
                let head = t.read(f.offset(), LOADER_PROBE)?;
                let state = if head.iter().any(|&b| b != 0) {
                    LoaderState::Present
                } else {
                    LoaderState::Missing
                };
                (state, None)
            }
        };
        out.push(LoaderCheck {
            file: f.file.clone(),
            sector: f.sector,
            state,
            compared_with,
        });
    }
    Ok(out)
}

fn boot_partition(t: &Target, slot: Slot, p: &Partition) -> BootPartition {
    let (start, size) = t.range(p);
    let mut report = BootPartition {
        slot,
        number: p.number,
        label: p.name.clone(),
        files: Vec::new(),
        build_id: None,
        note: None,
    };
    let note = match vfat::list_root(&t.file, start, size) {
        Err(e) => Some(format!("no readable FAT file system: {}", one_line(&e))),
        Ok(files) => {
            report.files = files;
            let script = report
                .files
                .iter()
                .find(|f| !f.is_dir && f.name.eq_ignore_ascii_case("boot.scr"));
            match script {
                None if report.files.is_empty() => Some("empty".to_owned()),
                None => Some("no boot.scr".to_owned()),
                Some(f) if f.size > MAX_SCRIPT as u64 => {
                    Some(format!("boot.scr is {} bytes: not a boot script", f.size))
                }
                Some(_) => match vfat::read_file(&t.file, start, size, "boot.scr") {
                    Err(e) => Some(one_line(&e)),
                    Ok(None) => Some("no boot.scr".to_owned()),
                    Ok(Some(bytes)) => match uimage::decode_script(&bytes) {
                        Err(e) => Some(format!("boot.scr is damaged: {e}")),
                        Ok(script) => {
                            let text = String::from_utf8_lossy(&script.text);
                            report.build_id = bootscript::build_id_of(&text).map(str::to_owned);
                            report
                                .build_id
                                .is_none()
                                .then(|| "boot.scr echoes no build ID".to_owned())
                        }
                    },
                },
            }
        }
    };
    report.note = note;
    report
}

fn data_report(t: &Target, first_boot_done: bool) -> Result<DataReport, InspectError> {
    let Some(p) = t.table().and_then(|table| table.by_name(DATA_LABEL)) else {
        return Ok(DataReport {
            number: None,
            filesystem: None,
            summary: if first_boot_done {
                "no data partition".to_owned()
            } else {
                "no data partition yet (first boot makes it)".to_owned()
            },
        });
    };
    let (start, size) = t.range(p);
    let head = t.read(start, usize::try_from(PROBE_BYTES.min(size)).unwrap_or(0))?;
    let filesystem = probe_signature(&head).map(str::to_owned);
    let summary = match &filesystem {
        Some(fs) => format!("partition {} ({DATA_LABEL}) holds {fs}", p.number),
        None => format!(
            "partition {} ({DATA_LABEL}): no filesystem (will be formatted on next boot)",
            p.number
        ),
    };
    Ok(DataReport {
        number: Some(p.number),
        filesystem,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_follow_sfdisk() {
        assert!(attribute_names(0).is_empty());
        assert_eq!(attribute_names(1 << 2), ["LegacyBIOSBootable"]);
        assert_eq!(
            attribute_names(1 | (1 << 59) | (1 << 63)),
            ["RequiredPartition", "GUID:59", "GUID:63"]
        );
    }

    #[test]
    fn errors_chain_on_one_line() {
        let inner = io::Error::other("inner");
        let e = InspectError::LoaderFile {
            path: "/x/u-boot.itb".into(),
            source: inner,
        };
        assert_eq!(
            one_line(&e),
            "cannot read the loader file /x/u-boot.itb: inner"
        );
    }
}
