//! The initramfs: a reproducible, compressed cpio newc archive holding `/init`, the kernel
//! modules it loads, and optionally a static busybox for the emergency shell.
//!
//! The layout is the contract `/init` relies on (paths inside the archive):
//!
//! | path | what |
//! |---|---|
//! | `/init` | the init binary, mode 0755 |
//! | `/dev`, `/proc`, `/sys`, `/run`, `/sysroot`, `/etc`, `/etc/atomix` | mount points and config dirs, mode 0755 |
//! | `/dev/console` | character device 5:1, mode 0600 (the kernel opens it before `/init` runs) |
//! | `/lib/modules/<version>/<path in the package>` | each module of the closure, mode 0644 |
//! | `/etc/atomix/modules.load` | always present: `#` comment lines, then one `<name> <absolute path>` line per module, in load order |
//! | `/etc/repart.d/<file>` | with [`InitramfsSpec::repart`]: the board's repart.d definitions, mode 0644 |
//! | `/etc/atomix/modules-repart.load` | with [`InitramfsSpec::repart`]: the closure of the repart modules minus what `modules.load` already loads, same format; `/init` loads it only when repartitioning has work |
//! | `/bin/busybox` | with a shell: mode 0755, plus `/bin/<applet>` symlinks -> `busybox` for [`BUSYBOX_APPLETS`] |
//!
//! Entries are sorted by path (parents before children); every header is deterministic
//! (see [`crate::cpio`]), so the same inputs give byte-identical output. The output is written to
//! a temporary file beside `out` and renamed over it only when complete.
//!
//! Must not: know the boot stages, or read anything but the files the spec names.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use sha2::{Digest, Sha256};

use atomix_repart::definitions::{self, Arch, DefinitionError};

use crate::cpio::{self, CpioError};
use crate::modules::{ModuleError, ModuleIndex};

/// Applets linked to `/bin/busybox` when the spec has a shell.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "cat", "dmesg", "echo", "ls", "mkdir", "mount", "poweroff", "reboot", "sh", "sleep", "umount",
];

/// Path of the module list inside the initramfs.
pub const MODULES_LOAD: &str = "/etc/atomix/modules.load";

/// Path of the list of modules loaded only when repartitioning has work.
pub const MODULES_REPART_LOAD: &str = "/etc/atomix/modules-repart.load";

/// Directory of the repart.d definitions inside the initramfs.
pub const REPART_D: &str = "/etc/repart.d";

/// zstd level. Measured (release build, 2-core host) on the qemu-virt initramfs with a 1 MiB
/// `/init`, busybox and 7 modules, 3.4 MB raw: level 3 gives 1.72 MB in 24 ms, level 9 1.65 MB
/// in 0.1 s, level 19 1.54 MB in 1.1 s (gzip -9: 1.71 MB in 0.37 s). Decompression speed
/// does not depend on the level, so the build pays once and every boot loads less. The frame
/// records its size, so the window is min(archive size, 8 MiB) — nothing like `--long`.
pub const ZSTD_LEVEL: i32 = 19;
/// gzip level.
pub const GZIP_LEVEL: u32 = 9;

/// Compression of the archive; the Debian arm64 kernel has `CONFIG_RD_ZSTD` and `CONFIG_RD_GZIP`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd at [`ZSTD_LEVEL`], one frame with content size and checksum, no long window.
    #[default]
    Zstd,
    /// gzip at [`GZIP_LEVEL`].
    Gzip,
    /// A plain cpio archive.
    None,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::None => "none",
        })
    }
}

/// An unknown compression name.
#[derive(Debug, thiserror::Error)]
#[error("unknown compression `{0}` (expected zstd, gzip or none)")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zstd" => Ok(Self::Zstd),
            "gzip" | "gz" => Ok(Self::Gzip),
            "none" => Ok(Self::None),
            other => Err(UnknownCompression(other.to_owned())),
        }
    }
}

/// What goes into an initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsSpec {
    /// The `/init` binary (a static aarch64 ELF executable).
    pub init: PathBuf,
    /// An unpacked kernel package (holding `lib/modules/<version>`); required when `modules`
    /// is not empty.
    pub modules_root: Option<PathBuf>,
    /// The kernel version under `lib/modules`; `None` = the only one there.
    pub kernel_version: Option<String>,
    /// Modules wanted (the board's list); their dependencies are added.
    pub modules: Vec<String>,
    /// A static busybox for `/bin/sh`.
    pub shell: Option<PathBuf>,
    /// Compression of the output.
    pub compression: Compression,
    /// mtime of every entry (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// First-boot repartitioning (the board's `repart`); `None` = no `/etc/repart.d`, and
    /// `/init` has nothing to repartition with.
    pub repart: Option<RepartSpec>,
}

/// The repartitioning data an initramfs carries for `/init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepartSpec {
    /// repart.d definitions: (file name ending in `.conf`, text), written to
    /// `/etc/repart.d/<file name>`. Each is parsed (for arm64) when the initramfs is built.
    pub definitions: Vec<(String, String)>,
    /// Modules `/init` loads only when repartitioning has work (formatting); their closure,
    /// minus the modules `modules.load` already loads, goes to `modules-repart.load`.
    pub modules: Vec<String>,
}

impl RepartSpec {
    /// The data of a board profile's `[repart]`.
    pub fn from_board(definitions: &[(&str, &str)], modules: &[String]) -> Self {
        RepartSpec {
            definitions: definitions
                .iter()
                .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
                .collect(),
            modules: modules.to_vec(),
        }
    }
}

impl InitramfsSpec {
    /// A spec with just `/init`: no modules, no shell, no repart data, zstd, epoch 0.
    pub fn new(init: impl Into<PathBuf>) -> Self {
        Self {
            init: init.into(),
            modules_root: None,
            kernel_version: None,
            modules: Vec::new(),
            shell: None,
            compression: Compression::default(),
            epoch: 0,
            repart: None,
        }
    }
}

/// What [`build`] produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitramfsReport {
    /// Modules in load order (as in `modules.load`).
    pub modules: Vec<String>,
    /// cpio entries, without the trailer.
    pub entries: usize,
    /// Size of the uncompressed cpio archive.
    pub raw_bytes: u64,
    /// Size of the output file.
    pub compressed_bytes: u64,
    /// Compression used.
    pub compression: Compression,
    /// sha256 of the output file, lowercase hex.
    pub sha256: String,
    /// Kernel version of the modules, when a kernel package was given.
    pub kernel_version: Option<String>,
    /// Modules in `modules-repart.load`, in load order (empty without repart data).
    pub repart_modules: Vec<String>,
    /// The repart.d files under `/etc/repart.d` (empty without repart data).
    pub repart_definitions: Vec<String>,
}

/// A failure to build an initramfs. No output file is left behind.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// The init binary cannot be read.
    #[error("cannot read init {path}")]
    ReadInit {
        /// The path in the spec.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The init path is not a regular file.
    #[error("init {path} is not a regular file")]
    InitNotFile {
        /// The path in the spec.
        path: PathBuf,
    },
    /// The init binary is not an aarch64 ELF executable.
    #[error("init {path} is not an aarch64 ELF executable: {reason}")]
    InitNotExecutable {
        /// The path in the spec.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The init binary needs a dynamic loader, which the initramfs does not have.
    #[error("init {path} is dynamically linked (interpreter {interpreter}); build it static")]
    InitDynamic {
        /// The path in the spec.
        path: PathBuf,
        /// The `PT_INTERP` it asks for.
        interpreter: String,
    },
    /// A repart.d definition has a name that is not a plain `*.conf` file name.
    #[error("repart definition name {name:?} is not a plain file name ending in .conf")]
    RepartDefinitionName {
        /// The name in the spec.
        name: String,
    },
    /// A repart.d definition does not parse.
    #[error("invalid repart definition {name}")]
    RepartDefinition {
        /// The file name.
        name: String,
        /// What the parser said.
        #[source]
        source: Box<DefinitionError>,
    },
    /// Modules were asked for without a kernel package.
    #[error("modules {modules} wanted but no kernel package (modules root) given")]
    NoModulesRoot {
        /// The wanted names, comma separated.
        modules: String,
    },
    /// Indexing the kernel package or resolving the module closure failed.
    #[error("cannot resolve kernel modules from {root}")]
    Modules {
        /// The kernel package.
        root: PathBuf,
        /// The module error.
        #[source]
        source: ModuleError,
    },
    /// A module file cannot be read.
    #[error("cannot read module `{name}` ({path})")]
    ReadModule {
        /// Module name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A path cannot be stored in the archive (not UTF-8).
    #[error("path {path} is not UTF-8")]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// The shell binary cannot be read.
    #[error("cannot read shell {path}")]
    ReadShell {
        /// The path in the spec.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The shell path is not a regular file.
    #[error("shell {path} is not a regular file")]
    ShellNotFile {
        /// The path in the spec.
        path: PathBuf,
    },
    /// Writing the cpio archive failed.
    #[error("cannot write the cpio archive")]
    Cpio(#[source] CpioError),
    /// Compressing the archive failed.
    #[error("cannot compress the archive with {compression}")]
    Compress {
        /// The compression.
        compression: Compression,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The output file cannot be written.
    #[error("cannot write {path}")]
    WriteOutput {
        /// The output path (or its temporary sibling's directory).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// One archive entry before writing.
#[derive(Debug)]
enum Node {
    Dir,
    File { perm: u32, data: Vec<u8> },
    Symlink(String),
    CharDevice { perm: u32, major: u32, minor: u32 },
}

/// The archive tree, keyed by path without the leading `/`; a `BTreeMap` so entries come out
/// sorted, and every path is a proper prefix of (so sorts before) its children.
#[derive(Debug, Default)]
struct Tree(BTreeMap<String, Node>);

impl Tree {
    fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/');
        for (slash, _) in path.match_indices('/') {
            self.0.entry(path[..slash].to_owned()).or_insert(Node::Dir);
        }
        self.0.insert(path.to_owned(), node);
    }

    fn write(&self, epoch: u64) -> Result<(Vec<u8>, usize), CpioError> {
        let mut w = cpio::Writer::new(Vec::new(), epoch)?;
        for (path, node) in &self.0 {
            match node {
                Node::Dir => w.dir(path, 0o755)?,
                Node::File { perm, data } => w.file(path, *perm, data)?,
                Node::Symlink(target) => w.symlink(path, target)?,
                Node::CharDevice { perm, major, minor } => {
                    w.char_device(path, *perm, *major, *minor)?;
                }
            }
        }
        let entries = w.entries();
        let (bytes, _) = w.finish()?;
        Ok((bytes, entries))
    }
}

/// Build the initramfs of `spec` into `out` (replacing it atomically).
pub fn build(spec: &InitramfsSpec, out: &Path) -> Result<InitramfsReport, InitramfsError> {
    let started = Instant::now();
    let mut tree = Tree::default();
    for dir in ["dev", "proc", "sys", "run", "sysroot", "etc/atomix"] {
        tree.insert(dir, Node::Dir);
    }
    tree.insert(
        "dev/console",
        Node::CharDevice {
            perm: 0o600,
            major: 5,
            minor: 1,
        },
    );

    let init = read_init(&spec.init)?;
    tree.insert(
        "init",
        Node::File {
            perm: 0o755,
            data: init,
        },
    );

    let AddedModules {
        modules,
        kernel_version,
        repart_modules,
    } = add_modules(spec, &mut tree)?;
    let repart_definitions = add_definitions(spec, &mut tree)?;

    if let Some(shell) = &spec.shell {
        let data = read_regular(shell).map_err(|e| match e {
            ReadFailure::Io(source) => InitramfsError::ReadShell {
                path: shell.clone(),
                source,
            },
            ReadFailure::NotFile => InitramfsError::ShellNotFile {
                path: shell.clone(),
            },
        })?;
        tree.insert("bin/busybox", Node::File { perm: 0o755, data });
        for applet in BUSYBOX_APPLETS {
            tree.insert(
                &format!("bin/{applet}"),
                Node::Symlink("busybox".to_owned()),
            );
        }
    }

    let (raw, entries) = tree.write(spec.epoch).map_err(InitramfsError::Cpio)?;
    let compressed =
        compress(&raw, spec.compression).map_err(|source| InitramfsError::Compress {
            compression: spec.compression,
            source,
        })?;
    write_atomically(out, &compressed)?;
    let report = InitramfsReport {
        modules,
        entries,
        raw_bytes: raw.len() as u64,
        compressed_bytes: compressed.len() as u64,
        compression: spec.compression,
        sha256: hex(&Sha256::digest(&compressed)),
        kernel_version,
        repart_modules,
        repart_definitions,
    };
    log::info!(
        "initramfs {}: {} entries, {} modules, {} bytes raw, {} bytes {} in {} ms",
        out.display(),
        report.entries,
        report.modules.len(),
        report.raw_bytes,
        report.compressed_bytes,
        report.compression,
        started.elapsed().as_millis()
    );
    Ok(report)
}

/// The repart.d files into `/etc/repart.d`, each parsed first; returns their names.
fn add_definitions(spec: &InitramfsSpec, tree: &mut Tree) -> Result<Vec<String>, InitramfsError> {
    let Some(repart) = &spec.repart else {
        return Ok(Vec::new());
    };
    let mut names = Vec::with_capacity(repart.definitions.len());
    for (name, text) in &repart.definitions {
        let plain = !name.contains('/') && name.len() > ".conf".len() && name.ends_with(".conf");
        if !plain || name.starts_with('.') {
            return Err(InitramfsError::RepartDefinitionName { name: name.clone() });
        }
        definitions::parse_definition(name, text, Arch::Arm64).map_err(|source| {
            InitramfsError::RepartDefinition {
                name: name.clone(),
                source: Box::new(source),
            }
        })?;
        tree.insert(
            &format!("{REPART_D}/{name}"),
            Node::File {
                perm: 0o644,
                data: text.as_bytes().to_vec(),
            },
        );
        names.push(name.clone());
    }
    // The directory exists even when the board defines no partitions.
    tree.insert(REPART_D, Node::Dir);
    Ok(names)
}

/// What [`add_modules`] put in the archive.
struct AddedModules {
    /// `modules.load`, in load order.
    modules: Vec<String>,
    /// The kernel version, when a kernel package was given.
    kernel_version: Option<String>,
    /// `modules-repart.load`, in load order.
    repart_modules: Vec<String>,
}

/// The module closure, `modules.load` and (with repart data) `modules-repart.load`; returns the
/// load order, the kernel version and the repart load order.
fn add_modules(spec: &InitramfsSpec, tree: &mut Tree) -> Result<AddedModules, InitramfsError> {
    let repart_wanted: &[String] = spec.repart.as_ref().map_or(&[], |r| &r.modules);
    let Some(root) = &spec.modules_root else {
        if !spec.modules.is_empty() || !repart_wanted.is_empty() {
            let all: Vec<&str> = spec
                .modules
                .iter()
                .chain(repart_wanted)
                .map(String::as_str)
                .collect();
            return Err(InitramfsError::NoModulesRoot {
                modules: all.join(", "),
            });
        }
        tree.insert(
            MODULES_LOAD,
            Node::File {
                perm: 0o644,
                data: b"# no kernel modules\n".to_vec(),
            },
        );
        if spec.repart.is_some() {
            tree.insert(
                MODULES_REPART_LOAD,
                Node::File {
                    perm: 0o644,
                    data: b"# no kernel modules\n".to_vec(),
                },
            );
        }
        return Ok(AddedModules {
            modules: Vec::new(),
            kernel_version: None,
            repart_modules: Vec::new(),
        });
    };
    let module_err = |source| InitramfsError::Modules {
        root: root.clone(),
        source,
    };
    let index = ModuleIndex::open(root, spec.kernel_version.as_deref()).map_err(module_err)?;
    let version = index.version();
    let closure = index.closure(&spec.modules).map_err(module_err)?;
    let (list, names) = module_list(version, &closure, "", tree)?;
    log::info!("modules to load ({version}): {}", names.join(" "));
    tree.insert(
        MODULES_LOAD,
        Node::File {
            perm: 0o644,
            data: list.into_bytes(),
        },
    );
    let mut repart_names = Vec::new();
    if spec.repart.is_some() {
        let repart_closure: Vec<_> = index
            .closure(repart_wanted)
            .map_err(module_err)?
            .into_iter()
            .filter(|m| !names.contains(&m.name))
            .collect();
        let (list, names) = module_list(
            version,
            &repart_closure,
            " loaded only when repartitioning has work",
            tree,
        )?;
        log::info!(
            "modules to load for repartitioning ({version}): {}",
            names.join(" ")
        );
        tree.insert(
            MODULES_REPART_LOAD,
            Node::File {
                perm: 0o644,
                data: list.into_bytes(),
            },
        );
        repart_names = names;
    }
    Ok(AddedModules {
        modules: names,
        kernel_version: Some(version.to_owned()),
        repart_modules: repart_names,
    })
}

/// Adds each module file of `closure` to the tree; returns the list text and the names.
fn module_list(
    version: &str,
    closure: &[crate::modules::Module],
    note: &str,
    tree: &mut Tree,
) -> Result<(String, Vec<String>), InitramfsError> {
    let mut list = format!(
        "# kernel {version}: {} modules in load order (name, path){note}\n",
        closure.len()
    );
    let mut names = Vec::with_capacity(closure.len());
    for m in closure {
        let rel = m
            .relative_path
            .to_str()
            .ok_or_else(|| InitramfsError::NonUtf8Path {
                path: m.path.clone(),
            })?;
        let inside = format!("/lib/modules/{version}/{rel}");
        let data = fs::read(&m.path).map_err(|source| InitramfsError::ReadModule {
            name: m.name.clone(),
            path: m.path.clone(),
            source,
        })?;
        tree.insert(&inside, Node::File { perm: 0o644, data });
        list.push_str(&format!("{} {inside}\n", m.name));
        names.push(m.name.clone());
    }
    Ok((list, names))
}

enum ReadFailure {
    Io(io::Error),
    NotFile,
}

fn read_regular(path: &Path) -> Result<Vec<u8>, ReadFailure> {
    let meta = fs::metadata(path).map_err(ReadFailure::Io)?;
    if !meta.is_file() {
        return Err(ReadFailure::NotFile);
    }
    fs::read(path).map_err(ReadFailure::Io)
}

/// Read `/init` and check it is a static aarch64 ELF executable.
fn read_init(path: &Path) -> Result<Vec<u8>, InitramfsError> {
    let data = read_regular(path).map_err(|e| match e {
        ReadFailure::Io(source) => InitramfsError::ReadInit {
            path: path.to_path_buf(),
            source,
        },
        ReadFailure::NotFile => InitramfsError::InitNotFile {
            path: path.to_path_buf(),
        },
    })?;
    check_init_elf(&data).map_err(|e| match e {
        InitCheck::Reason(reason) => InitramfsError::InitNotExecutable {
            path: path.to_path_buf(),
            reason,
        },
        InitCheck::Dynamic(interpreter) => InitramfsError::InitDynamic {
            path: path.to_path_buf(),
            interpreter,
        },
    })?;
    Ok(data)
}

enum InitCheck {
    Reason(String),
    Dynamic(String),
}

fn check_init_elf(data: &[u8]) -> Result<(), InitCheck> {
    use object::elf;
    use object::read::elf::{FileHeader, ProgramHeader};

    if data.get(..4) != Some(&elf::ELFMAG[..]) {
        return Err(InitCheck::Reason("no ELF magic".to_owned()));
    }
    let header = elf::FileHeader64::<object::Endianness>::parse(data)
        .map_err(|e| InitCheck::Reason(format!("not a 64-bit ELF ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| InitCheck::Reason(e.to_string()))?;
    let machine = header.e_machine(endian);
    if machine != elf::EM_AARCH64 {
        return Err(InitCheck::Reason(format!(
            "e_machine is {machine}, not EM_AARCH64 (183)"
        )));
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(InitCheck::Reason(format!(
            "e_type is {kind}, not an executable"
        )));
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| InitCheck::Reason(format!("bad program headers ({e})")))?;
    for ph in phdrs {
        if ph.p_type(endian) == elf::PT_INTERP {
            let interp = ph
                .data(endian, data)
                .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            return Err(InitCheck::Dynamic(interp));
        }
    }
    Ok(())
}

fn compress(raw: &[u8], compression: Compression) -> io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
            c.include_checksum(true)?;
            c.include_contentsize(true)?;
            c.compress(raw)
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 2),
                flate2::Compression::new(GZIP_LEVEL),
            );
            enc.write_all(raw)?;
            enc.finish()
        }
    }
}

/// Write `data` to a temporary file in `out`'s directory, then rename it to `out`.
fn write_atomically(out: &Path, data: &[u8]) -> Result<(), InitramfsError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let err = |source| InitramfsError::WriteOutput {
        path: out.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".initramfs-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    tmp.persist(out).map_err(|e| err(e.error))?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_adds_parents_and_sorts() {
        let mut t = Tree::default();
        t.insert("/lib/modules/v/kernel/a.ko", Node::Dir);
        t.insert("/bin/sh", Node::Symlink("busybox".into()));
        t.insert("/lib-x", Node::Dir);
        let keys: Vec<_> = t.0.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bin",
                "bin/sh",
                "lib",
                "lib-x",
                "lib/modules",
                "lib/modules/v",
                "lib/modules/v/kernel",
                "lib/modules/v/kernel/a.ko"
            ]
        );
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        assert!("xz".parse::<Compression>().is_err());
    }

    #[test]
    fn init_check_rejects_non_elf_and_other_arch() {
        assert!(matches!(
            check_init_elf(b"#!/bin/sh\n"),
            Err(InitCheck::Reason(_))
        ));
        let mut h = minimal_elf(183, 2);
        assert!(check_init_elf(&h).is_ok());
        h = minimal_elf(62, 2);
        match check_init_elf(&h) {
            Err(InitCheck::Reason(r)) => assert!(r.contains("62"), "{r}"),
            _ => panic!("x86_64 accepted"),
        }
        h = minimal_elf(183, 1);
        assert!(matches!(check_init_elf(&h), Err(InitCheck::Reason(_))));
    }

    /// A 64-byte ELF64 little-endian header without program headers.
    fn minimal_elf(machine: u16, kind: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // little endian
        h[6] = 1; // EV_CURRENT
        h[16..18].copy_from_slice(&kind.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        h[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        h
    }
}
