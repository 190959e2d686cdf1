//! The flashable image of a board: what `atomix image build` makes.
//!
//! [`build`] turns a board profile, a kernel, an initramfs and a rootfs into a [`DiskSpec`] and
//! builds it: the board's raw loader files at their sectors (the U-Boot environment range kept
//! clear), boot-a holding `Image`, `initrd`, the board's DTB (under its file name), the
//! generated `boot.scr` and, for boards that keep the A/B counters in a vfat file, that file
//! with the initial counters; rootfs-a holding the squashfs. The image is named
//! [`image_file_name`] when the output is a directory and gets a JSON [`Manifest`] beside it
//! ([`manifest_path`]); both appear only when everything succeeded.
//!
//! Identity: the build ID defaults to [`derive_build_id`] of the inputs and the version to
//! [`DEFAULT_VERSION`]; the GUID seed defaults to the build ID. With the same inputs and epoch
//! the image, its name and its manifest are byte-identical.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use atomix_board::bootscript::{self, BuildInfo, BuildInfoError};
use atomix_board::uimage::{self, UimageError};
use atomix_board::{AbStore, Board};
use serde::{Deserialize, Serialize};

use crate::disk::{
    self, BootSource, DiskError, DiskLayout, DiskSpec, LayoutError, PartitionReport, RawFile,
    Reserved, RootfsSource, SquashfsInfo,
};

/// The version of an image built without one: an unversioned developer build. (The toolkit's
/// own version says nothing about the OS inside the image.)
pub const DEFAULT_VERSION: &str = "dev";

/// Name of the generated boot script in the boot vfat.
pub const BOOT_SCRIPT: &str = "boot.scr";
/// Name of the kernel in the boot vfat (what boot.scr loads).
pub const KERNEL: &str = "Image";
/// Name of the initramfs in the boot vfat (what boot.scr loads).
pub const INITRD: &str = "initrd";

/// What a flashable image is built from, besides the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The root filesystem: a directory (packed with [`disk::pack_rootfs`]) or a squashfs.
    pub rootfs: RootfsSource,
    /// The kernel `Image`.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The device tree, for boards that load one ([`atomix_board::Boot::dtb`]).
    pub dtb: Option<PathBuf>,
    /// The directory holding the board's loader files ([`atomix_board::Loader::files`]).
    pub loader_dir: Option<PathBuf>,
    /// Build ID; `None` = [`derive_build_id`].
    pub build_id: Option<String>,
    /// Version string.
    pub version: String,
    /// SOURCE_DATE_EPOCH.
    pub epoch: u64,
    /// GUID seed; `None` = the build ID.
    pub seed: Option<String>,
    /// Image size (sparse); `None` = just past rootfs-a.
    pub size: Option<u64>,
}

/// One file of the image: where it went, its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Name (in the FAT root, or the loader file's name).
    pub name: String,
    /// Byte offset on the disk, for raw loader files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The rootfs squashfs of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsPart {
    /// The partition it fills.
    pub partition: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// From its superblock.
    #[serde(flatten)]
    pub squashfs: SquashfsInfo,
}

/// The JSON file beside an image (`<image>.json`): what it holds and the hashes to check it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The image's file name.
    pub image: String,
    /// Board profile name.
    pub board: String,
    /// Version.
    pub version: String,
    /// Build ID (echoed by boot.scr).
    pub build_id: String,
    /// SOURCE_DATE_EPOCH the image was built with.
    pub epoch: u64,
    /// GUID seed.
    pub seed: String,
    /// Image size in bytes (apparent; the file is sparse).
    pub size: u64,
    /// SHA-256 of the whole image, lowercase hex.
    pub sha256: String,
    /// Disk GUID.
    pub disk_guid: String,
    /// The GPT partitions.
    pub partitions: Vec<PartitionReport>,
    /// The raw loader files below the first partition (with their offsets).
    pub loader: Vec<Part>,
    /// The partition holding the boot files.
    pub boot_partition: String,
    /// The files in its FAT root directory, in directory order.
    pub boot_files: Vec<Part>,
    /// The rootfs squashfs.
    pub rootfs: RootfsPart,
}

/// What [`build`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image.
    pub image: PathBuf,
    /// Its manifest.
    pub manifest_path: PathBuf,
    /// The manifest's contents.
    pub manifest: Manifest,
    /// Bytes the sparse image occupies on its file system.
    pub allocated: u64,
}

/// Failures building a flashable image.
#[derive(Debug, thiserror::Error)]
pub enum FlashableError {
    /// The build ID or version has characters boot.scr cannot carry.
    #[error("the build ID or version cannot go into boot.scr")]
    BuildInfo {
        /// Which field and value.
        #[source]
        source: BuildInfoError,
    },
    /// The epoch is past the 32-bit timestamps of boot.scr and squashfs (2106).
    #[error("epoch {epoch} does not fit the 32-bit timestamps of boot.scr and squashfs")]
    Epoch {
        /// The epoch given.
        epoch: u64,
    },
    /// The board loads a device tree and none was given.
    #[error(
        "board {board} boots with the device tree {dtb} (from the kernel package) and none was given"
    )]
    MissingDtb {
        /// The board's name.
        board: String,
        /// The device tree the board names.
        dtb: String,
    },
    /// A device tree was given for a board that uses the firmware's own.
    #[error("board {board} uses the firmware's own device tree; {path} would not be used")]
    UnusedDtb {
        /// The board's name.
        board: String,
        /// The device tree given.
        path: PathBuf,
    },
    /// The board needs raw loader files and no loader directory was given.
    #[error(
        "board {board} needs its loader files (package {package}) and no loader directory was given"
    )]
    MissingLoader {
        /// The board's name.
        board: String,
        /// The Debian package holding the loader files.
        package: String,
    },
    /// A loader directory was given for a board without loader files on the disk.
    #[error("board {board} has no loader files on the disk; {dir} would not be used")]
    UnusedLoader {
        /// The board's name.
        board: String,
        /// The loader directory given.
        dir: PathBuf,
    },
    /// The image's layout cannot be made from the board's repart.d definitions.
    #[error("cannot lay out the image of board {board} from its repart.d definitions")]
    Layout {
        /// The board's name.
        board: String,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// The board keeps its A/B state file on a partition that is not the image's boot vfat.
    #[error(
        "board {board} keeps the A/B counters in {file} on partition {partition}, but the image's boot vfat is partition {boot}"
    )]
    StatePartition {
        /// The board's name.
        board: String,
        /// The state file's name in the FAT root.
        file: String,
        /// GPT entry number of the partition the board names.
        partition: u32,
        /// GPT entry number of the image's boot vfat.
        boot: u32,
    },
    /// An input file cannot be read (or hashed).
    #[error("cannot read the {what} {path}")]
    Input {
        /// What the input is (kernel, initramfs, ...).
        what: String,
        /// The file given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// boot.scr cannot be wrapped as a U-Boot legacy script image.
    #[error("cannot wrap boot.scr as a U-Boot script image")]
    Script {
        /// What the encoder said.
        #[source]
        source: UimageError,
    },
    /// The rootfs cannot be packed, read or used (not a squashfs, too large for its slot).
    #[error("cannot use the rootfs")]
    Rootfs {
        /// Why.
        #[source]
        source: DiskError,
    },
    /// The disk image cannot be built.
    #[error("cannot build the disk image {path}")]
    Disk {
        /// The image being built.
        path: PathBuf,
        /// Why.
        #[source]
        source: DiskError,
    },
    /// No temporary file can be made beside the output.
    #[error("cannot create a temporary file in {dir}")]
    TempFile {
        /// The output's directory.
        dir: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The manifest cannot be written or renamed into place.
    #[error("cannot write the manifest {path}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// `atomixos-<board>-<version>-<build id>.img`.
pub fn image_file_name(board: &Board, info: &BuildInfo) -> String {
    format!(
        "atomixos-{}-{}-{}.img",
        board.name, info.version, info.build_id
    )
}

/// The manifest beside `image`: `<image>.json`.
pub fn manifest_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// The default build ID: the first 12 hex digits of a SHA-256 over the board name, version,
/// epoch and the name, size and SHA-256 of every input (loader files, kernel, initramfs, DTB,
/// rootfs squashfs), one `name size sha256` line each. boot.scr is left out: it holds the ID.
pub fn derive_build_id(board: &str, version: &str, epoch: u64, parts: &[Part]) -> String {
    let mut text = format!("atomix build-id v1\nboard {board}\nversion {version}\nepoch {epoch}\n");
    for p in parts {
        let _ = writeln!(text, "{} {} {}", p.name, p.size, p.sha256);
    }
    disk::sha256_hex(text.as_bytes())[..12].to_owned()
}

/// The DiskLayout for `board`: boot-a and rootfs-a from its repart.d definitions
/// ([`DiskLayout::for_board`]), with the board's U-Boot environment (if it keeps its counters
/// there) reserved in the raw region.
pub fn layout(board: &Board) -> Result<DiskLayout, FlashableError> {
    let mut layout = DiskLayout::for_board(board).map_err(|source| FlashableError::Layout {
        board: board.name.clone(),
        source,
    })?;
    if let AbStore::UbootEnv { offset, size } = board.ab.store {
        layout.reserved.push(Reserved {
            name: "the U-Boot environment".into(),
            start: offset,
            size,
        });
    }
    Ok(layout)
}

/// Builds the flashable image of `board` from `inputs`. `out` is the image file, or an existing
/// directory to put [`image_file_name`] in; the manifest goes beside the image. Steps and
/// their durations go to `progress`. On failure neither file appears and no temporary file is
/// left.
pub fn build(
    board: &Board,
    inputs: &Inputs,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, FlashableError> {
    // Everything that needs no reading first.
    let epoch32 = u32::try_from(inputs.epoch).map_err(|_| FlashableError::Epoch {
        epoch: inputs.epoch,
    })?;
    let check = |id: &str| {
        BuildInfo::new(id, &inputs.version).map_err(|source| FlashableError::BuildInfo { source })
    };
    check(inputs.build_id.as_deref().unwrap_or("placeholder"))?;
    let layout = layout(board)?;
    let boot_number = layout
        .boot_partition()
        .map_err(|source| FlashableError::Disk {
            path: out.to_path_buf(),
            source,
        })?
        .number;
    let BoardFiles { dtb, loader, state } = board_files(board, inputs, boot_number)?;
    let (dir, named) = if out.is_dir() {
        (out.to_path_buf(), None)
    } else {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, Some(out.to_path_buf()))
    };

    // The inputs' hashes (the manifest's parts and the build ID).
    let started = Instant::now();
    progress("hashing the inputs");
    let mut loader_parts = Vec::new();
    for raw in &loader {
        let mut part = hash_part(&format!("loader file {}", raw.name), &raw.name, &raw.source)?;
        part.offset = Some(raw.offset);
        loader_parts.push(part);
    }
    let mut boot_parts = vec![
        hash_part("kernel", KERNEL, &inputs.kernel)?,
        hash_part("initramfs", INITRD, &inputs.initramfs)?,
    ];
    if let Some((name, path)) = &dtb {
        boot_parts.push(hash_part("device tree", name, path)?);
    }
    progress(&format!(
        "hashed the inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // The rootfs squashfs: packed into a temporary file beside the output, or the one given.
    let rootfs_err = |source| FlashableError::Rootfs { source };
    let packed;
    let sqfs = match &inputs.rootfs {
        RootfsSource::Squashfs(path) => path.clone(),
        RootfsSource::Dir(rootfs) => {
            let started = Instant::now();
            progress(&format!("packing {} with mksquashfs", rootfs.display()));
            packed = temp_file(&dir, &format!(".atomixos-{}.", board.name), ".sqfs")?;
            disk::pack_rootfs(rootfs, packed.path(), inputs.epoch).map_err(rootfs_err)?;
            progress(&format!(
                "packed the rootfs in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            packed.path().to_path_buf()
        }
    };
    disk::check_rootfs(&layout, &sqfs).map_err(rootfs_err)?;
    let squashfs = disk::squashfs_info(&sqfs).map_err(rootfs_err)?;
    let rootfs_part = hash_part("rootfs squashfs", "rootfs", &sqfs)?;

    // Identity, boot.scr, the state file.
    let mut inputs_for_id = loader_parts.clone();
    inputs_for_id.extend(boot_parts.iter().cloned());
    inputs_for_id.push(rootfs_part.clone());
    let build_id = match &inputs.build_id {
        Some(id) => id.clone(),
        None => derive_build_id(&board.name, &inputs.version, inputs.epoch, &inputs_for_id),
    };
    let info = check(&build_id)?;
    let script = bootscript::render(board, &info);
    let script = uimage::encode_script(&bootscript::image_name(&info), epoch32, script.as_bytes())
        .map_err(|source| FlashableError::Script { source })?;
    let mut boot_files = vec![
        (KERNEL.to_owned(), BootSource::File(inputs.kernel.clone())),
        (
            INITRD.to_owned(),
            BootSource::File(inputs.initramfs.clone()),
        ),
    ];
    if let Some((name, path)) = &dtb {
        boot_files.push((name.clone(), BootSource::File(path.clone())));
    }
    let mut generated = vec![(BOOT_SCRIPT.to_owned(), script)];
    generated.extend(state);
    for (name, data) in generated {
        boot_parts.push(Part {
            name: name.clone(),
            offset: None,
            size: data.len() as u64,
            sha256: disk::sha256_hex(&data),
        });
        boot_files.push((name, BootSource::Bytes(data)));
    }

    let image = named.unwrap_or_else(|| dir.join(image_file_name(board, &info)));
    let manifest_file = manifest_path(&image);
    let seed = inputs.seed.clone().unwrap_or_else(|| build_id.clone());
    let spec = DiskSpec {
        layout,
        loader,
        boot_files,
        rootfs: RootfsSource::Squashfs(sqfs),
        epoch: inputs.epoch,
        seed: seed.clone(),
        size: inputs.size,
    };
    let disk_err = |source| FlashableError::Disk {
        path: image.clone(),
        source,
    };
    let started = Instant::now();
    let pending = disk::build_pending(&spec, &image, progress).map_err(disk_err)?;
    progress(&format!(
        "built the image in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let report = pending.report().clone();
    let boot = spec.layout.boot_partition().map_err(disk_err)?;
    let rootfs_slot = spec.layout.rootfs_slot().map_err(disk_err)?;
    let manifest = Manifest {
        image: image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        board: board.name.clone(),
        version: info.version.clone(),
        build_id: info.build_id.clone(),
        epoch: inputs.epoch,
        seed,
        size: report.size,
        sha256: report.sha256.clone(),
        disk_guid: report.disk_guid.clone(),
        partitions: report.partitions.clone(),
        loader: loader_parts,
        boot_partition: boot.label.clone(),
        boot_files: boot_parts,
        rootfs: RootfsPart {
            partition: rootfs_slot.label.clone(),
            size: rootfs_part.size,
            sha256: rootfs_part.sha256,
            squashfs,
        },
    };

    let report = persist_both(pending, &image, &manifest, &manifest_file, &dir)?;
    Ok(Built {
        image,
        manifest_path: manifest_file,
        manifest,
        allocated: report.allocated,
    })
}

/// The files `board` adds to the image: its DTB (name in the FAT root, source), its loader
/// files, and its A/B state file (name, initial contents) when it keeps one on the boot vfat.
struct BoardFiles {
    dtb: Option<(String, PathBuf)>,
    loader: Vec<RawFile>,
    state: Option<(String, Vec<u8>)>,
}

/// What `board` needs besides the kernel, initramfs and rootfs, checked against what `inputs`
/// gives; `boot_number` is the GPT entry of the image's boot vfat.
fn board_files(
    board: &Board,
    inputs: &Inputs,
    boot_number: u32,
) -> Result<BoardFiles, FlashableError> {
    let dtb = match (board.boot.dtb_file_name(), &inputs.dtb) {
        (Some(name), Some(path)) => Some((name.to_owned(), path.clone())),
        (Some(_), None) => {
            return Err(FlashableError::MissingDtb {
                board: board.name.clone(),
                dtb: board.boot.dtb.clone().unwrap_or_default(),
            });
        }
        (None, Some(path)) => {
            return Err(FlashableError::UnusedDtb {
                board: board.name.clone(),
                path: path.clone(),
            });
        }
        (None, None) => None,
    };
    let loader: Vec<RawFile> = match (&board.loader, &inputs.loader_dir) {
        (Some(l), Some(dir)) => l
            .files
            .iter()
            .map(|f| RawFile {
                name: f.file.clone(),
                offset: f.offset(),
                source: dir.join(&f.file),
            })
            .collect(),
        (Some(l), None) => {
            return Err(FlashableError::MissingLoader {
                board: board.name.clone(),
                package: l.package.clone(),
            });
        }
        (None, Some(dir)) => {
            return Err(FlashableError::UnusedLoader {
                board: board.name.clone(),
                dir: dir.clone(),
            });
        }
        (None, None) => Vec::new(),
    };
    let state = match &board.ab.store {
        AbStore::VfatFile { partition, file } if *partition == boot_number => Some((
            file.clone(),
            atomix_board::env::initial_counters(board.ab.tries).encode_text(),
        )),
        AbStore::VfatFile { partition, file } => {
            return Err(FlashableError::StatePartition {
                board: board.name.clone(),
                file: file.clone(),
                partition: *partition,
                boot: boot_number,
            });
        }
        AbStore::UbootEnv { .. } => None,
    };
    Ok(BoardFiles { dtb, loader, state })
}

/// Size and SHA-256 of the input `path` (`what` names it in errors), as the part `name`.
fn hash_part(what: &str, name: &str, path: &Path) -> Result<Part, FlashableError> {
    let (size, sha256) = disk::sha256_file(path).map_err(|source| FlashableError::Input {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Part {
        name: name.to_owned(),
        offset: None,
        size,
        sha256,
    })
}

/// Writes `manifest` to a temporary file in `dir`, then renames the image and the manifest into
/// place (the image first; it is taken back out if the manifest cannot follow).
fn persist_both(
    pending: disk::PendingImage,
    image: &Path,
    manifest: &Manifest,
    manifest_file: &Path,
    dir: &Path,
) -> Result<disk::DiskReport, FlashableError> {
    let manifest_err = |source| FlashableError::Manifest {
        path: manifest_file.to_path_buf(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(manifest).map_err(|e| manifest_err(e.into()))?;
    json.push(b'\n');
    let mut temp = temp_file(dir, ".atomixos-manifest.", ".json")?;
    temp.write_all(&json).map_err(manifest_err)?;
    temp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(manifest_err)?;
    temp.as_file().sync_all().map_err(manifest_err)?;
    let report = pending
        .persist(image)
        .map_err(|source| FlashableError::Disk {
            path: image.to_path_buf(),
            source,
        })?;
    if let Err(e) = temp.persist(manifest_file) {
        // An image without its manifest is a failed build.
        let _ = std::fs::remove_file(image);
        return Err(manifest_err(e.error));
    }
    Ok(report)
}

fn temp_file(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<tempfile::NamedTempFile, FlashableError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|source| FlashableError::TempFile {
            dir: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, sha: &str) -> Part {
        Part {
            name: name.into(),
            offset: None,
            size: 1,
            sha256: sha.into(),
        }
    }

    #[test]
    fn build_ids_follow_every_input() {
        let parts = vec![part("Image", "aa"), part("initrd", "bb")];
        let id = derive_build_id("rock64", "dev", 0, &parts);
        assert_eq!(id.len(), 12);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, derive_build_id("rock64", "dev", 0, &parts));
        assert_ne!(id, derive_build_id("qemu-virt", "dev", 0, &parts));
        assert_ne!(id, derive_build_id("rock64", "1.0", 0, &parts));
        assert_ne!(id, derive_build_id("rock64", "dev", 1, &parts));
        let changed = vec![part("Image", "aa"), part("initrd", "bc")];
        assert_ne!(id, derive_build_id("rock64", "dev", 0, &changed));
    }

    #[test]
    fn names() {
        let board = Board::builtin("rock64").unwrap();
        let info = BuildInfo::new("0123456789ab", "1.2").unwrap();
        assert_eq!(
            image_file_name(&board, &info),
            "atomixos-rock64-1.2-0123456789ab.img"
        );
        assert_eq!(
            manifest_path(Path::new("/o/x.img")),
            PathBuf::from("/o/x.img.json")
        );
    }

    #[test]
    fn layouts_reserve_the_uboot_environment_only_where_it_is() {
        let rock64 = layout(&Board::builtin("rock64").unwrap()).unwrap();
        assert_eq!(
            rock64.reserved,
            vec![Reserved {
                name: "the U-Boot environment".into(),
                start: 0x3F8000,
                size: 0x8000
            }]
        );
        let qemu = layout(&Board::builtin("qemu-virt").unwrap()).unwrap();
        assert!(qemu.reserved.is_empty());
        assert_eq!(qemu.partitions, rock64.partitions);
    }
}
