//! [`Guid`]: GUIDs in RFC 4122 byte order, their text form, GPT's mixed-endian form and
//! derivation from a seed. Must not: read or write a disk.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A GUID, stored in RFC 4122 byte order (the order of its canonical text form).
///
/// GPT stores the first three fields little-endian on disk ("mixed-endian"); convert with
/// [`Guid::from_gpt_bytes`] and [`Guid::to_gpt_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid([u8; 16]);

impl Guid {
    /// The all-zero GUID; as a partition type it marks an unused entry.
    pub const NIL: Guid = Guid([0; 16]);

    /// The GUID whose canonical text is the hex digits of `value`
    /// (`0xB921B045_1DF0_41C3_AF44_4C6F280D3FAE` is `B921B045-1DF0-41C3-AF44-4C6F280D3FAE`).
    pub const fn from_u128(value: u128) -> Self {
        Guid(value.to_be_bytes())
    }

    /// From bytes in RFC 4122 order.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The bytes in RFC 4122 order.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// From the mixed-endian form GPT stores on disk.
    pub fn from_gpt_bytes(gpt: [u8; 16]) -> Self {
        Guid(swap_mixed_endian(gpt))
    }

    /// The mixed-endian form GPT stores on disk.
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        swap_mixed_endian(self.0)
    }

    /// A deterministic GUID derived from `seed`: the first 16 bytes of SHA-256(seed) with the
    /// version (4) and variant (RFC 4122) bits set, so tools treat it as an ordinary random GUID.
    pub fn from_seed(seed: &[u8]) -> Self {
        let digest = Sha256::digest(seed);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }

    /// Whether this is the nil GUID.
    pub fn is_nil(self) -> bool {
        self == Guid::NIL
    }
}

/// Reverses the byte order of the first three fields (4, 2 and 2 bytes); its own inverse.
pub(super) fn swap_mixed_endian(mut b: [u8; 16]) -> [u8; 16] {
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// A string that is not a GUID in canonical `8-4-4-4-12` hex form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GUID {text:?}: expected 8-4-4-4-12 hex digits")]
pub struct ParseGuidError {
    /// The rejected text.
    pub text: String,
}

impl FromStr for Guid {
    type Err = ParseGuidError;

    /// Accepts the canonical form in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseGuidError {
            text: text.to_owned(),
        };
        let raw = text.as_bytes();
        if raw.len() != 36 {
            return Err(err());
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in raw.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(err());
                }
                continue;
            }
            let digit = char::from(c).to_digit(16).ok_or_else(err)?;
            let byte = &mut bytes[nibbles / 2];
            // to_digit(16) is < 16, so the cast is lossless.
            *byte = (*byte << 4) | digit as u8;
            nibbles += 1;
        }
        Ok(Guid(bytes))
    }
}
