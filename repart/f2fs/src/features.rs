//! The f2fs feature set: a validated set of `F2FS_FEATURE_*` bits.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One on-disk f2fs feature that `mkfs.f2fs 1.15 -O` can set and this crate supports.
///
/// Left out on purpose: `casefold` (needs an encoding configuration), `ro`, `blkzoned` and
/// `atomic_write` (not mkfs options for a general-purpose filesystem).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// `extra_attr`: room for extra inode attributes; several features need it.
    ExtraAttr,
    /// `inode_checksum`: a CRC in every inode (requires `extra_attr`).
    InodeChecksum,
    /// `sb_checksum`: a CRC over the superblock.
    SbChecksum,
    /// `flexible_inline_xattr`: per-inode inline xattr size (requires `extra_attr`).
    FlexibleInlineXattr,
    /// `inode_crtime`: creation time in the inode (requires `extra_attr`).
    InodeCrtime,
    /// `lost_found`: create `/lost+found`.
    LostFound,
    /// `compression`: per-file compression support (requires `extra_attr`).
    Compression,
    /// `project_quota`: project IDs in inodes and a project quota file (requires `extra_attr`;
    /// like mkfs.f2fs, it also sets the superblock's `quota_ino` flag).
    ProjectQuota,
    /// `quota`: user and group quota files in hidden inodes (`quota_ino`).
    Quota,
    /// `encrypt`: fscrypt support.
    Encrypt,
    /// `verity`: fs-verity support.
    Verity,
}

impl Feature {
    /// Every supported feature, in the order of mkfs.f2fs's feature table.
    pub const ALL: [Feature; 11] = [
        Feature::Encrypt,
        Feature::ExtraAttr,
        Feature::ProjectQuota,
        Feature::InodeChecksum,
        Feature::FlexibleInlineXattr,
        Feature::Quota,
        Feature::InodeCrtime,
        Feature::LostFound,
        Feature::Verity,
        Feature::SbChecksum,
        Feature::Compression,
    ];

    /// The name `mkfs.f2fs -O` and `dump.f2fs` use.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::ExtraAttr => "extra_attr",
            Feature::InodeChecksum => "inode_checksum",
            Feature::SbChecksum => "sb_checksum",
            Feature::FlexibleInlineXattr => "flexible_inline_xattr",
            Feature::InodeCrtime => "inode_crtime",
            Feature::LostFound => "lost_found",
            Feature::Compression => "compression",
            Feature::ProjectQuota => "project_quota",
            Feature::Quota => "quota",
            Feature::Encrypt => "encrypt",
            Feature::Verity => "verity",
        }
    }

    /// The `F2FS_FEATURE_*` bit of f2fs-tools 1.15.
    pub const fn bit(self) -> u32 {
        match self {
            Feature::ExtraAttr => f2fs_sys::F2FS_FEATURE_EXTRA_ATTR,
            Feature::InodeChecksum => f2fs_sys::F2FS_FEATURE_INODE_CHKSUM,
            Feature::SbChecksum => f2fs_sys::F2FS_FEATURE_SB_CHKSUM,
            Feature::FlexibleInlineXattr => f2fs_sys::F2FS_FEATURE_FLEXIBLE_INLINE_XATTR,
            Feature::InodeCrtime => f2fs_sys::F2FS_FEATURE_INODE_CRTIME,
            Feature::LostFound => f2fs_sys::F2FS_FEATURE_LOST_FOUND,
            Feature::Compression => f2fs_sys::F2FS_FEATURE_COMPRESSION,
            Feature::ProjectQuota => f2fs_sys::F2FS_FEATURE_PRJQUOTA,
            Feature::Quota => f2fs_sys::F2FS_FEATURE_QUOTA_INO,
            Feature::Encrypt => f2fs_sys::F2FS_FEATURE_ENCRYPT,
            Feature::Verity => f2fs_sys::F2FS_FEATURE_VERITY,
        }
    }

    /// Whether the feature is only valid together with `extra_attr` (mkfs.f2fs's option parser
    /// enforces this, the library does not).
    pub const fn requires_extra_attr(self) -> bool {
        matches!(
            self,
            Feature::InodeChecksum
                | Feature::FlexibleInlineXattr
                | Feature::InodeCrtime
                | Feature::Compression
                | Feature::ProjectQuota
        )
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Feature {
    type Err = FeatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| FeatureError::Unknown { name: s.to_owned() })
    }
}

/// A feature list was not valid.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FeatureError {
    /// A name that is not a supported feature.
    #[error("unknown f2fs feature {name:?}")]
    Unknown {
        /// The name as given.
        name: String,
    },
    /// A feature that needs `extra_attr`, without it.
    #[error("f2fs feature {feature} requires extra_attr")]
    RequiresExtraAttr {
        /// The feature that needs `extra_attr`.
        feature: Feature,
    },
}

/// A set of features that satisfies the dependency rules (every feature that requires
/// `extra_attr` comes with it). The default is the set of
/// `mkfs.f2fs -O extra_attr,inode_checksum,sb_checksum,flexible_inline_xattr,inode_crtime,lost_found`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Features(u32);

impl Features {
    /// No features at all.
    pub const EMPTY: Features = Features(0);

    /// Validates a set of features.
    pub fn new(features: impl IntoIterator<Item = Feature>) -> Result<Self, FeatureError> {
        let bits = features.into_iter().fold(0, |bits, f| bits | f.bit());
        let set = Features(bits);
        match set.iter().find(|f| f.requires_extra_attr()) {
            Some(feature) if !set.contains(Feature::ExtraAttr) => {
                Err(FeatureError::RequiresExtraAttr { feature })
            }
            _ => Ok(set),
        }
    }

    /// Whether `feature` is in the set.
    pub const fn contains(self, feature: Feature) -> bool {
        self.0 & feature.bit() != 0
    }

    /// The features of the set, in [`Feature::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// The `F2FS_FEATURE_*` bits (CPU order) for `c.feature`.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The bits for the library's `c.feature`, as mkfs.f2fs's option parser sets them:
    /// `project_quota` also sets `quota_ino` (the superblock then lists both).
    pub(crate) const fn library_bits(self) -> u32 {
        if self.contains(Feature::ProjectQuota) {
            self.0 | Feature::Quota.bit()
        } else {
            self.0
        }
    }

    /// The quota files to create (`c.quota_bits`), as mkfs.f2fs's option parser sets them: user
    /// and group quota with `quota`, project quota with `project_quota`.
    pub(crate) const fn quota_bits(self) -> u32 {
        // quota.h: QUOTA_{USR,GRP,PRJ}_BIT = 1 << {USR,GRP,PRJ}QUOTA, the kernel's 0, 1, 2.
        const USR_GRP: u32 = 1 << 0 | 1 << 1;
        const PRJ: u32 = 1 << 2;
        let user_group = if self.contains(Feature::Quota) {
            USR_GRP
        } else {
            0
        };
        let project = if self.contains(Feature::ProjectQuota) {
            PRJ
        } else {
            0
        };
        user_group | project
    }
}

impl Default for Features {
    fn default() -> Self {
        Features(
            Feature::ExtraAttr.bit()
                | Feature::InodeChecksum.bit()
                | Feature::SbChecksum.bit()
                | Feature::FlexibleInlineXattr.bit()
                | Feature::InodeCrtime.bit()
                | Feature::LostFound.bit(),
        )
    }
}

/// The mkfs.f2fs `-O` syntax: names separated by commas; the empty string is no features.
impl FromStr for Features {
    type Err = FeatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let names = s.split(',').map(str::trim).filter(|n| !n.is_empty());
        Features::new(names.map(str::parse).collect::<Result<Vec<Feature>, _>>()?)
    }
}

/// Comma-separated names, as `mkfs.f2fs -O` takes them.
impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, feature) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(feature.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_mkfs_set() {
        let parsed: Features =
            "extra_attr,inode_checksum,sb_checksum,flexible_inline_xattr,inode_crtime,lost_found"
                .parse()
                .unwrap();
        assert_eq!(parsed, Features::default());
        assert_eq!(Features::default().bits(), 0x0b68);
        assert_eq!(Features::default().quota_bits(), 0);
        assert_eq!(Features::default().library_bits(), 0x0b68);
    }

    #[test]
    fn quota_follows_mkfs() {
        let project: Features = "extra_attr,project_quota".parse().unwrap();
        assert_eq!(project.quota_bits(), 0b100);
        assert_eq!(project.library_bits(), 0x98);
        let both: Features = "extra_attr,project_quota,quota".parse().unwrap();
        assert_eq!(both.quota_bits(), 0b111);
        assert_eq!("quota".parse::<Features>().unwrap().quota_bits(), 0b011);
    }

    #[test]
    fn features_that_need_extra_attr_are_refused_without_it() {
        for feature in Feature::ALL {
            let alone = Features::new([feature]);
            if feature.requires_extra_attr() {
                assert_eq!(alone, Err(FeatureError::RequiresExtraAttr { feature }));
                assert!(Features::new([feature, Feature::ExtraAttr]).is_ok());
            } else {
                assert_eq!(alone.map(Features::bits), Ok(feature.bit()));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for feature in Feature::ALL {
            assert_eq!(feature.name().parse::<Feature>(), Ok(feature));
        }
        let all = Features::new(Feature::ALL).unwrap();
        assert_eq!(all.to_string().parse::<Features>(), Ok(all));
        assert_eq!("".parse::<Features>(), Ok(Features::EMPTY));
        assert_eq!(
            "extra_attr,casefold".parse::<Features>(),
            Err(FeatureError::Unknown {
                name: "casefold".to_owned()
            })
        );
    }
}
