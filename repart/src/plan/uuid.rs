//! UUIDs as systemd-repart derives them: HMAC-SHA256 of a seed ([`derive_uuid`]), and GUIDs in
//! the plan's JSON.

use serde::Serializer;
use sha2::{Digest, Sha256};

use crate::gpt::Guid;

/// HMAC-SHA256 of `token` keyed with `key`, first half, marked as a v4 UUID: systemd's
/// `derive_uuid()`. The disk GUID of a new table is `derive_uuid(seed, "disk-uuid")`; systemd
/// derives a new file system's UUID as `derive_uuid(partition_uuid, "file-system-uuid")`.
pub fn derive_uuid(key: Guid, token: &str) -> Guid {
    v4(hmac_sha256(&key.to_bytes(), token.as_bytes()))
}

/// systemd's `partition_acquire_uuid()`: HMAC-SHA256(seed, type) for the first partition of a
/// type, HMAC-SHA256(seed, type || le64(k)) for the k-th later one.
pub(super) fn partition_uuid(seed: Guid, type_guid: Guid, k: u64, retry: u64) -> Guid {
    let mut msg = type_guid.to_bytes().to_vec();
    if k > 0 || retry > 0 {
        msg.extend_from_slice(&k.to_le_bytes());
    }
    if retry > 0 {
        // Not systemd: it randomises on a collision, a plan must stay deterministic.
        msg.extend_from_slice(b"atomix-retry");
        msg.extend_from_slice(&retry.to_le_bytes());
    }
    v4(hmac_sha256(&seed.to_bytes(), &msg))
}

pub(super) fn v4(digest: [u8; 32]) -> Guid {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Guid::from_bytes(b)
}

/// RFC 2104 HMAC with SHA-256.
pub(super) fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn serialize_guid<S: Serializer>(g: &Guid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(g)
}

pub(crate) fn serialize_opt_guid<S: Serializer>(g: &Option<Guid>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.collect_str(g),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // keys longer than a block are hashed first (RFC 4231 case 6)
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(mac[..4], [0x60, 0xe4, 0x31, 0x59]);
    }

    #[test]
    fn derived_uuids_are_v4_and_keyed() {
        let seed = Guid::from_u128(0x11111111_2222_3333_4444_555555555555);
        let a = derive_uuid(seed, "disk-uuid");
        assert_eq!(a, derive_uuid(seed, "disk-uuid"));
        assert_ne!(a, derive_uuid(Guid::from_u128(1), "disk-uuid"));
        assert_eq!(a.to_bytes()[6] >> 4, 4);
        assert_eq!(a.to_bytes()[8] & 0xc0, 0x80);
        let t = crate::gpt::types::XBOOTLDR;
        assert_ne!(partition_uuid(seed, t, 0, 0), partition_uuid(seed, t, 1, 0));
        assert_ne!(partition_uuid(seed, t, 1, 0), partition_uuid(seed, t, 1, 1));
    }
}
