//! The partition layout an image carries, and where it comes from.
//!
//! One source: the board's repart.d definitions. [`from_definitions`] does what
//! systemd-repart's `--empty=create` does for an image: it plans the definitions of the
//! partitions the image carries ([`image_partitions`]: `boot-a` and `rootfs-a`) with
//! `atomix_repart::plan` against an empty disk of the image's size, below the board's raw
//! region, and takes their entry numbers, types, labels, starts and sizes from the plan. First
//! boot plans the same definitions against the flashed table, so editing a definition changes
//! both. What the definitions do not say is the image's own: what fills each partition
//! ([`Content`]), its GPT attributes (`boot-a` is legacy-BIOS-bootable for U-Boot's distro
//! boot; the plan would give both partitions GrowFileSystem, bit 59, as systemd-repart does for
//! new ones), and its PARTUUIDs and disk GUID (derived from the image's seed:
//! [`partition_uuid`], [`disk_guid`]).
//!
//! Must not: read or write files (definitions come as text from `atomix-board`), or decide
//! which board wants which loader files.

use atomix_board::{Board, Slot};
use atomix_repart::definitions::{self, Arch, Definition};
use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table};
use atomix_repart::plan::{self, ActionKind, PlanOptions};

use super::{DiskError, LayoutError, SECTOR};

/// Space after the last partition to the image's end (default size); holds the backup GPT.
pub const IMAGE_TAIL: u64 = 1 << 20;

/// The allocation grain of the planner (systemd-repart's: 4096 bytes).
const GRAIN: u64 = 4096;

/// What a partition of the layout is filled with at image time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A FAT16 filesystem holding [`DiskSpec::boot_files`](super::DiskSpec::boot_files) in its root directory.
    BootVfat {
        /// Volume label, at most 11 characters of `A-Z 0-9 - _`.
        volume_label: String,
    },
    /// The rootfs squashfs ([`DiskSpec::rootfs`](super::DiskSpec::rootfs)).
    Rootfs,
}

/// One partition of a [`DiskLayout`]; offsets and sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    /// Entry number in the GPT (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// GPT partition name (PARTLABEL).
    pub label: String,
    /// GPT partition type.
    pub type_guid: Guid,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT attribute bits.
    pub attributes: u64,
    /// What the image puts there.
    pub content: Content,
}

/// The part of a disk layout an image carries; offsets and sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// GPT first usable byte: nothing below it is ever allocated (the raw loader region).
    pub first_usable: u64,
    /// The partitions the image creates.
    pub partitions: Vec<PartitionLayout>,
    /// Space after the last partition up to the image end; holds the backup GPT.
    pub tail: u64,
    /// Ranges of the raw region no loader file may touch (left as zeros in a new image).
    pub reserved: Vec<Reserved>,
}

/// A byte range of the raw region that belongs to someone else, e.g. U-Boot's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// What it is, for error messages.
    pub name: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

impl DiskLayout {
    /// The image-time layout of `board`: its repart.d definitions of `boot-a` and `rootfs-a`
    /// planned by [`from_definitions`] below its raw region, `boot-a` the legacy-BIOS-bootable
    /// boot vfat (volume label `BOOT-A`), `rootfs-a` the rootfs squashfs; the image ends
    /// [`IMAGE_TAIL`] after the last partition. No reserved ranges: the caller adds those.
    pub fn for_board(board: &Board) -> Result<Self, LayoutError> {
        let definitions = board
            .repart
            .definitions
            .iter()
            .map(|(name, text)| {
                definitions::parse_definition(name, text, Arch::Arm64).map_err(|source| {
                    LayoutError::Definition {
                        set: board.repart.set.clone(),
                        source: Box::new(source),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        from_definitions(
            &definitions,
            board.repart.first_usable_bytes,
            &image_partitions(),
        )
    }

    /// [`DiskLayout::for_board`] of the built-in `qemu-virt` board; every built-in board has the
    /// same layout (the `atomixos-ab` definitions below a 16 MiB raw region).
    pub fn atomix() -> Result<Self, LayoutError> {
        let board = Board::builtin("qemu-virt").map_err(|source| LayoutError::Board {
            source: Box::new(source),
        })?;
        Self::for_board(&board)
    }

    /// The smallest image size: the end of the last partition plus [`DiskLayout::tail`].
    pub fn end(&self) -> u64 {
        let last = self.partitions.iter().map(|p| p.start + p.size).max();
        last.unwrap_or(self.first_usable) + self.tail
    }

    /// The GPT for an image of `size` bytes, GUIDs derived from `seed`.
    pub fn table(&self, size: u64, seed: &str) -> Result<Table, DiskError> {
        for p in &self.partitions {
            if !p.start.is_multiple_of(SECTOR) || !p.size.is_multiple_of(SECTOR) || p.size == 0 {
                return Err(DiskError::Unaligned {
                    label: p.label.clone(),
                    start: p.start,
                    size: p.size,
                });
            }
        }
        if !self.first_usable.is_multiple_of(SECTOR) {
            return Err(DiskError::UnalignedFirstUsable {
                first_usable: self.first_usable,
            });
        }
        let geometry = Geometry::new(size, SECTOR).map_err(|source| DiskError::Table { source })?;
        let mut table = Table::spanning(&geometry, disk_guid(seed));
        table.first_usable_lba = self.first_usable / SECTOR;
        table.partitions = self
            .partitions
            .iter()
            .map(|p| Partition {
                number: p.number,
                type_guid: p.type_guid,
                uuid: partition_uuid(seed, &p.label),
                first_lba: p.start / SECTOR,
                last_lba: (p.start + p.size) / SECTOR - 1,
                attributes: p.attributes,
                name: p.label.clone(),
            })
            .collect();
        table
            .validate(&geometry)
            .map_err(|source| DiskError::Table { source })?;
        Ok(table)
    }

    /// The partition that holds the rootfs squashfs.
    pub fn rootfs_slot(&self) -> Result<&PartitionLayout, DiskError> {
        self.role(|c| matches!(c, Content::Rootfs), "rootfs")
    }

    /// The partition that holds the boot vfat.
    pub fn boot_partition(&self) -> Result<&PartitionLayout, DiskError> {
        self.role(|c| matches!(c, Content::BootVfat { .. }), "boot vfat")
    }

    fn role(
        &self,
        pick: fn(&Content) -> bool,
        role: &'static str,
    ) -> Result<&PartitionLayout, DiskError> {
        let mut found = self.partitions.iter().filter(|p| pick(&p.content));
        match (found.next(), found.next()) {
            (Some(p), None) => Ok(p),
            (None, _) => Err(DiskError::MissingRole { role }),
            (Some(_), Some(_)) => Err(DiskError::DuplicateRole { role }),
        }
    }
}

/// Disk GUID for `seed`.
pub fn disk_guid(seed: &str) -> Guid {
    Guid::from_seed(format!("atomix-image/{seed}/disk").as_bytes())
}

/// Partition GUID (PARTUUID) of the partition labelled `label` for `seed`.
pub fn partition_uuid(seed: &str, label: &str) -> Guid {
    Guid::from_seed(format!("atomix-image/{seed}/partition/{label}").as_bytes())
}

pub(super) fn volume_id(seed: &str, label: &str) -> u32 {
    let b = Guid::from_seed(format!("atomix-image/{seed}/vfat/{label}").as_bytes()).to_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A partition the image carries: which definition (by `Label=`) it comes from, and what the
/// image puts into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// PARTLABEL, matched against the definitions' `Label=`.
    pub label: String,
    /// What the image fills it with.
    pub content: Content,
    /// GPT attribute bits (the plan's are not used: see the module documentation).
    pub attributes: u64,
}

/// The partitions every AtomixOS image carries: slot A's boot vfat (legacy-BIOS-bootable, so
/// U-Boot's distro boot runs its `boot.scr`; volume label = its PARTLABEL in capitals) and
/// slot A's rootfs.
pub fn image_partitions() -> Vec<Carried> {
    let boot = Slot::A.boot_label();
    vec![
        Carried {
            label: boot.to_owned(),
            content: Content::BootVfat {
                volume_label: boot.to_ascii_uppercase(),
            },
            attributes: gpt::ATTR_LEGACY_BIOS_BOOTABLE,
        },
        Carried {
            label: Slot::A.rootfs_label().to_owned(),
            content: Content::Rootfs,
            attributes: 0,
        },
    ]
}

/// The layout of an image carrying `carried`, planned from `definitions` (in file order):
/// the definitions whose `Label=` names a carried partition, each of a fixed size
/// (`SizeMinBytes=` = `SizeMaxBytes=`: an image is built before the disk it goes to is known),
/// planned against an empty disk of the image's default size (the sum of their sizes and
/// minimum paddings after `first_usable` bytes, plus [`IMAGE_TAIL`]) with the first usable byte
/// at `first_usable`. The definitions the image does not carry are first boot's.
pub fn from_definitions(
    definitions: &[Definition],
    first_usable: u64,
    carried: &[Carried],
) -> Result<DiskLayout, LayoutError> {
    if !first_usable.is_multiple_of(SECTOR) {
        return Err(LayoutError::FirstUsable { first_usable });
    }
    let mut picked: Vec<(&Definition, &Carried)> = Vec::new();
    for c in carried {
        let mut found = definitions
            .iter()
            .filter(|d| d.label() == Some(c.label.as_str()));
        let definition = match (found.next(), found.next()) {
            (Some(d), None) => d,
            (None, _) => {
                return Err(LayoutError::NoDefinition {
                    label: c.label.clone(),
                });
            }
            (Some(a), Some(b)) => {
                return Err(LayoutError::TwoDefinitions {
                    label: c.label.clone(),
                    first: a.name().to_owned(),
                    second: b.name().to_owned(),
                });
            }
        };
        if definition.size_min().is_none() || definition.size_min() != definition.size_max() {
            return Err(LayoutError::NotFixedSize {
                definition: definition.name().to_owned(),
                min: definition.size_min(),
                max: definition.size_max(),
            });
        }
        picked.push((definition, c));
    }
    // The planner takes the definitions in file order, as first boot does.
    picked.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    let defs: Vec<Definition> = picked.iter().map(|(d, _)| (*d).clone()).collect();
    let needed: u64 = defs
        .iter()
        .map(|d| d.size_max().unwrap_or(0) + d.padding_min().unwrap_or(0))
        .sum();
    let disk_bytes = first_usable.div_ceil(GRAIN) * GRAIN + needed + IMAGE_TAIL;
    let options = PlanOptions {
        sector_size: SECTOR,
        first_usable_lba: first_usable / SECTOR,
    };
    let planned = plan::plan(&defs, None, disk_bytes, Guid::NIL, &options).map_err(|source| {
        LayoutError::Plan {
            disk_bytes,
            source: Box::new(source),
        }
    })?;
    let mut partitions = Vec::with_capacity(picked.len());
    for (definition, c) in &picked {
        let action = planned
            .actions
            .iter()
            .find(|a| {
                a.kind == ActionKind::Create && a.definition.as_deref() == Some(definition.name())
            })
            .ok_or_else(|| LayoutError::NotPlanned {
                definition: definition.name().to_owned(),
            })?;
        partitions.push(PartitionLayout {
            number: action.number,
            label: action.label.clone(),
            type_guid: action.type_guid,
            start: action.start_lba * SECTOR,
            size: action.sectors * SECTOR,
            attributes: c.attributes,
            content: c.content.clone(),
        });
    }
    partitions.sort_by_key(|p| p.number);
    Ok(DiskLayout {
        first_usable,
        partitions,
        tail: IMAGE_TAIL,
        reserved: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn layout_end_and_table() {
        let layout = DiskLayout::atomix().unwrap();
        assert_eq!(layout.end(), 1169 * MIB);
        let t = layout.table(layout.end(), "s").unwrap();
        assert_eq!(t.first_usable_lba, 32768);
        assert_eq!(t.partitions[0].first_lba, 32768);
        assert_eq!(t.partitions[0].last_lba, 294_911);
        assert_eq!(t.partitions[1].first_lba, 294_912);
        assert_eq!(t.partitions[1].last_lba, 2_392_063);
        assert_eq!(t.last_usable_lba, 1169 * MIB / 512 - 34);
    }

    #[test]
    fn overlapping_layout_is_refused_naming_the_partition() {
        let mut layout = DiskLayout::atomix().unwrap();
        layout.partitions[1].start -= MIB;
        let err = layout.table(layout.end(), "s").unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("rootfs-a") && chain.contains("boot-a"),
            "{chain}"
        );
    }

    /// The built-in definitions, as `(file name, text)`.
    fn builtin() -> Vec<(String, String)> {
        Board::builtin("qemu-virt")
            .unwrap()
            .repart
            .definitions
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    fn parse(set: &[(String, String)]) -> Vec<Definition> {
        set.iter()
            .map(|(n, t)| definitions::parse_definition(n, t, Arch::Arm64).unwrap())
            .collect()
    }

    #[test]
    fn the_image_layout_is_design_section_3() {
        let layout = DiskLayout::atomix().unwrap();
        let rows: Vec<_> = layout
            .partitions
            .iter()
            .map(|p| {
                (
                    p.number,
                    p.label.as_str(),
                    p.type_guid,
                    p.start,
                    p.size,
                    p.attributes,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    1,
                    "boot-a",
                    gpt::types::XBOOTLDR,
                    16 * MIB,
                    128 * MIB,
                    gpt::ATTR_LEGACY_BIOS_BOOTABLE
                ),
                (
                    2,
                    "rootfs-a",
                    gpt::types::ROOT_ARM64,
                    144 * MIB,
                    1024 * MIB,
                    0
                ),
            ]
        );
        assert_eq!(
            layout.partitions[0].content,
            Content::BootVfat {
                volume_label: "BOOT-A".into()
            }
        );
        assert_eq!(layout.partitions[1].content, Content::Rootfs);
        assert_eq!((layout.first_usable, layout.tail), (16 * MIB, MIB));
        for name in Board::names() {
            let board = Board::builtin(name).unwrap();
            assert_eq!(DiskLayout::for_board(&board).unwrap(), layout, "{name}");
        }
    }

    #[test]
    fn the_layout_follows_an_edited_definition() {
        let mut set = builtin();
        let boot = set.iter_mut().find(|(n, _)| n == "10-boot-a.conf").unwrap();
        boot.1 = boot.1.replace("=128M", "=256M");
        let layout = from_definitions(&parse(&set), 16 * MIB, &image_partitions()).unwrap();
        assert_eq!(layout.boot_partition().unwrap().size, 256 * MIB);
        assert_eq!(layout.rootfs_slot().unwrap().start, 272 * MIB);
        assert_eq!(layout.end(), (16 + 256 + 1024 + 1) * MIB);
        // And the raw region's end.
        let layout = from_definitions(&parse(&builtin()), 32 * MIB, &image_partitions()).unwrap();
        assert_eq!(layout.boot_partition().unwrap().start, 32 * MIB);
        assert_eq!(layout.rootfs_slot().unwrap().start, 160 * MIB);
    }

    #[test]
    fn first_boot_keeps_the_image_partitions_where_the_image_put_them() {
        // The whole definition set planned against the flashed table on a 16 GiB disk, as
        // /init's first boot does: the image's partitions are matched and kept as they are.
        for edit in [None, Some(("10-boot-a.conf", "=128M", "=64M"))] {
            let mut set = builtin();
            if let Some((file, from, to)) = edit {
                let d = set.iter_mut().find(|(n, _)| n == file).unwrap();
                d.1 = d.1.replace(from, to);
            }
            let defs = parse(&set);
            let layout = from_definitions(&defs, 16 * MIB, &image_partitions()).unwrap();
            let table = layout.table(layout.end(), "s").unwrap();
            let options = PlanOptions {
                sector_size: SECTOR,
                first_usable_lba: 16 * MIB / SECTOR,
            };
            let first_boot =
                plan::plan(&defs, Some(&table), 16 << 30, Guid::NIL, &options).unwrap();
            for p in &layout.partitions {
                let a = first_boot
                    .actions
                    .iter()
                    .find(|a| a.number == p.number)
                    .unwrap();
                assert_eq!(a.kind, ActionKind::Keep, "{edit:?}: {a:?}");
                assert_eq!(
                    (
                        a.label.as_str(),
                        a.type_guid,
                        a.start_lba * SECTOR,
                        a.sectors * SECTOR
                    ),
                    (p.label.as_str(), p.type_guid, p.start, p.size),
                    "{edit:?}"
                );
            }
            // And a blank disk planned from the same set puts them in the same places.
            let blank = plan::plan(&defs, None, 16 << 30, Guid::NIL, &options).unwrap();
            for p in &layout.partitions {
                let a = blank.actions.iter().find(|a| a.label == p.label).unwrap();
                assert_eq!(
                    (a.number, a.start_lba * SECTOR, a.sectors * SECTOR),
                    (p.number, p.start, p.size),
                    "{edit:?}"
                );
            }
        }
    }

    #[test]
    fn definitions_the_image_cannot_carry_are_refused() {
        let mut set = builtin();
        let rootfs = set
            .iter_mut()
            .find(|(n, _)| n == "20-rootfs-a.conf")
            .unwrap();
        rootfs.1 = rootfs.1.replace("SizeMaxBytes=1024M\n", "");
        let e = from_definitions(&parse(&set), 16 * MIB, &image_partitions()).unwrap_err();
        assert!(
            matches!(&e, LayoutError::NotFixedSize { definition, .. } if definition == "20-rootfs-a.conf"),
            "{e:?}"
        );
        let set: Vec<_> = builtin()
            .into_iter()
            .filter(|(n, _)| n != "10-boot-a.conf")
            .collect();
        let e = from_definitions(&parse(&set), 16 * MIB, &image_partitions()).unwrap_err();
        assert!(
            matches!(&e, LayoutError::NoDefinition { label } if label == "boot-a"),
            "{e:?}"
        );
        let e =
            from_definitions(&parse(&builtin()), 16 * MIB + 1, &image_partitions()).unwrap_err();
        assert!(matches!(e, LayoutError::FirstUsable { .. }), "{e:?}");
    }
}
