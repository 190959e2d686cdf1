//! Partition type names as `Type=` spells them (systemd's symbolic names, per architecture) and
//! the GUIDs they stand for, with what systemd knows about each type (GrowFileSystem, verity).

use std::fmt;

use serde::Serialize;

use crate::gpt::Guid;

/// CPU architectures whose root/usr partition types have symbolic names here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 32-bit ARM.
    Arm,
    /// 64-bit ARM (aarch64): the AtomixOS boards.
    Arm64,
    /// 64-bit RISC-V.
    Riscv64,
    /// 32-bit x86.
    X86,
    /// x86-64 (amd64).
    X86_64,
}

impl Arch {
    /// All architectures, in systemd's table order.
    pub const ALL: [Arch; 5] = [
        Arch::Arm,
        Arch::Arm64,
        Arch::Riscv64,
        Arch::X86,
        Arch::X86_64,
    ];

    /// systemd's name for the architecture (`arm64`, `x86-64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Arm => "arm",
            Arch::Arm64 => "arm64",
            Arch::Riscv64 => "riscv64",
            Arch::X86 => "x86",
            Arch::X86_64 => "x86-64",
        }
    }

    /// The "secondary" architecture systemd pairs with this one (32-bit for a 64-bit one).
    pub fn secondary(self) -> Option<Arch> {
        match self {
            Arch::Arm64 => Some(Arch::Arm),
            Arch::X86_64 => Some(Arch::X86),
            Arch::Arm | Arch::Riscv64 | Arch::X86 => None,
        }
    }

    /// root, root-verity, root-verity-sig, usr, usr-verity, usr-verity-sig type GUIDs.
    fn sextet(self) -> [Guid; 6] {
        let g = Guid::from_u128;
        match self {
            Arch::Arm => [
                g(0x69DAD710_2CE4_4E3C_B16C_21A1D49ABED3),
                g(0x7386CDF2_203C_47A9_A498_F2ECCE45A2D6),
                g(0x42B0455F_EB11_491D_98D3_56145BA9D037),
                g(0x7D0359A3_02B3_4F0A_865C_654403E70625),
                g(0xC215D751_7BCD_4649_BE90_6627490A4C05),
                g(0xD7FF812F_37D1_4902_A810_D76BA57B975A),
            ],
            Arch::Arm64 => [
                g(0xB921B045_1DF0_41C3_AF44_4C6F280D3FAE),
                g(0xDF3300CE_D69F_4C92_978C_9BFB0F38D820),
                g(0x6DB69DE6_29F4_4758_A7A5_962190F00CE3),
                g(0xB0E01050_EE5F_4390_949A_9101B17104E9),
                g(0x6E11A4E7_FBCA_4DED_B9E9_E1A512BB664E),
                g(0xC23CE4FF_44BD_4B00_B2D4_B41B3419E02A),
            ],
            Arch::Riscv64 => [
                g(0x72EC70A6_CF74_40E6_BD49_4BDA08E8F224),
                g(0xB6ED5582_440B_4209_B8DA_5FF7C419EA3D),
                g(0xEFE0F087_EA8D_4469_821A_4C2A96A8386A),
                g(0xBEAEC34B_8442_439B_A40B_984381ED097D),
                g(0x8F1056BE_9B05_47C4_81D6_BE53128E5B54),
                g(0xD2F9000A_7A18_453F_B5CD_4D32F77A7B32),
            ],
            Arch::X86 => [
                g(0x44479540_F297_41B2_9AF7_D131D5F0458A),
                g(0xD13C5D3B_B5D1_422A_B29F_9454FDC89D76),
                g(0x5996FC05_109C_48DE_808B_23FA0830B676),
                g(0x75250D76_8CC6_458E_BD66_BD47CC81A812),
                g(0x8F461B0D_14EE_4E81_9AA9_049B6FB97ABD),
                g(0x974A71C0_DE41_43C3_BE5D_5C5CCD1AD2C0),
            ],
            Arch::X86_64 => [
                g(0x4F68BCE3_E8CD_4DB1_96E7_FBCAF984B709),
                g(0x2C7357ED_EBD2_46D9_AEC1_23D437EC2BF5),
                g(0x41092B05_9FC8_4523_994F_2DEF0408B176),
                g(0x8484680C_9521_48C6_9C11_B0720656F69E),
                g(0x77FF5F63_E7B6_4633_ACF4_1565B864C0E6),
                g(0xE7BB33FB_06CF_4E81_8273_E543B413E2E2),
            ],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(super) const SEXTET_SUFFIXES: [(&str, &str); 6] = [
    ("root", ""),
    ("root", "-verity"),
    ("root", "-verity-sig"),
    ("usr", ""),
    ("usr", "-verity"),
    ("usr", "-verity-sig"),
];

/// Architecture-independent types, in systemd's table order.
pub(super) const GENERIC_TYPES: [(&str, u128); 9] = [
    ("esp", 0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B),
    ("xbootldr", 0xBC13C2FF_59E6_4262_A352_B275FD6F7172),
    ("swap", 0x0657FD6D_A4AB_43C4_84E5_0933C84B4F4F),
    ("home", 0x933AC7E1_2EB4_4F13_B844_0E14E2AEF915),
    ("srv", 0x3B8F8425_20E0_4F3B_907F_1A25A76F98E8),
    ("var", 0x4D21B016_B534_45C2_A9FB_5C16E091FD2D),
    ("tmp", 0x7EC6F557_3BC5_4ACA_B293_16EF5DF639D1),
    ("user-home", 0x773F91EF_66D4_49B5_BD83_D683BF40AD16),
    ("linux-generic", 0x0FC63DAF_8483_4772_8E79_3D69D8477DE4),
];

/// The type GUID a `Type=` value names: `esp`, `xbootldr`, `swap`, `home`, `srv`, `var`, `tmp`,
/// `user-home`, `linux-generic`; `root-{arch}`, `usr-{arch}` and their `-verity` and
/// `-verity-sig` forms for the architectures of [`Arch`]; `root`, `usr`, ... (without an
/// architecture) for `native`, and `root-secondary`, ... for its [`Arch::secondary`]. `None` if
/// the name is not one of these (a literal GUID is handled by the parser, not here).
pub fn partition_type(name: &str, native: Arch) -> Option<Guid> {
    if let Some((_, v)) = GENERIC_TYPES.iter().find(|(n, _)| *n == name) {
        return Some(Guid::from_u128(*v));
    }
    let (class, rest) = if let Some(rest) = name.strip_prefix("root") {
        ("root", rest)
    } else if let Some(rest) = name.strip_prefix("usr") {
        ("usr", rest)
    } else {
        return None;
    };
    let (arch, suffix) = if let Some(rest) = rest.strip_prefix("-secondary") {
        (native.secondary()?, rest)
    } else if let Some(arch) = Arch::ALL
        .iter()
        .copied()
        .filter(|a| rest.starts_with(&format!("-{}", a.name())))
        .max_by_key(|a| a.name().len())
    {
        (arch, &rest[1 + arch.name().len()..])
    } else {
        (native, rest)
    };
    let index = SEXTET_SUFFIXES
        .iter()
        .position(|(c, s)| *c == class && *s == suffix)?;
    Some(arch.sextet()[index])
}

/// systemd's name for a type GUID: the architecture-specific name for root/usr types
/// (`root-arm64`, never the `root` alias), as `gpt_partition_type_uuid_to_string()` returns it.
pub fn type_name(guid: Guid) -> Option<String> {
    for arch in Arch::ALL {
        if let Some(i) = arch.sextet().iter().position(|g| *g == guid) {
            let (class, suffix) = SEXTET_SUFFIXES[i];
            return Some(format!("{class}-{}{suffix}", arch.name()));
        }
    }
    GENERIC_TYPES
        .iter()
        .find(|(_, v)| Guid::from_u128(*v) == guid)
        .map(|(n, _)| (*n).to_owned())
}

/// Whether systemd sets the GrowFileSystem attribute (bit 59) on a new partition of this type by
/// default (`gpt_partition_type_knows_growfs()`: root, usr, home, srv, var, tmp, xbootldr).
pub fn type_knows_growfs(guid: Guid) -> bool {
    let root_or_usr = Arch::ALL.iter().any(|a| {
        let s = a.sextet();
        s[0] == guid || s[3] == guid
    });
    root_or_usr
        || GENERIC_TYPES.iter().any(|(name, v)| {
            ["home", "srv", "var", "tmp", "xbootldr"].contains(name) && Guid::from_u128(*v) == guid
        })
}

/// Whether the type is a root or usr verity (hash) type, on which systemd sets the ReadOnly
/// attribute (bit 60) of a new partition by default.
pub fn type_is_verity(guid: Guid) -> bool {
    Arch::ALL.iter().any(|a| {
        let s = a.sextet();
        s[1] == guid || s[4] == guid
    })
}
