//! Sizes for people: the one bytes → text formatter of the workspace ([`human`]).
//!
//! Each place that prints sizes keeps its own fixed format, a [`Style`]: the partition plan
//! ("128.0 MiB"), `atomix flash` ("1169 MiB", "14.6 GiB") and `atomix inspect` ("16 MiB",
//! "13.7 GiB"). A style is data (the units it may use, when it moves up a unit, which counts it
//! writes whole); [`human`] is the one walk over the binary units that applies it.
//!
//! Must not: parse sizes (systemd's size syntax is `atomix_repart::size`'s).

use std::ops::{Range, RangeInclusive};

/// The binary units, smallest first: (name, bytes).
const UNITS: [(&str, u64); 6] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
];
/// Indices into [`UNITS`].
const B: usize = 0;
const KIB: usize = 1;
const MIB: usize = 2;
const GIB: usize = 3;
const PIB: usize = 5;

/// How a size is written: one style per place that prints sizes, each its own fixed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The partition plan table `atomix repart` prints: one decimal in the largest binary unit
    /// from KiB to PiB that the size reaches ("128.0 MiB", "1.5 GiB"), bytes below 1 KiB
    /// ("512 B").
    Plan,
    /// `atomix flash`'s target description, prompt, progress and messages: MiB below 10 GiB,
    /// whole when exact ("1169 MiB", "0 MiB") else with one decimal ("0.5 MiB"); GiB with one
    /// decimal from 10 GiB ("16.0 GiB", "14.6 GiB").
    Flash,
    /// The tables of `atomix inspect` (and `atomix rootfs`' summary): exact in the largest unit
    /// (KiB to GiB) that divides the size with a count below 10000 ("16 MiB", "1168 MiB"), else
    /// with one decimal in the largest unit it reaches ("1.0 GiB", "13.7 GiB"), bytes below
    /// 1 KiB ("512 B").
    Inspect,
}

/// A style as data, for [`human`]'s walk.
#[derive(Debug)]
struct Rules {
    /// The units it may write a decimal in (indices into [`UNITS`], smallest first); bytes
    /// ([`B`]) are always written whole.
    units: RangeInclusive<usize>,
    /// It moves up to the next unit when the size is at least this many of that unit.
    climb: u64,
    /// Sizes written as a whole count, when any are.
    whole: Option<Whole>,
}

/// Which sizes a style writes as a whole count: the largest of `units` that divides the size
/// with a count in `counts`.
#[derive(Debug)]
struct Whole {
    /// Indices into [`UNITS`], smallest first.
    units: RangeInclusive<usize>,
    /// The counts written whole.
    counts: Range<u64>,
}

impl Style {
    fn rules(self) -> Rules {
        match self {
            Self::Plan => Rules {
                units: B..=PIB,
                climb: 1,
                whole: None,
            },
            Self::Flash => Rules {
                units: MIB..=GIB,
                climb: 10,
                // Below 10 GiB (10240 MiB), where it moves up to GiB.
                whole: Some(Whole {
                    units: MIB..=MIB,
                    counts: 0..10 << 10,
                }),
            },
            Self::Inspect => Rules {
                units: B..=GIB,
                climb: 1,
                whole: Some(Whole {
                    units: KIB..=GIB,
                    counts: 1..10_000,
                }),
            },
        }
    }
}

/// `bytes` as text in `style`.
pub fn human(bytes: u64, style: Style) -> String {
    let rules = style.rules();
    if let Some(whole) = &rules.whole {
        for (name, size) in UNITS[whole.units.clone()].iter().rev() {
            if bytes.is_multiple_of(*size) && whole.counts.contains(&(bytes / size)) {
                return format!("{} {name}", bytes / size);
            }
        }
    }
    let mut unit = *rules.units.start();
    while unit < *rules.units.end() && bytes >= rules.climb.saturating_mul(UNITS[unit + 1].1) {
        unit += 1;
    }
    let (name, size) = UNITS[unit];
    if unit == B {
        format!("{bytes} B")
    } else {
        format!("{:.1} {name}", bytes as f64 / size as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_sizes() {
        let human = |bytes| human(bytes, Style::Plan);
        assert_eq!(human(512), "512 B");
        assert_eq!(human(128 << 20), "128.0 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn flash_sizes() {
        let human = |bytes| human(bytes, Style::Flash);
        assert_eq!(human(0), "0 MiB");
        assert_eq!(human(1169 << 20), "1169 MiB");
        assert_eq!(human(1 << 19), "0.5 MiB");
        assert_eq!(human(16 << 30), "16.0 GiB");
    }

    #[test]
    fn inspect_sizes() {
        let size = |bytes| human(bytes, Style::Inspect);
        assert_eq!(size(0), "0 B");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(16 << 20), "16 MiB");
        assert_eq!(size(3 << 30), "3 GiB");
        assert_eq!(size(1168 << 20), "1168 MiB");
        assert_eq!(size((1 << 30) + 1), "1.0 GiB");
        assert_eq!(size(3584), "3.5 KiB");
        assert_eq!(size(14_401_516 << 10), "13.7 GiB");
    }
}
