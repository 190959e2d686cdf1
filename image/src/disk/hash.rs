//! SHA-256 of image files and inputs; a sparse file's holes are hashed as the zeros they read
//! as, without reading them.
//!
//! Must not: write anything.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// Size and SHA-256 (lowercase hex) of the file at `path`; holes are hashed without being read.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((meta.len(), sha256_of(&file, meta.len())?))
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the first `size` bytes of `file`, reading only its data extents: holes are hashed
/// as the zeros they read as, without reading them (a 1.2 GiB image is mostly holes).
pub(super) fn sha256_of(file: &File, size: u64) -> io::Result<String> {
    const CHUNK: u64 = 4 * MIB;
    let zeros = vec![0u8; CHUNK as usize];
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hasher = Sha256::new();
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
            Ok(at) => at.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        while pos < data {
            let n = (data - pos).min(CHUNK);
            hasher.update(&zeros[..n as usize]);
            pos += n;
        }
        if pos == size {
            break;
        }
        let hole = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(pos))?.min(size);
        while pos < hole {
            let n = (hole - pos).min(CHUNK);
            file.read_exact_at(&mut buf[..n as usize], pos)?;
            hasher.update(&buf[..n as usize]);
            pos += n;
        }
    }
    Ok(hex(&hasher.finalize()))
}
