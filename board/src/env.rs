//! U-Boot environments and the A/B boot counters kept in them.
//!
//! Two encodings of the same variables:
//! - binary ([`Env::decode_binary`], [`Env::encode_binary`]): what `saveenv` writes and
//!   `fw_printenv` reads — a little-endian CRC32 of the data area, then `name=value` entries
//!   each ended by a NUL, an empty entry ending the list, zero padding up to the environment
//!   size (not the redundant variant with its flags byte; no board here uses it);
//! - text ([`Env::decode_text`], [`Env::encode_text`]): what `env export -t` writes and
//!   `env import -t` reads — `name=value` lines, sorted, and a trailing NUL (research P9).
//!
//! [`AbView`] reads `BOOT_ORDER` / `BOOT_A_LEFT` / `BOOT_B_LEFT` the way the generated boot.scr
//! does (missing values take their defaults) and says which slot boots next; [`mark_good`] is
//! RAUC's mark-good. [`default_from_binary`] finds the built-in default environment inside a
//! U-Boot binary: a saved environment replaces the default one completely (research P7), so
//! writing to a blank store must start from the defaults, as `fw_setenv` does.

use std::collections::BTreeMap;

use crate::Slot;

/// Failures decoding or changing an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The stored area is all 0x00 or all 0xff: nothing was ever saved.
    #[error(
        "no environment saved ({size} bytes, all {byte:#04x}): U-Boot uses its built-in default"
    )]
    Blank {
        /// Size of the area.
        size: usize,
        /// The fill byte.
        byte: u8,
    },
    /// The CRC does not match the data.
    #[error(
        "environment CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (U-Boot ignores it and uses its default)"
    )]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the data area.
        computed: u32,
    },
    /// The area is too small for a CRC and an end marker.
    #[error("environment area of {size} bytes is too small")]
    TooSmall {
        /// Size given.
        size: usize,
    },
    /// The variables do not fit the area.
    #[error("the environment needs {needed} bytes, more than the {size}-byte area")]
    TooLarge {
        /// Bytes needed (CRC included).
        needed: usize,
        /// Area size.
        size: usize,
    },
    /// An entry is not `name=value`.
    #[error("entry {index} ({entry:?}) is not name=value")]
    Entry {
        /// 1-based position.
        index: usize,
        /// The text (truncated to 64 characters).
        entry: String,
    },
    /// A name U-Boot cannot hold.
    #[error("variable name {name:?} must be non-empty without `=`, spaces, NUL or newlines")]
    Name {
        /// The name.
        name: String,
    },
    /// The U-Boot binary holds no recognisable default environment.
    #[error(
        "no built-in default environment (a NUL-separated block with bootcmd=) in the U-Boot binary"
    )]
    NoDefault,
    /// A value the encoding cannot hold.
    #[error("value of {name} must not contain NUL or newlines")]
    Value {
        /// The variable.
        name: String,
    },
}

/// A set of U-Boot environment variables, sorted by name as `env export` writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Sets `name` to `value`; an empty value deletes the variable, as `setenv name` does.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EnvError> {
        if name.is_empty() || name.contains(['=', ' ', '\0', '\n', '\t']) {
            return Err(EnvError::Name {
                name: name.to_owned(),
            });
        }
        if value.contains(['\0', '\n']) {
            return Err(EnvError::Value {
                name: name.to_owned(),
            });
        }
        if value.is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.to_owned(), value.to_owned());
        }
        Ok(())
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Decodes a saved binary environment area (the whole `CONFIG_ENV_SIZE` bytes).
    pub fn decode_binary(area: &[u8]) -> Result<Self, EnvError> {
        if area.len() < 6 {
            return Err(EnvError::TooSmall { size: area.len() });
        }
        for byte in [0x00, 0xff] {
            if area.iter().all(|&b| b == byte) {
                return Err(EnvError::Blank {
                    size: area.len(),
                    byte,
                });
            }
        }
        let stored = u32::from_le_bytes([area[0], area[1], area[2], area[3]]);
        let data = &area[4..];
        let computed = crc32fast::hash(data);
        if stored != computed {
            return Err(EnvError::Crc { stored, computed });
        }
        let mut env = Env::new();
        for (i, entry) in data.split(|&b| b == 0).enumerate() {
            if entry.is_empty() {
                break;
            }
            env.insert_entry(i + 1, &String::from_utf8_lossy(entry))?;
        }
        Ok(env)
    }

    /// Encodes the environment into an area of `size` bytes (CRC, entries, zero padding).
    pub fn encode_binary(&self, size: usize) -> Result<Vec<u8>, EnvError> {
        let mut data = Vec::with_capacity(size);
        data.extend_from_slice(&[0; 4]);
        for (k, v) in &self.vars {
            data.extend_from_slice(k.as_bytes());
            data.push(b'=');
            data.extend_from_slice(v.as_bytes());
            data.push(0);
        }
        // The empty entry that ends the list.
        data.push(0);
        if data.len() > size {
            return Err(EnvError::TooLarge {
                needed: data.len(),
                size,
            });
        }
        data.resize(size, 0);
        let crc = crc32fast::hash(&data[4..]);
        data[..4].copy_from_slice(&crc.to_le_bytes());
        Ok(data)
    }

    /// Decodes `env export -t` text: `name=value` lines; trailing NULs (U-Boot writes one) and
    /// empty lines are ignored.
    pub fn decode_text(text: &[u8]) -> Result<Self, EnvError> {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let mut env = Env::new();
        for (i, line) in String::from_utf8_lossy(&text[..end]).lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !line.is_empty() {
                env.insert_entry(i + 1, line)?;
            }
        }
        Ok(env)
    }

    /// Encodes as `env export -t` does: sorted `name=value` lines and a trailing NUL.
    pub fn encode_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.vars {
            out.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        out.push(0);
        out
    }

    fn insert_entry(&mut self, index: usize, entry: &str) -> Result<(), EnvError> {
        let bad = || EnvError::Entry {
            index,
            entry: entry.chars().take(64).collect(),
        };
        let (name, value) = entry.split_once('=').ok_or_else(bad)?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(bad());
        }
        self.vars.insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}

/// Finds U-Boot's built-in default environment in a U-Boot binary (`u-boot.bin`, or a FIT such
/// as `u-boot.itb` that holds it uncompressed): the NUL-separated `name=value` block that holds
/// `bootcmd=` and ends with an empty entry. `None` when there is none.
pub fn default_from_binary(binary: &[u8]) -> Option<Env> {
    let is_entry = |s: &[u8]| {
        let Some(eq) = s.iter().position(|&b| b == b'=') else {
            return false;
        };
        eq > 0
            && s[..eq]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'#')
            && s[eq + 1..]
                .iter()
                .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t' || b == b'\n')
    };
    let mut from = 0;
    while let Some(found) = find(&binary[from..], b"\0bootcmd=") {
        let at = from + found + 1;
        from = at;
        // Walk back over whole entries before bootcmd=.
        let mut start = at;
        while start > 1 {
            let prev_end = start - 1; // the NUL before `start`
            let prev_start = binary[..prev_end]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |p| p + 1);
            if prev_start == prev_end || !is_entry(&binary[prev_start..prev_end]) {
                break;
            }
            start = prev_start;
        }
        let block_end = find(&binary[at..], b"\0\0").map(|e| at + e)?;
        let mut env = Env::new();
        let mut ok = true;
        for (i, entry) in binary[start..block_end].split(|&b| b == 0).enumerate() {
            if !is_entry(entry)
                || env
                    .insert_entry(i + 1, &String::from_utf8_lossy(entry))
                    .is_err()
            {
                ok = false;
                break;
            }
        }
        if ok && env.get("bootcmd").is_some() && env.len() > 1 {
            return Some(env);
        }
    }
    None
}

/// An environment area for `binary`'s U-Boot that boots without the autoboot countdown: its
/// default environment with `bootdelay=0` (the whole default, since a saved environment
/// replaces it: P7), encoded for an area of `size` bytes.
pub fn no_bootdelay_seed(binary: &[u8], size: usize) -> Result<Vec<u8>, EnvError> {
    let mut env = default_from_binary(binary).ok_or(EnvError::NoDefault)?;
    env.set("bootdelay", "0")?;
    env.encode_binary(size)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The counters as boot.scr sees them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AbView {
    /// `BOOT_ORDER` as stored (`None`: unset, boot.scr uses `A B`).
    pub order_raw: Option<String>,
    /// The order boot.scr walks.
    pub order: Vec<Slot>,
    /// Tries left of A and B (unset values read as the board's tries).
    pub left: [(Slot, u32); 2],
    /// The slot the next boot picks; `None`: every counter is 0, so boot.scr resets them all
    /// to the board's tries and resets the board (RAUC's RESET_ALL_ZERO_TRIES).
    pub next: Option<Slot>,
}

/// The default `BOOT_ORDER`.
pub const DEFAULT_ORDER: &str = "A B";

/// Reads the counters from `env` with boot.scr's defaults (`tries` for a missing counter).
pub fn ab_view(env: &Env, tries: u32) -> AbView {
    let order_raw = env.get("BOOT_ORDER").map(str::to_owned);
    let order: Vec<Slot> = order_raw
        .as_deref()
        .unwrap_or(DEFAULT_ORDER)
        .split_whitespace()
        .filter_map(|s| match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        })
        .collect();
    let left_of = |slot: Slot| {
        env.get(slot.left_var())
            // U-Boot's `test -gt` reads decimal; anything else counts as 0 there too.
            .map_or(tries, |v| v.trim().parse().unwrap_or(0))
    };
    let left = [(Slot::A, left_of(Slot::A)), (Slot::B, left_of(Slot::B))];
    let next = order
        .iter()
        .copied()
        .find(|s| left.iter().any(|(t, n)| t == s && *n > 0));
    AbView {
        order_raw,
        order,
        left,
        next,
    }
}

/// RAUC's mark-good: the slot gets all its tries back.
pub fn mark_good(env: &mut Env, slot: Slot, tries: u32) -> Result<(), EnvError> {
    env.set(slot.left_var(), &tries.to_string())
}

/// RAUC's view of a slot, as its U-Boot bootchooser reports it: good while the slot is in the
/// boot order with tries left. (A slot that has spent some tries is still "good": RAUC's
/// mark-good after a health check must not depend on this.)
pub fn is_good(view: &AbView, slot: Slot) -> bool {
    view.order.contains(&slot) && view.left.iter().any(|(s, n)| *s == slot && *n > 0)
}

/// RAUC's mark-bad: the slot leaves the boot order and has no tries left, so boot.scr passes it
/// by. When no slot would be left in the order, `BOOT_ORDER` is deleted instead: boot.scr then
/// walks its default order, where the slot has no tries, rather than an empty one.
pub fn mark_bad(env: &mut Env, slot: Slot, tries: u32) -> Result<(), EnvError> {
    let rest: Vec<&str> = ab_view(env, tries)
        .order
        .iter()
        .filter(|s| **s != slot)
        .map(|s| s.name())
        .collect();
    env.set("BOOT_ORDER", &rest.join(" "))?;
    env.set(slot.left_var(), "0")
}

/// RAUC's set-primary (after an install, or `rauc status mark-active`): the slot goes first in
/// the boot order, the others keep their order behind it, and it gets all its tries.
pub fn set_primary(env: &mut Env, slot: Slot, tries: u32) -> Result<(), EnvError> {
    let order: Vec<&str> = std::iter::once(slot)
        .chain(ab_view(env, tries).order.into_iter().filter(|s| *s != slot))
        .map(Slot::name)
        .collect();
    env.set(slot.left_var(), &tries.to_string())?;
    env.set("BOOT_ORDER", &order.join(" "))
}

/// The counters of a freshly made image: `BOOT_ORDER=A B`, every slot at `tries`.
pub fn initial_counters(tries: u32) -> Env {
    let mut env = Env::new();
    env.vars.insert("BOOT_ORDER".into(), DEFAULT_ORDER.into());
    for slot in Slot::ALL {
        env.vars.insert(slot.left_var().into(), tries.to_string());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut e = Env::new();
        for (k, v) in pairs {
            e.set(k, v).unwrap();
        }
        e
    }

    #[test]
    fn rauc_states_follow_its_uboot_backend() {
        let mut e = initial_counters(3);
        let view = |e: &Env| ab_view(e, 3);
        assert!(is_good(&view(&e), Slot::A) && is_good(&view(&e), Slot::B));

        mark_bad(&mut e, Slot::A, 3).unwrap();
        assert_eq!(e.get("BOOT_ORDER"), Some("B"));
        assert_eq!(e.get("BOOT_A_LEFT"), Some("0"));
        assert!(!is_good(&view(&e), Slot::A));
        assert_eq!(view(&e).next, Some(Slot::B));

        set_primary(&mut e, Slot::A, 3).unwrap();
        assert_eq!(e.get("BOOT_ORDER"), Some("A B"));
        assert_eq!(e.get("BOOT_A_LEFT"), Some("3"));
        assert!(is_good(&view(&e), Slot::A));

        set_primary(&mut e, Slot::B, 3).unwrap();
        assert_eq!(e.get("BOOT_ORDER"), Some("B A"));

        // A spent try still reads good; only the order and the count decide.
        e.set("BOOT_B_LEFT", "1").unwrap();
        assert!(is_good(&view(&e), Slot::B));

        // The last slot out of the order: the order goes back to boot.scr's default.
        let mut only = env(&[("BOOT_ORDER", "A"), ("BOOT_A_LEFT", "3")]);
        mark_bad(&mut only, Slot::A, 3).unwrap();
        assert_eq!(only.get("BOOT_ORDER"), None);
        assert_eq!(view(&only).order, vec![Slot::A, Slot::B]);
        assert_eq!(view(&only).next, Some(Slot::B));
    }

    #[test]
    fn binary_round_trip_and_layout() {
        let e = env(&[("bootdelay", "0"), ("BOOT_ORDER", "A B")]);
        let area = e.encode_binary(0x1000).unwrap();
        assert_eq!(area.len(), 0x1000);
        assert_eq!(&area[4..31], b"BOOT_ORDER=A B\0bootdelay=0\0");
        assert_eq!(area[31], 0);
        assert_eq!(
            u32::from_le_bytes(area[..4].try_into().unwrap()),
            crc32fast::hash(&area[4..])
        );
        assert_eq!(Env::decode_binary(&area).unwrap(), e);
    }

    #[test]
    fn a_flipped_bit_is_a_crc_error() {
        let mut area = env(&[("a", "1")]).encode_binary(64).unwrap();
        area[5] ^= 1;
        assert!(matches!(
            Env::decode_binary(&area),
            Err(EnvError::Crc { .. })
        ));
    }

    #[test]
    fn blank_areas_are_named_blank() {
        assert!(matches!(
            Env::decode_binary(&[0xff; 64]),
            Err(EnvError::Blank { byte: 0xff, .. })
        ));
        assert!(matches!(
            Env::decode_binary(&[0; 64]),
            Err(EnvError::Blank { byte: 0, .. })
        ));
    }

    #[test]
    fn too_large_is_refused() {
        let e = env(&[("x", &"y".repeat(100))]);
        assert_eq!(
            e.encode_binary(64),
            Err(EnvError::TooLarge {
                needed: 4 + 103 + 1,
                size: 64
            })
        );
    }

    #[test]
    fn text_matches_env_export() {
        let e = env(&[
            ("BOOT_B_LEFT", "3"),
            ("BOOT_A_LEFT", "0"),
            ("BOOT_ORDER", "A B"),
        ]);
        // The exact bytes research saw U-Boot write (P9).
        assert_eq!(
            e.encode_text(),
            b"BOOT_A_LEFT=0\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n\0"
        );
        assert_eq!(Env::decode_text(&e.encode_text()).unwrap(), e);
        assert_eq!(
            Env::decode_text(b"a=1\r\n\nb=\n").unwrap().get("a"),
            Some("1")
        );
    }

    #[test]
    fn malformed_text_names_the_line() {
        let err = Env::decode_text(b"a=1\nnonsense\n").unwrap_err();
        assert_eq!(
            err,
            EnvError::Entry {
                index: 2,
                entry: "nonsense".into()
            }
        );
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut e = Env::new();
        assert!(matches!(e.set("a=b", "1"), Err(EnvError::Name { .. })));
        assert!(matches!(e.set("", "1"), Err(EnvError::Name { .. })));
        assert!(matches!(e.set("a", "1\n2"), Err(EnvError::Value { .. })));
        e.set("a", "1").unwrap();
        e.set("a", "").unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn ab_view_follows_the_script() {
        let v = ab_view(&Env::new(), 3);
        assert_eq!(v.order, [Slot::A, Slot::B]);
        assert_eq!(v.left, [(Slot::A, 3), (Slot::B, 3)]);
        assert_eq!(v.next, Some(Slot::A));

        let e = env(&[("BOOT_A_LEFT", "0"), ("BOOT_B_LEFT", "2")]);
        assert_eq!(ab_view(&e, 3).next, Some(Slot::B));

        let e = env(&[("BOOT_ORDER", "B A"), ("BOOT_B_LEFT", "1")]);
        assert_eq!(ab_view(&e, 3).next, Some(Slot::B));

        let e = env(&[("BOOT_A_LEFT", "0"), ("BOOT_B_LEFT", "0")]);
        assert_eq!(ab_view(&e, 3).next, None);

        let e = env(&[("BOOT_ORDER", "B"), ("BOOT_B_LEFT", "0")]);
        assert_eq!(ab_view(&e, 3).next, None, "A is not in the order");
    }

    #[test]
    fn mark_good_restores_the_tries() {
        let mut e = env(&[("BOOT_A_LEFT", "0"), ("BOOT_B_LEFT", "1")]);
        mark_good(&mut e, Slot::B, 3).unwrap();
        assert_eq!(e.get("BOOT_B_LEFT"), Some("3"));
        assert_eq!(e.get("BOOT_A_LEFT"), Some("0"));
        assert_eq!(
            initial_counters(3).encode_text(),
            b"BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n\0"
        );
    }

    #[test]
    fn default_env_is_found_between_other_strings() {
        let mut bin = b"junk\0Insufficient RAM\0".to_vec();
        bin.extend_from_slice(b"bootcmd=run distro_bootcmd\0bootdelay=2\0arch=arm\0\0more\0");
        let e = default_from_binary(&bin).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e.get("bootdelay"), Some("2"));
        assert!(default_from_binary(b"nothing here\0\0").is_none());
        let seed = no_bootdelay_seed(&bin, 0x1000).unwrap();
        let back = Env::decode_binary(&seed).unwrap();
        assert_eq!(back.get("bootdelay"), Some("0"));
        assert_eq!(back.get("bootcmd"), Some("run distro_bootcmd"));
        assert_eq!(no_bootdelay_seed(b"x", 0x1000), Err(EnvError::NoDefault));
    }
}
