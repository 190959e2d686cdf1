//! The A/B boot counters where the board keeps them on a target (an image file or a block
//! device): what `fw_printenv` / `fw_setenv` and RAUC's mark-good do, for both stores of
//! [`atomix_board::AbStore`].
//!
//! - `UbootEnv` (rock64): the binary environment (CRC32, not redundant) of `size` bytes at
//!   `offset`. A blank area means nothing was saved and U-Boot runs on its built-in default
//!   environment. A saved environment replaces that default completely (research P7), so a
//!   write to a blank area starts from the default found in the U-Boot that is on the target
//!   (the loader files' regions), never from the changed variables alone; when none is found
//!   the write is refused. A damaged area (CRC mismatch) is an error; a write replaces it only
//!   when asked to start from the default ([`Base::BuiltinDefault`]).
//! - `VfatFile` (qemu-virt): the `env export -t` text file in the FAT root of a partition,
//!   through `atomix_repart::vfat`. A missing file means boot.scr's defaults.
//!
//! Writes replace the whole area (or file) and are fsynced; the result is read back.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use atomix_board::env::{self as uenv, AbView, Env, EnvError};
use atomix_board::{AbStore, Board};
use atomix_repart::vfat::{self, VfatError};
use serde::{Serialize, Serializer};

use crate::target::{Target, TargetError};

/// Most bytes of a loader file's region searched for the default environment.
const MAX_LOADER_REGION: u64 = 16 << 20;

/// Where the board keeps the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Location {
    /// The binary U-Boot environment.
    UbootEnv {
        /// Byte offset on the disk.
        offset: u64,
        /// Size of the area in bytes.
        size: u64,
    },
    /// A text file in a FAT root directory.
    VfatFile {
        /// GPT entry number.
        partition: u32,
        /// The partition's label on the target.
        label: String,
        /// File name.
        file: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::UbootEnv { offset, size } => {
                write!(f, "U-Boot environment at {offset:#x} ({size:#x} bytes)")
            }
            Location::VfatFile {
                partition,
                label,
                file,
            } => write!(f, "{file} in partition {partition} ({label})"),
        }
    }
}

/// Where the variables came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A saved environment with a good CRC, or the state file.
    Saved,
    /// Nothing saved: U-Boot runs on its built-in default, taken from the U-Boot on the target
    /// (`found_in`, e.g. `u-boot.itb at sector 16384`), or not found there (`None`: no
    /// variables shown; `why` says what was searched).
    BuiltinDefault {
        /// The loader file it was found in.
        found_in: Option<String>,
        /// Why it was not found.
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// No state file: boot.scr uses its defaults (an empty environment).
    NoStateFile,
}

/// The counters as found on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbState {
    /// The image file or device.
    pub target: PathBuf,
    /// The board profile.
    pub board: String,
    /// Where the counters are kept.
    pub location: Location,
    /// Where the variables came from.
    pub source: Source,
    /// All variables, by name.
    #[serde(rename = "variables", serialize_with = "env_as_map")]
    pub env: Env,
    /// What boot.scr will do with them.
    pub ab: AbView,
    /// The board's tries per slot (a missing counter's value, and what mark-good restores).
    pub tries: u32,
}

impl AbState {
    /// One line saying where the variables come from, for people.
    pub fn summary(&self) -> String {
        let target = self.target.display();
        match (&self.location, &self.source) {
            (Location::UbootEnv { offset, size }, Source::Saved) => format!(
                "saved U-Boot environment at {offset:#x} ({size:#x} bytes) on {target}, CRC ok"
            ),
            (
                Location::UbootEnv { offset, .. },
                Source::BuiltinDefault {
                    found_in: Some(from),
                    ..
                },
            ) => format!(
                "no saved environment at {offset:#x} on {target}; U-Boot uses its built-in \
                 default (shown as found in {from})"
            ),
            (Location::UbootEnv { offset, .. }, Source::BuiltinDefault { why, .. }) => format!(
                "no saved environment at {offset:#x} on {target}; U-Boot uses its built-in \
                 default ({})",
                why.as_deref().unwrap_or("not found on the target")
            ),
            (location, Source::NoStateFile) => format!(
                "no {location} on {target}; boot.scr uses its defaults (BOOT_ORDER={}, {} tries \
                 per slot)",
                uenv::DEFAULT_ORDER,
                self.tries
            ),
            (location, _) => format!("{location} on {target}"),
        }
    }
}

fn env_as_map<S: Serializer>(env: &Env, s: S) -> Result<S::Ok, S::Error> {
    env.iter().collect::<BTreeMap<&str, &str>>().serialize(s)
}

/// What a write starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The saved environment (or, when nothing is saved, the built-in default / an empty state
    /// file); a damaged one is refused.
    Saved,
    /// U-Boot's built-in default from the target's loader (an empty state file for `VfatFile`),
    /// whatever is saved: replaces a damaged environment.
    BuiltinDefault,
}

/// The result of [`update`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Updated {
    /// What the change was applied to.
    pub started_from: Source,
    /// The store as read back after the write.
    pub state: AbState,
}

/// Failures reading or writing the counters.
#[derive(Debug, thiserror::Error)]
pub enum BootEnvError {
    /// The image file or block device cannot be opened or sized.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The board's environment area lies past the end of the disk.
    #[error(
        "{}: the U-Boot environment area {offset:#x}..{:#x} does not fit the {disk_bytes}-byte disk",
        target.display(), offset + size
    )]
    Short {
        /// The image file or block device.
        target: PathBuf,
        /// Byte offset of the environment area on the disk.
        offset: u64,
        /// Size of the area in bytes.
        size: u64,
        /// The disk's size in bytes.
        disk_bytes: u64,
    },
    /// The environment area's CRC does not match its contents.
    #[error(
        "environment CRC mismatch at {offset:#x} on {}: stored {stored:#010x}, computed \
         {computed:#010x}; U-Boot ignores this environment and boots with its built-in default",
        target.display()
    )]
    Crc {
        /// The image file or block device.
        target: PathBuf,
        /// Byte offset of the environment area on the disk.
        offset: u64,
        /// The CRC in the area's header.
        stored: u32,
        /// The CRC of the area's contents.
        computed: u32,
    },
    /// The environment area's contents are not a U-Boot environment.
    #[error("the U-Boot environment at {offset:#x} on {} is malformed", target.display())]
    Decode {
        /// The image file or block device.
        target: PathBuf,
        /// Byte offset of the environment area on the disk.
        offset: u64,
        /// What the environment codec said.
        #[source]
        source: EnvError,
    },
    /// The disk has no partition table, so the state file's partition is not there.
    #[error("{} has no partition table, so no partition {partition} holding {file}", target.display())]
    NoTable {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition holding the file.
        partition: u32,
        /// The state file's name in the FAT root.
        file: String,
    },
    /// The partition that holds the state file does not exist.
    #[error("{} has no partition {partition}, which holds {file}", target.display())]
    NoPartition {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition holding the file.
        partition: u32,
        /// The state file's name in the FAT root.
        file: String,
    },
    /// The state file cannot be read from its vfat.
    #[error("cannot read {file} in partition {partition} of {}", target.display())]
    ReadStateFile {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition holding the file.
        partition: u32,
        /// The state file's name in the FAT root.
        file: String,
        /// What the FAT code said.
        #[source]
        source: VfatError,
    },
    /// The state file is not an `env export -t` text.
    #[error("{file} in partition {partition} of {} is malformed", target.display())]
    DecodeStateFile {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition holding the file.
        partition: u32,
        /// The state file's name in the FAT root.
        file: String,
        /// What the environment codec said.
        #[source]
        source: EnvError,
    },
    /// The environment must start from U-Boot's built-in default and none was found on the disk
    /// (writing only the changed variables would leave U-Boot without `bootcmd`).
    #[error(
        "no U-Boot default environment found on {}: {why}; a saved environment replaces the \
         built-in default completely, so writing only these variables would leave U-Boot \
         without bootcmd (write the loader files first)",
        target.display()
    )]
    NoDefault {
        /// The image file or block device.
        target: PathBuf,
        /// Why there is none.
        why: String,
    },
    /// The change cannot be applied to the environment (a bad name or value).
    #[error("cannot apply the change")]
    Change {
        /// What the environment codec said.
        #[source]
        source: EnvError,
    },
    /// The changed environment does not fit its area.
    #[error("the changed environment does not fit the area at {offset:#x} on {}", target.display())]
    Encode {
        /// The image file or block device.
        target: PathBuf,
        /// Byte offset of the environment area on the disk.
        offset: u64,
        /// What the environment codec said.
        #[source]
        source: EnvError,
    },
    /// The environment area cannot be written.
    #[error("cannot write the U-Boot environment at {offset:#x} on {}", target.display())]
    WriteEnv {
        /// The image file or block device.
        target: PathBuf,
        /// Byte offset of the environment area on the disk.
        offset: u64,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The state file cannot be written into its vfat.
    #[error("cannot write {file} in partition {partition} of {}", target.display())]
    WriteStateFile {
        /// The image file or block device.
        target: PathBuf,
        /// GPT entry number of the partition holding the file.
        partition: u32,
        /// The state file's name in the FAT root.
        file: String,
        /// What the FAT code said.
        #[source]
        source: VfatError,
    },
    /// The write cannot be flushed to the disk.
    #[error("cannot flush the write to {}", target.display())]
    Sync {
        /// The image file or block device.
        target: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Reads the counters of `board` from `target`.
pub fn read(target: &Path, board: &Board) -> Result<AbState, BootEnvError> {
    let t = Target::open(target, false)?;
    read_from(&t, board)
}

/// Reads the store, changes it with `change`, writes it back whole and fsyncs, then reads it
/// again.
pub fn update(
    target: &Path,
    board: &Board,
    base: Base,
    time: u64,
    change: &mut dyn FnMut(&mut Env) -> Result<(), EnvError>,
) -> Result<Updated, BootEnvError> {
    let t = Target::open(target, true)?;
    let (mut env, started_from) = match &board.ab.store {
        AbStore::UbootEnv { offset, size } => {
            let (offset, size) = (*offset, *size);
            let saved = match base {
                Base::Saved => read_env(&t, offset, size)?,
                Base::BuiltinDefault => None,
            };
            match saved {
                Some(env) => (env, Source::Saved),
                None => match find_default(&t, board)? {
                    DefaultEnv::Found { env, from } => (
                        env,
                        Source::BuiltinDefault {
                            found_in: Some(from),
                            why: None,
                        },
                    ),
                    DefaultEnv::Missing { why } => {
                        return Err(BootEnvError::NoDefault {
                            target: t.path.clone(),
                            why,
                        });
                    }
                },
            }
        }
        AbStore::VfatFile { partition, file } => {
            let saved = match base {
                Base::Saved => read_state_file(&t, *partition, file)?,
                Base::BuiltinDefault => None,
            };
            match saved {
                Some(env) => (env, Source::Saved),
                None => (Env::new(), Source::NoStateFile),
            }
        }
    };
    change(&mut env).map_err(|source| BootEnvError::Change { source })?;
    let sync = |source| BootEnvError::Sync {
        target: t.path.clone(),
        source,
    };
    match &board.ab.store {
        AbStore::UbootEnv { offset, size } => {
            // The profile bounds the size below the first partition; 0 on a 32-bit host that
            // cannot hold it fails as "too large" below.
            let area = env
                .encode_binary(usize::try_from(*size).unwrap_or(0))
                .map_err(|source| BootEnvError::Encode {
                    target: t.path.clone(),
                    offset: *offset,
                    source,
                })?;
            t.file
                .write_all_at(&area, *offset)
                .map_err(|source| BootEnvError::WriteEnv {
                    target: t.path.clone(),
                    offset: *offset,
                    source,
                })?;
        }
        AbStore::VfatFile { partition, file } => {
            let (start, size) = state_partition(&t, *partition, file)?;
            vfat::write_file(&t.file, start, size, file, &env.encode_text(), time).map_err(
                |source| BootEnvError::WriteStateFile {
                    target: t.path.clone(),
                    partition: *partition,
                    file: file.clone(),
                    source,
                },
            )?;
        }
    }
    t.file.sync_all().map_err(sync)?;
    log::info!(
        "{}: wrote the A/B store ({})",
        t.path.display(),
        match &board.ab.store {
            AbStore::UbootEnv { offset, .. } => format!("U-Boot environment at {offset:#x}"),
            AbStore::VfatFile { partition, file } => format!("{file} in partition {partition}"),
        }
    );
    let state = read_from(&t, board)?;
    Ok(Updated {
        started_from,
        state,
    })
}

fn read_from(t: &Target, board: &Board) -> Result<AbState, BootEnvError> {
    let (location, source, env) = match &board.ab.store {
        AbStore::UbootEnv { offset, size } => {
            let location = Location::UbootEnv {
                offset: *offset,
                size: *size,
            };
            match read_env(t, *offset, *size)? {
                Some(env) => (location, Source::Saved, env),
                None => match find_default(t, board)? {
                    DefaultEnv::Found { env, from } => (
                        location,
                        Source::BuiltinDefault {
                            found_in: Some(from),
                            why: None,
                        },
                        env,
                    ),
                    DefaultEnv::Missing { why } => (
                        location,
                        Source::BuiltinDefault {
                            found_in: None,
                            why: Some(why),
                        },
                        Env::new(),
                    ),
                },
            }
        }
        AbStore::VfatFile { partition, file } => {
            let saved = read_state_file(t, *partition, file)?;
            let label = t
                .partition(*partition)
                .map_or_else(String::new, |p| p.name.clone());
            let location = Location::VfatFile {
                partition: *partition,
                label,
                file: file.clone(),
            };
            match saved {
                Some(env) => (location, Source::Saved, env),
                None => (location, Source::NoStateFile, Env::new()),
            }
        }
    };
    let ab = uenv::ab_view(&env, board.ab.tries);
    Ok(AbState {
        target: t.path.clone(),
        board: board.name.clone(),
        location,
        source,
        env,
        ab,
        tries: board.ab.tries,
    })
}

/// The saved binary environment; `None` when the area is blank.
fn read_env(t: &Target, offset: u64, size: u64) -> Result<Option<Env>, BootEnvError> {
    if offset.saturating_add(size) > t.disk.disk_bytes {
        return Err(BootEnvError::Short {
            target: t.path.clone(),
            offset,
            size,
            disk_bytes: t.disk.disk_bytes,
        });
    }
    let area = t.read(offset, usize::try_from(size).unwrap_or(0))?;
    match Env::decode_binary(&area) {
        Ok(env) => Ok(Some(env)),
        Err(EnvError::Blank { .. }) => Ok(None),
        Err(EnvError::Crc { stored, computed }) => Err(BootEnvError::Crc {
            target: t.path.clone(),
            offset,
            stored,
            computed,
        }),
        Err(source) => Err(BootEnvError::Decode {
            target: t.path.clone(),
            offset,
            source,
        }),
    }
}

/// The byte range of the state file's partition.
fn state_partition(t: &Target, partition: u32, file: &str) -> Result<(u64, u64), BootEnvError> {
    if t.table().is_none() {
        return Err(BootEnvError::NoTable {
            target: t.path.clone(),
            partition,
            file: file.to_owned(),
        });
    }
    let p = t
        .partition(partition)
        .ok_or_else(|| BootEnvError::NoPartition {
            target: t.path.clone(),
            partition,
            file: file.to_owned(),
        })?;
    Ok(t.range(p))
}

/// The state file's variables (`None`: no such file).
fn read_state_file(t: &Target, partition: u32, file: &str) -> Result<Option<Env>, BootEnvError> {
    let (start, size) = state_partition(t, partition, file)?;
    let text = vfat::read_file(&t.file, start, size, file).map_err(|source| {
        BootEnvError::ReadStateFile {
            target: t.path.clone(),
            partition,
            file: file.to_owned(),
            source,
        }
    })?;
    text.map(|text| Env::decode_text(&text))
        .transpose()
        .map_err(|source| BootEnvError::DecodeStateFile {
            target: t.path.clone(),
            partition,
            file: file.to_owned(),
            source,
        })
}

enum DefaultEnv {
    Found { env: Env, from: String },
    Missing { why: String },
}

/// U-Boot's built-in default environment, from the U-Boot on the target: each loader file's
/// region (from its sector up to the next loader file, the environment area, the first
/// partition or the end of the disk) is searched, and the richest environment found wins.
fn find_default(t: &Target, board: &Board) -> Result<DefaultEnv, BootEnvError> {
    let Some(loader) = &board.loader else {
        return Ok(DefaultEnv::Missing {
            why: format!("board {} keeps no loader files on the disk", board.name),
        });
    };
    let mut bounds: Vec<u64> = loader.files.iter().map(|f| f.offset()).collect();
    if let AbStore::UbootEnv { offset, .. } = board.ab.store {
        bounds.push(offset);
    }
    bounds.push(
        t.first_partition_start()
            .unwrap_or(board.repart.first_usable_bytes),
    );
    bounds.push(t.disk.disk_bytes);
    let mut best: Option<(Env, String)> = None;
    let mut searched = Vec::new();
    for f in &loader.files {
        let start = f.offset();
        let end = bounds
            .iter()
            .copied()
            .filter(|&b| b > start)
            .min()
            .unwrap_or(start)
            .min(start + MAX_LOADER_REGION);
        let name = format!("{} at sector {}", f.file, f.sector);
        let len = usize::try_from(end - start).unwrap_or(0);
        let region = t.read(start, len)?;
        let empty = region.iter().all(|&b| b == 0);
        searched.push(if empty {
            format!("{name} (zeros: not written)")
        } else {
            name.clone()
        });
        if let Some(env) = uenv::default_from_binary(&region)
            && best.as_ref().is_none_or(|(b, _)| env.len() > b.len())
        {
            best = Some((env, name));
        }
    }
    Ok(match best {
        Some((env, from)) => DefaultEnv::Found { env, from },
        None => DefaultEnv::Missing {
            why: format!(
                "no default environment (a block with bootcmd=) in {}",
                searched.join(", ")
            ),
        },
    })
}
