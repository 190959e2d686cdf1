//! The message an admin signs for a request (spec 6.5): the version line, the nonce, the
//! request path without its query, and the SHA-256 of the exact body bytes, each on its own
//! line.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The SSHSIG namespace of every signature.
pub const NAMESPACE: &str = "atomixos-reapply";
/// The first line of the signed message.
pub const VERSION_LINE: &str = "atomixos-reapply-v1";

/// `atomixos-reapply-v1\nnonce:<nonce>\npath:<path>\nsha256:<hex of body>\n`.
pub fn signed_message(nonce: &str, path: &str, body: &[u8]) -> String {
    let hex = sha256_hex(body);
    format!("{VERSION_LINE}\nnonce:{nonce}\npath:{path}\nsha256:{hex}\n")
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_originals() {
        // sha256("") and the layout of the original's build_message.
        assert_eq!(
            signed_message("n0", "/api/config/export", b""),
            "atomixos-reapply-v1\nnonce:n0\npath:/api/config/export\n\
             sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
        assert_ne!(
            signed_message("n0", "/api/config", b"a"),
            signed_message("n0", "/api/config", b"b")
        );
    }
}
