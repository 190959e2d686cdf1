//! The legacy U-Boot image wrapper of a boot script (`mkimage -A arm64 -O linux -T script -C none`).
//!
//! A 64-byte big-endian header (magic `0x27051956`, header CRC32, time, data size, load and
//! entry address 0, data CRC32, OS Linux, arch arm64, type script, compression none, a 32-byte
//! name), then the data: the multi-file list U-Boot's `source` expects — the script's length,
//! a zero terminator, and the script text.

/// Header magic.
const MAGIC: u32 = 0x2705_1956;
const HEADER: usize = 64;
const NAME: usize = 32;
const OS_LINUX: u8 = 5;
const ARCH_ARM64: u8 = 22;
const TYPE_SCRIPT: u8 = 6;
const COMP_NONE: u8 = 0;

/// Failures reading a script image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UimageError {
    /// Shorter than a header.
    #[error("{len} bytes is too short for a U-Boot image header")]
    Short {
        /// Bytes given.
        len: usize,
    },
    /// Not a legacy image.
    #[error("bad magic {found:#010x} (a legacy U-Boot image starts with 0x27051956)")]
    Magic {
        /// What was there.
        found: u32,
    },
    /// Header CRC mismatch.
    #[error("header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderCrc {
        /// In the header.
        stored: u32,
        /// Of the header.
        computed: u32,
    },
    /// Data CRC mismatch or size beyond the file.
    #[error("data of {size} bytes is damaged or truncated (CRC or size mismatch)")]
    Data {
        /// Size in the header.
        size: usize,
    },
    /// Not an uncompressed arm64 script.
    #[error(
        "image type {kind}, arch {arch}, compression {comp}: expected an uncompressed arm64 script"
    )]
    Kind {
        /// ih_type.
        kind: u8,
        /// ih_arch.
        arch: u8,
        /// ih_comp.
        comp: u8,
    },
    /// The script list is malformed.
    #[error("the script's part list is malformed")]
    Parts,
    /// The name does not fit.
    #[error("image name {name:?} is longer than 31 bytes")]
    Name {
        /// The name.
        name: String,
    },
}

/// A decoded script image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Image name (`mkimage -n`).
    pub name: String,
    /// Creation time (seconds since 1970).
    pub time: u32,
    /// The script text.
    pub text: Vec<u8>,
}

/// Wraps `text` as `mkimage -A arm64 -O linux -T script -C none -n NAME` does, with `time` as
/// the creation time (mkimage takes SOURCE_DATE_EPOCH): byte for byte the same output.
pub fn encode_script(name: &str, time: u32, text: &[u8]) -> Result<Vec<u8>, UimageError> {
    if name.len() >= NAME {
        return Err(UimageError::Name {
            name: name.to_owned(),
        });
    }
    let len = u32::try_from(text.len()).map_err(|_| UimageError::Parts)?;
    let mut data = Vec::with_capacity(8 + text.len());
    data.extend_from_slice(&len.to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(text);
    let size = u32::try_from(data.len()).map_err(|_| UimageError::Parts)?;

    let mut header = [0u8; HEADER];
    header[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[8..12].copy_from_slice(&time.to_be_bytes());
    header[12..16].copy_from_slice(&size.to_be_bytes());
    // load (16..20) and entry point (20..24) stay 0.
    header[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
    header[28] = OS_LINUX;
    header[29] = ARCH_ARM64;
    header[30] = TYPE_SCRIPT;
    header[31] = COMP_NONE;
    header[32..32 + name.len()].copy_from_slice(name.as_bytes());
    let hcrc = crc32fast::hash(&header);
    header[4..8].copy_from_slice(&hcrc.to_be_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

/// Checks both CRCs and returns the script; what `source` does before running it.
pub fn decode_script(image: &[u8]) -> Result<Script, UimageError> {
    if image.len() < HEADER {
        return Err(UimageError::Short { len: image.len() });
    }
    let be =
        |at: usize| u32::from_be_bytes([image[at], image[at + 1], image[at + 2], image[at + 3]]);
    if be(0) != MAGIC {
        return Err(UimageError::Magic { found: be(0) });
    }
    let mut header = [0u8; HEADER];
    header.copy_from_slice(&image[..HEADER]);
    header[4..8].fill(0);
    let computed = crc32fast::hash(&header);
    if computed != be(4) {
        return Err(UimageError::HeaderCrc {
            stored: be(4),
            computed,
        });
    }
    let size = be(12) as usize;
    let data = image
        .get(HEADER..HEADER + size)
        .filter(|d| crc32fast::hash(d) == be(24))
        .ok_or(UimageError::Data { size })?;
    let (kind, arch, comp) = (image[30], image[29], image[31]);
    if (kind, arch, comp) != (TYPE_SCRIPT, ARCH_ARM64, COMP_NONE) {
        return Err(UimageError::Kind { kind, arch, comp });
    }
    let first = data
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(UimageError::Parts)?;
    // Part sizes follow until a zero; the first part is the script.
    let mut at = 4;
    loop {
        let n = data.get(at..at + 4).ok_or(UimageError::Parts)?;
        at += 4;
        if n == [0, 0, 0, 0] {
            break;
        }
    }
    let text = data.get(at..at + first).ok_or(UimageError::Parts)?.to_vec();
    let name_bytes = &image[32..64];
    let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(NAME);
    Ok(Script {
        name: String::from_utf8_lossy(&name_bytes[..name_len]).into_owned(),
        time: be(8),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_mkimage_layout() {
        let image = encode_script("AtomixOS x", 1000, b"echo hi\n").unwrap();
        // The bytes mkimage 2023.01 writes for the same input (SOURCE_DATE_EPOCH=1000).
        assert_eq!(&image[..4], &[0x27, 0x05, 0x19, 0x56]);
        assert_eq!(&image[4..8], &[0x2c, 0x2c, 0x31, 0xd9]);
        assert_eq!(&image[24..32], &[0xd9, 0x34, 0x01, 0x62, 5, 22, 6, 0]);
        assert_eq!(&image[64..], b"\0\0\0\x08\0\0\0\0echo hi\n");
        let s = decode_script(&image).unwrap();
        assert_eq!(s.name, "AtomixOS x");
        assert_eq!(s.time, 1000);
        assert_eq!(s.text, b"echo hi\n");
    }

    #[test]
    fn damage_is_reported() {
        let image = encode_script("n", 0, b"echo hi\n").unwrap();
        let mut bad = image.clone();
        bad[70] ^= 1;
        assert!(matches!(decode_script(&bad), Err(UimageError::Data { .. })));
        let mut bad = image.clone();
        bad[40] ^= 1;
        assert!(matches!(
            decode_script(&bad),
            Err(UimageError::HeaderCrc { .. })
        ));
        assert!(matches!(
            decode_script(&image[..70]),
            Err(UimageError::Data { .. })
        ));
        assert!(matches!(
            decode_script(b"hello"),
            Err(UimageError::Short { .. })
        ));
        assert!(encode_script(&"n".repeat(32), 0, b"").is_err());
    }
}
