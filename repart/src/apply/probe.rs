//! File-system signatures: reading a partition's first bytes (O_DIRECT-safe) and naming what
//! they hold ([`probe_signature`]), or what a disk without a GPT holds instead. Must not: write.

use std::fs::File;
use std::io;

/// Bytes of a partition read to look for a file-system signature (btrfs's is at 64 KiB + 64).
const PROBE_BYTES: usize = 128 * 1024;

/// The first [`PROBE_BYTES`] of a partition (less if it is smaller), read with an aligned buffer
/// so that it works on an O_DIRECT descriptor.
pub(super) fn read_head(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    const ALIGN: usize = 4096;
    let want = usize::try_from(len).map_or(PROBE_BYTES, |l| l.min(PROBE_BYTES));
    let padded = want.div_ceil(ALIGN) * ALIGN;
    let mut raw = vec![0u8; padded + ALIGN];
    let skip = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[skip..skip + padded];
    let mut done = 0;
    while done < padded {
        match std::os::unix::fs::FileExt::read_at(file, &mut buf[done..], start + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf[..want.min(done)].to_vec())
}

/// The name of the file system (or other content) whose signature starts `head` (the first
/// bytes of a partition), if any: f2fs (either superblock), vfat, ext2/3/4, squashfs, xfs,
/// btrfs, erofs, LUKS, swap. A partition without one holds no file system.
pub fn probe_signature(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    const F2FS: [u8; 4] = 0xF2F5_2010u32.to_le_bytes();
    if at(1024, &F2FS) || at(4096 + 1024, &F2FS) {
        return Some("f2fs");
    }
    if at(510, &[0x55, 0xAA]) && (at(54, b"FAT") || at(82, b"FAT")) {
        return Some("vfat");
    }
    if at(1080, &[0x53, 0xEF]) {
        return Some("ext4");
    }
    if at(0, b"hsqs") {
        return Some("squashfs");
    }
    if at(0, b"XFSB") {
        return Some("xfs");
    }
    if at(65600, b"_BHRfS_M") {
        return Some("btrfs");
    }
    if at(1024, &0xE0F5_E1E2u32.to_le_bytes()) {
        return Some("erofs");
    }
    if at(0, b"LUKS\xba\xbe") {
        return Some("crypto_LUKS");
    }
    if at(4086, b"SWAPSPACE2") || at(65526, b"SWAPSPACE2") {
        return Some("swap");
    }
    None
}

/// What a disk without a GPT holds instead, if anything: an MBR partition table or a file
/// system on the whole disk. Such a disk is never given a new table.
pub(super) fn not_gpt_content(head: &[u8]) -> Option<String> {
    if let Some(fs) = probe_signature(head) {
        return Some(format!("a {fs} file system on the whole disk"));
    }
    if head.get(510..512) == Some(&[0x55, 0xAA][..]) {
        let used = (0..4).any(|i| head.get(446 + 16 * i + 4).is_some_and(|&t| t != 0));
        if used {
            return Some("an MBR partition table".to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(probe_signature(&head), None);
        head[1024..1028].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        assert_eq!(probe_signature(&head), Some("f2fs"));
        head[1024..1028].fill(0);
        head[5120..5124].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        assert_eq!(probe_signature(&head), Some("f2fs"), "second superblock");
        head[5120..5124].fill(0);
        head[510] = 0x55;
        head[511] = 0xAA;
        assert_eq!(probe_signature(&head), None, "an MBR is not a FAT");
        head[54..59].copy_from_slice(b"FAT16");
        assert_eq!(probe_signature(&head), Some("vfat"));
        assert_eq!(probe_signature(&head[..100]), None, "short reads are safe");
        let mut ext = vec![0u8; 2048];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert_eq!(probe_signature(&ext), Some("ext4"));
    }

    #[test]
    fn a_disk_with_mbr_partitions_or_a_file_system_is_not_blank() {
        let mut head = vec![0u8; 4096];
        assert_eq!(not_gpt_content(&head), None);
        head[510] = 0x55;
        head[511] = 0xAA;
        assert_eq!(not_gpt_content(&head), None, "an empty MBR");
        head[446 + 16 + 4] = 0x83;
        assert!(not_gpt_content(&head).unwrap().contains("MBR"));
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        assert!(not_gpt_content(&ext).unwrap().contains("ext4"));
    }
}
