//! Config bundles: a tar archive, gzip or zstd compressed, holding `config.toml` and an optional
//! `files/` tree. Decoded in process with every limit enforced while reading; anything but
//! plain files and directories, and any path that could leave the bundle, is an error naming
//! the member. Also tells a plain config.toml from a bundle ([`Input::detect`]).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use tar::EntryType;

use crate::files::{FileSet, RelPath, RelPathError};

/// The gzip magic.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The zstd frame magic.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The mode payload files get in the config root.
pub const PAYLOAD_MODE: u32 = 0o600;

/// Size and count limits (spec 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The upload, compressed or plain (`ATOMIXOS_MAX_CONFIG_UPLOAD_BYTES`, 32 MiB).
    pub max_upload_bytes: u64,
    /// The decompressed tar stream (`ATOMIXOS_MAX_BUNDLE_DECOMPRESSED_BYTES`, 256 MiB).
    pub max_decompressed_bytes: u64,
    /// Members (`ATOMIXOS_MAX_BUNDLE_MEMBERS`, 4096).
    pub max_members: usize,
    /// One member (`ATOMIXOS_MAX_BUNDLE_MEMBER_BYTES`, 64 MiB).
    pub max_member_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 32 << 20,
            max_decompressed_bytes: 256 << 20,
            max_members: 4096,
            max_member_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// The defaults, overridden by the `ATOMIXOS_*` variables `lookup` gives (it is handed the
    /// variable name; the process environment is not read here).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BundleError> {
        let mut limits = Self::default();
        let read = |name: &'static str, slot: &mut u64| -> Result<(), BundleError> {
            if let Some(value) = lookup(name) {
                *slot = value.trim().parse().map_err(|_| BundleError::BadLimit {
                    variable: name,
                    value,
                })?;
            }
            Ok(())
        };
        read(
            "ATOMIXOS_MAX_CONFIG_UPLOAD_BYTES",
            &mut limits.max_upload_bytes,
        )?;
        read(
            "ATOMIXOS_MAX_BUNDLE_DECOMPRESSED_BYTES",
            &mut limits.max_decompressed_bytes,
        )?;
        read(
            "ATOMIXOS_MAX_BUNDLE_MEMBER_BYTES",
            &mut limits.max_member_bytes,
        )?;
        let mut members = limits.max_members as u64;
        read("ATOMIXOS_MAX_BUNDLE_MEMBERS", &mut members)?;
        limits.max_members = usize::try_from(members).unwrap_or(usize::MAX);
        Ok(limits)
    }
}

/// A bundle's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (`.tar.gz`, `.tgz`).
    Gzip,
    /// zstd (`.tar.zst`, `.tar.zstd`, `.tzst`).
    Zstd,
}

impl Compression {
    /// By magic, then by name (case-insensitive).
    pub fn detect(bytes: &[u8], name: Option<&str>) -> Option<Self> {
        let name = name.unwrap_or("").to_ascii_lowercase();
        if bytes.starts_with(&GZIP_MAGIC) || name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::Gzip)
        } else if bytes.starts_with(&ZSTD_MAGIC)
            || [".tar.zst", ".tar.zstd", ".tzst"]
                .iter()
                .any(|s| name.ends_with(s))
        {
            Some(Self::Zstd)
        } else {
            None
        }
    }
}

/// Who hands in the input, which decides what counts as plain TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The HTTP API: a bundle by magic or name, anything else plain TOML.
    Api,
    /// The CLI (`import`, `validate`): a path ending `.toml` is plain TOML, anything else must
    /// be a bundle.
    Cli,
}

/// What an upload or a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A config.toml.
    Toml,
    /// A compressed tar bundle.
    Bundle(Compression),
}

impl Input {
    /// Classifies `bytes` (named `name`) for `caller`, checking the upload limit.
    pub fn detect(
        bytes: &[u8],
        name: Option<&str>,
        caller: Caller,
        limits: &Limits,
    ) -> Result<Self, BundleError> {
        check_upload(bytes, limits)?;
        if caller == Caller::Cli && name.is_some_and(|n| n.ends_with(".toml")) {
            return Ok(Self::Toml);
        }
        match (Compression::detect(bytes, name), caller) {
            (Some(c), _) => Ok(Self::Bundle(c)),
            (None, Caller::Api) => Ok(Self::Toml),
            (None, Caller::Cli) => Err(BundleError::UnsupportedInput),
        }
    }
}

/// Why a bundle (or upload) is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An `ATOMIXOS_*` limit variable is not a number.
    #[error("{variable}={value:?} is not a byte or member count")]
    BadLimit {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The upload is over the limit.
    #[error("the upload is {size} bytes, over the {limit} byte limit")]
    UploadTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Neither `.toml` nor a gzip or zstd bundle (CLI).
    #[error(
        "not a config input: give a .toml file or a .tar.gz, .tgz, .tar.zst, .tar.zstd or .tzst bundle"
    )]
    UnsupportedInput,
    /// The bytes are not a gzip or zstd stream.
    #[error("not a gzip or zstd compressed bundle")]
    NotCompressed,
    /// The stream does not decompress, or the tar inside is broken.
    #[error("the bundle does not decode ({compression:?})")]
    Decode {
        /// The compression.
        compression: Compression,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The decompressed stream is over the limit (a compression bomb).
    #[error("the bundle decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Too many members.
    #[error("the bundle has more than {limit} members")]
    TooManyMembers {
        /// The limit.
        limit: usize,
    },
    /// One member is over the limit.
    #[error("bundle member {member:?} is {size} bytes, over the {limit} byte limit")]
    MemberTooLarge {
        /// The member.
        member: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An absolute path, `..`, an empty or non-UTF-8 name.
    #[error("bundle member {member:?} has an unsafe path: {reason}")]
    UnsafePath {
        /// The member.
        member: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A symlink, hard link, device, FIFO or other non-plain member.
    #[error("bundle member {member:?} is a {kind}; only files and directories are allowed")]
    MemberType {
        /// The member.
        member: String,
        /// Its type.
        kind: String,
    },
    /// Something other than `config.toml` and `files/` at the top.
    #[error("bundle member {member:?} is outside config.toml and files/")]
    TopLevel {
        /// The member.
        member: String,
    },
    /// `config.toml` is a directory, or `files` a plain file, or `.` is not a directory.
    #[error("bundle member {member:?} has the wrong type")]
    WrongType {
        /// The member.
        member: String,
    },
    /// A payload path is not a valid relative path.
    #[error("bundle member {member:?} has a bad path")]
    BadPath {
        /// The member.
        member: String,
        /// Why.
        #[source]
        source: RelPathError,
    },
    /// No `config.toml` at the top.
    #[error("the bundle has no config.toml at the top level")]
    MissingConfig,
    /// `config.toml` is not UTF-8.
    #[error("config.toml in the bundle is not UTF-8")]
    ConfigNotUtf8,
}

/// A read bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The config.toml text.
    pub config_toml: String,
    /// The `files/` payload, paths relative to `files/`, mode [`PAYLOAD_MODE`].
    pub files: FileSet,
}

fn check_upload(bytes: &[u8], limits: &Limits) -> Result<(), BundleError> {
    let size = bytes.len() as u64;
    if size > limits.max_upload_bytes {
        return Err(BundleError::UploadTooLarge {
            size,
            limit: limits.max_upload_bytes,
        });
    }
    Ok(())
}

/// Counts what passes through and fails (setting a flag) once over the limit.
struct Limited<R> {
    inner: R,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(io::Error::other("decompressed size limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Decodes concatenated zstd frames one after the other (`zstd` itself accepts those).
struct ZstdFrames<'a> {
    rest: &'a [u8],
    frame: Option<ruzstd::decoding::StreamingDecoder<&'a [u8], ruzstd::decoding::FrameDecoder>>,
}

impl Read for ZstdFrames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let frame = match &mut self.frame {
                Some(frame) => frame,
                None if self.rest.is_empty() => return Ok(0),
                None => self.frame.insert(
                    ruzstd::decoding::StreamingDecoder::new(self.rest)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
                ),
            };
            let n = frame.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.rest = frame.get_ref();
            self.frame = None;
        }
    }
}

enum Top {
    Config,
    Files(Option<String>),
    Root,
}

/// Splits a member name into its place in the bundle, refusing anything unsafe.
fn classify(member: &str, is_dir: bool) -> Result<Top, BundleError> {
    let unsafe_path = |reason| BundleError::UnsafePath {
        member: member.to_owned(),
        reason,
    };
    if member.is_empty() {
        return Err(unsafe_path("empty name"));
    }
    if member.starts_with('/') {
        return Err(unsafe_path("absolute"));
    }
    let parts: Vec<&str> = member
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsafe_path("`..` component"));
    }
    if member.contains('\0') {
        return Err(unsafe_path("NUL in name"));
    }
    let wrong = || BundleError::WrongType {
        member: member.to_owned(),
    };
    match parts.as_slice() {
        [] if is_dir => Ok(Top::Root),
        [] => Err(wrong()),
        ["config.toml"] if !is_dir => Ok(Top::Config),
        ["config.toml", ..] => Err(wrong()),
        ["files"] if is_dir => Ok(Top::Files(None)),
        ["files"] => Err(wrong()),
        ["files", rest @ ..] => Ok(Top::Files(Some(rest.join("/")))),
        _ => Err(BundleError::TopLevel {
            member: member.to_owned(),
        }),
    }
}

fn kind_name(t: EntryType) -> String {
    match t {
        EntryType::Symlink => "symlink".into(),
        EntryType::Link => "hard link".into(),
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "FIFO".into(),
        other => format!("{other:?} entry"),
    }
}

impl Bundle {
    /// Reads a bundle from its compressed bytes (`name_hint`: the upload's file name).
    pub fn read(
        bytes: &[u8],
        name_hint: Option<&str>,
        limits: &Limits,
    ) -> Result<Self, BundleError> {
        check_upload(bytes, limits)?;
        let compression =
            Compression::detect(bytes, name_hint).ok_or(BundleError::NotCompressed)?;
        let over = Rc::new(Cell::new(false));
        let decoder: Box<dyn Read> = match compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
            Compression::Zstd => Box::new(ZstdFrames {
                rest: bytes,
                frame: None,
            }),
        };
        let limited = Limited {
            inner: decoder,
            left: limits.max_decompressed_bytes,
            over: Rc::clone(&over),
        };
        let decode = |source: io::Error| {
            if over.get() {
                BundleError::DecompressedTooLarge {
                    limit: limits.max_decompressed_bytes,
                }
            } else {
                BundleError::Decode {
                    compression,
                    source,
                }
            }
        };
        let mut archive = tar::Archive::new(limited);
        let mut config = None;
        let mut files = FileSet::new();
        let mut count = 0usize;
        for entry in archive.entries().map_err(decode)? {
            let mut entry = entry.map_err(decode)?;
            let kind = entry.header().entry_type();
            if kind == EntryType::XGlobalHeader {
                continue;
            }
            count += 1;
            if count > limits.max_members {
                return Err(BundleError::TooManyMembers {
                    limit: limits.max_members,
                });
            }
            let raw = entry.path_bytes().into_owned();
            let member = String::from_utf8(raw).map_err(|e| BundleError::UnsafePath {
                member: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "not UTF-8",
            })?;
            let is_dir = kind == EntryType::Directory;
            if !is_dir && kind != EntryType::Regular {
                return Err(BundleError::MemberType {
                    member,
                    kind: kind_name(kind),
                });
            }
            let place = classify(&member, is_dir)?;
            if is_dir {
                continue;
            }
            let size = entry.header().size().map_err(decode)?;
            if size > limits.max_member_bytes {
                return Err(BundleError::MemberTooLarge {
                    member,
                    size,
                    limit: limits.max_member_bytes,
                });
            }
            let mut contents = Vec::new();
            (&mut entry)
                .take(limits.max_member_bytes + 1)
                .read_to_end(&mut contents)
                .map_err(decode)?;
            match place {
                Top::Config => {
                    config =
                        Some(String::from_utf8(contents).map_err(|_| BundleError::ConfigNotUtf8)?);
                }
                Top::Files(Some(rel)) => {
                    let path = RelPath::new(&rel).map_err(|source| BundleError::BadPath {
                        member: member.clone(),
                        source,
                    })?;
                    files.insert(path, PAYLOAD_MODE, contents);
                }
                Top::Files(None) | Top::Root => {}
            }
        }
        let config_toml = config.ok_or(BundleError::MissingConfig)?;
        Ok(Bundle { config_toml, files })
    }
}
