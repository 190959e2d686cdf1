//! The two A/B slots ([`Slot`]) and what each is called: partition numbers and labels, RAUC
//! names, the boot counter variable.

/// The two slot pairs of the AtomixOS layout (DESIGN section 3) and their RAUC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Slot {
    /// Boot partition 1, rootfs partition 2, RAUC slot `boot.0`, bootname `A`.
    A,
    /// Boot partition 3, rootfs partition 4, RAUC slot `boot.1`, bootname `B`.
    B,
}

impl Slot {
    /// Both slots, in the default boot order.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// RAUC's bootname, as in `BOOT_ORDER` and `BOOT_<name>_LEFT`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    /// GPT entry number of the slot's boot (vfat) partition.
    pub fn boot_partition(self) -> u32 {
        match self {
            Slot::A => 1,
            Slot::B => 3,
        }
    }

    /// GPT entry number of the slot's rootfs partition.
    pub fn rootfs_partition(self) -> u32 {
        self.boot_partition() + 1
    }

    /// PARTLABEL of the boot partition.
    pub fn boot_label(self) -> &'static str {
        match self {
            Slot::A => "boot-a",
            Slot::B => "boot-b",
        }
    }

    /// PARTLABEL of the rootfs partition.
    pub fn rootfs_label(self) -> &'static str {
        match self {
            Slot::A => "rootfs-a",
            Slot::B => "rootfs-b",
        }
    }

    /// The `rauc.slot=` value (the boot slot's RAUC name).
    pub fn rauc_slot(self) -> &'static str {
        match self {
            Slot::A => "boot.0",
            Slot::B => "boot.1",
        }
    }

    /// The env variable holding the slot's tries left.
    pub fn left_var(self) -> &'static str {
        match self {
            Slot::A => "BOOT_A_LEFT",
            Slot::B => "BOOT_B_LEFT",
        }
    }
}

impl std::str::FromStr for Slot {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a" | "A" | "boot.0" => Ok(Slot::A),
            "b" | "B" | "boot.1" => Ok(Slot::B),
            _ => Err(format!(
                "`{s}`: expected a slot: a or b (or boot.0, boot.1)"
            )),
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
