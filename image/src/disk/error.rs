//! The errors of disk image assembly: [`DiskError`] (building an image) and [`LayoutError`]
//! (making its layout from the board's definitions).
//!
//! Must not: hold logic; each variant names the partition, file or path it is about.

use std::io;
use std::path::PathBuf;

use atomix_board::BoardError;
use atomix_repart::definitions::DefinitionError;
use atomix_repart::gpt::GptError;
use atomix_repart::plan::PlanError;
use atomix_repart::vfat::VfatError;

use super::PRIMARY_GPT_END;

/// Failures building a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The layout has no partition filled with this content (`rootfs` or `boot vfat`).
    #[error("the layout has no {role} partition")]
    MissingRole {
        /// The content looked for.
        role: &'static str,
    },
    /// More than one partition of the layout is filled with this content.
    #[error("the layout has more than one {role} partition")]
    DuplicateRole {
        /// The content looked for.
        role: &'static str,
    },
    /// A partition does not start or end on a sector boundary, or is empty.
    #[error("partition {label}: start {start} or size {size} is not a positive multiple of 512")]
    Unaligned {
        /// Its PARTLABEL.
        label: String,
        /// Its first byte.
        start: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// The layout's first usable byte is not on a sector boundary.
    #[error("first usable byte {first_usable} is not a multiple of 512")]
    UnalignedFirstUsable {
        /// The first usable byte.
        first_usable: u64,
    },
    /// The boot vfat's volume label cannot be a FAT volume label.
    #[error("volume label {label:?} is not 1-11 characters of A-Z 0-9 - _")]
    VolumeLabel {
        /// The label given.
        label: String,
    },
    /// The image size given is too small for the layout or not whole sectors.
    #[error("image size {size} is smaller than the layout's end {needed} or not a multiple of 512")]
    Size {
        /// The size given.
        size: u64,
        /// The layout's end ([`DiskLayout::end`](super::DiskLayout::end)).
        needed: u64,
    },
    /// The layout gives no valid GPT for the image (overlapping partitions, too small a disk).
    #[error("invalid partition table for the image")]
    Table {
        /// What the GPT codec found.
        #[source]
        source: GptError,
    },
    /// The layout could not be made from the board's definitions.
    #[error("cannot lay out the image")]
    Layout {
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// A boot file's name cannot be a name in the FAT root directory.
    #[error("boot file name {name:?} is not a valid name in the FAT root directory")]
    BootFileName {
        /// The name given.
        name: String,
    },
    /// Two boot files have the same name (FAT compares names without case).
    #[error("boot file name {name:?} is given twice (FAT names are case-insensitive)")]
    DuplicateBootFile {
        /// The second name.
        name: String,
    },
    /// A boot file cannot be read (or is not a regular file).
    #[error("cannot read boot file {name} from {path}")]
    BootFile {
        /// Its name in the FAT root.
        name: String,
        /// The file it is copied from.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A raw loader file cannot be read (or is empty).
    #[error("cannot read loader file {name} from {path}")]
    LoaderFile {
        /// Its name.
        name: String,
        /// The file it is copied from.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A raw loader file is not sector aligned or not inside the raw region.
    #[error(
        "loader file {name} at bytes {start}..{end} must be sector aligned and lie between the \
         primary GPT (byte {PRIMARY_GPT_END}) and the first usable byte {first_usable}"
    )]
    LoaderPlacement {
        /// Its name.
        name: String,
        /// Its first byte on the disk.
        start: u64,
        /// The byte after its last.
        end: u64,
        /// The layout's first usable byte (the end of the raw region).
        first_usable: u64,
    },
    /// A raw loader file overlaps another one or a reserved range.
    #[error(
        "loader file {name} at bytes {start}..{end} overlaps {other} at {other_start}..{other_end}"
    )]
    LoaderOverlap {
        /// Its name.
        name: String,
        /// Its first byte on the disk.
        start: u64,
        /// The byte after its last.
        end: u64,
        /// The loader file or reserved range in the way.
        other: String,
        /// Its first byte.
        other_start: u64,
        /// The byte after its last.
        other_end: u64,
    },
    /// A raw loader file cannot be written into the image.
    #[error("cannot write loader file {name} at byte {offset}")]
    WriteLoader {
        /// Its name.
        name: String,
        /// Its byte offset on the disk.
        offset: u64,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The boot vfat cannot be made (a failure other than those with their own variant).
    #[error("cannot write the vfat of partition {label}")]
    Vfat {
        /// The partition's PARTLABEL.
        label: String,
        /// What the FAT code said.
        #[source]
        source: VfatError,
    },
    /// The epoch is past squashfs's 32-bit timestamps (2106).
    #[error("epoch {epoch} does not fit squashfs's 32-bit timestamps")]
    Epoch {
        /// The epoch given.
        epoch: u64,
    },
    /// `mksquashfs` cannot be started.
    #[error("cannot run mksquashfs on {dir}")]
    MksquashfsSpawn {
        /// The directory to pack.
        dir: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `mksquashfs` failed.
    #[error("mksquashfs on {dir} failed ({status}): {stderr}")]
    Mksquashfs {
        /// The directory to pack.
        dir: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The rootfs squashfs cannot be read.
    #[error("cannot read rootfs image {path}")]
    RootfsRead {
        /// The squashfs.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The rootfs image does not start with the squashfs magic.
    #[error("rootfs image {path} is not a squashfs (no \"hsqs\" magic)")]
    NotSquashfs {
        /// The file given.
        path: PathBuf,
    },
    /// The rootfs squashfs is larger than its slot.
    #[error("rootfs image {path} is {size} bytes, larger than the {slot}-byte slot {label}")]
    RootfsTooLarge {
        /// The squashfs.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The slot's size in bytes.
        slot: u64,
        /// The slot's PARTLABEL.
        label: String,
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
    /// The image file cannot be given its size.
    #[error("cannot size {path} to {size} bytes")]
    Resize {
        /// The image being built.
        path: PathBuf,
        /// The size asked for.
        size: u64,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The GPT cannot be written into the image.
    #[error("cannot write the partition table of {path}")]
    WriteTable {
        /// The image being built.
        path: PathBuf,
        /// What the GPT codec said.
        #[source]
        source: GptError,
    },
    /// The boot partition cannot be formatted as FAT.
    #[error("cannot format partition {label} as vfat")]
    FormatVfat {
        /// The partition's PARTLABEL.
        label: String,
        /// What the FAT code said.
        #[source]
        source: io::Error,
    },
    /// A boot file cannot be written into the boot vfat.
    #[error("cannot write {name} into the vfat of partition {label}")]
    VfatFile {
        /// Its name in the FAT root.
        name: String,
        /// The partition's PARTLABEL.
        label: String,
        /// What the FAT code said.
        #[source]
        source: io::Error,
    },
    /// The rootfs squashfs cannot be copied into its slot.
    #[error("cannot copy the rootfs into partition {label}")]
    CopyRootfs {
        /// The slot's PARTLABEL.
        label: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The finished image cannot be synced, hashed, given its mode or renamed into place.
    #[error("cannot finish {path}")]
    Finish {
        /// The image (its final path).
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Failures making an image's layout from the board's repart.d definitions.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The built-in board the layout is taken from does not load.
    #[error("cannot load the board profile")]
    Board {
        /// Why.
        #[source]
        source: Box<BoardError>,
    },
    /// A definition of the board's set does not parse.
    #[error("the repart.d definition set {set} does not parse")]
    Definition {
        /// The set's name (`board/repart.d/<set>/`).
        set: String,
        /// Which file, which line, what is wrong.
        #[source]
        source: Box<DefinitionError>,
    },
    /// The raw region's end (the first usable byte) is not on a sector boundary.
    #[error("first usable byte {first_usable} is not a multiple of 512")]
    FirstUsable {
        /// The first usable byte.
        first_usable: u64,
    },
    /// No definition has the `Label=` of a partition the image carries.
    #[error("no definition has Label={label}, a partition the image carries")]
    NoDefinition {
        /// The PARTLABEL looked for.
        label: String,
    },
    /// Two definitions have the `Label=` of a partition the image carries.
    #[error("{first} and {second} both have Label={label}")]
    TwoDefinitions {
        /// The PARTLABEL.
        label: String,
        /// The first definition file with it.
        first: String,
        /// The second.
        second: String,
    },
    /// A partition the image carries has no fixed size: the image is built before the disk it
    /// goes to is known.
    #[error(
        "{definition} is a partition the image carries and needs SizeMinBytes= equal to \
         SizeMaxBytes= (min {min:?}, max {max:?})"
    )]
    NotFixedSize {
        /// The definition file.
        definition: String,
        /// Its `SizeMinBytes=`.
        min: Option<u64>,
        /// Its `SizeMaxBytes=`.
        max: Option<u64>,
    },
    /// The planner refused the definitions on an empty disk of the image's size.
    #[error("cannot plan the image's partitions on an empty {disk_bytes}-byte disk")]
    Plan {
        /// The disk size planned against.
        disk_bytes: u64,
        /// What the planner said.
        #[source]
        source: Box<PlanError>,
    },
    /// The plan has no new partition for a definition the image carries (it was dropped).
    #[error("the plan creates no partition for {definition}")]
    NotPlanned {
        /// The definition file.
        definition: String,
    },
}
