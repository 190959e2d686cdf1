//! Signing as an admin (spec 6.5, feature `sign`): the armored SSHSIG of a
//! [`signed_message`](crate::signed_message) in namespace [`NAMESPACE`], as `ssh-keygen -Y sign
//! -n atomixos-reapply` writes it, and the header value that carries it. Shared by the
//! operator's client (`atomix device`, which also signs through ssh-agent) and the API
//! benchmark. Reading key files, and their errors, stay with the callers.

use base64ct::{Base64, Encoding as _};
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, Signature, SshSig};

use crate::NAMESPACE;

/// The hash of every signature (what `ssh-keygen -Y sign` uses).
pub const HASH: HashAlg = HashAlg::Sha512;

/// The armored SSHSIG of `message` made with the unencrypted private key `key`.
pub fn sign(key: &PrivateKey, message: &str) -> ssh_key::Result<String> {
    let signature = match key.key_data() {
        KeypairData::Rsa(rsa) => {
            let raw = sign_rsa(rsa, &signed_data(message)?)?;
            SshSig::new(key.public_key().key_data().clone(), NAMESPACE, HASH, raw)?
        }
        _ => key.sign(NAMESPACE, HASH, message.as_bytes())?,
    };
    signature.to_pem(LineEnding::LF)
}

/// The bytes a signer signs for `message` (for a key held elsewhere, such as by ssh-agent).
pub fn signed_data(message: &str) -> ssh_key::Result<Vec<u8>> {
    SshSig::signed_data(NAMESPACE, HASH, message.as_bytes())
}

/// The armored SSHSIG of `raw`, a signature by `public` over [`signed_data`].
pub fn armor(public: &KeyData, raw: Signature) -> ssh_key::Result<String> {
    SshSig::new(public.clone(), NAMESPACE, HASH, raw)?.to_pem(LineEnding::LF)
}

/// The `X-AtomixOS-Signature` value: the strict (padded, standard alphabet) base64 of the
/// whole armored signature.
pub fn header_value(armored: &str) -> String {
    Base64::encode_string(armored.as_bytes())
}

/// An `rsa-sha2-512` signature of `data`. Not ssh-key's own: its 0.6.7 builds the private key
/// with the first prime given twice (`TryFrom<&RsaKeypair> for rsa::RsaPrivateKey`), which
/// the rsa crate refuses, so every RSA key file failed to sign.
fn sign_rsa(keypair: &RsaKeypair, data: &[u8]) -> ssh_key::Result<Signature> {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let int = rsa::BigUint::try_from;
    let private = rsa::RsaPrivateKey::from_components(
        int(&keypair.public.n)?,
        int(&keypair.public.e)?,
        int(&keypair.private.d)?,
        vec![int(&keypair.private.p)?, int(&keypair.private.q)?],
    )?;
    let signature = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(private)
        .try_sign(data)
        .map_err(|_| ssh_key::Error::Crypto)?;
    Signature::new(
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        signature.to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::Ed25519Keypair;

    #[test]
    fn an_ed25519_signature_verifies_over_its_message_only() {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let message = crate::signed_message("n0nce", "/api/validate", b"version = 1\n");
        let armored = sign(&key, &message).unwrap();
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        let sig = SshSig::from_pem(&armored).unwrap();
        let public = key.public_key();
        public.verify(NAMESPACE, message.as_bytes(), &sig).unwrap();
        let other = crate::signed_message("n0nce", "/api/validate", b"version = 2\n");
        assert!(public.verify(NAMESPACE, other.as_bytes(), &sig).is_err());
    }

    #[test]
    fn the_header_is_strict_base64_of_the_armor() {
        let armored = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
        let value = header_value(armored);
        assert!(value.ends_with('='), "padded: {value}");
        assert_eq!(Base64::decode_vec(&value).unwrap(), armored.as_bytes());
    }
}
