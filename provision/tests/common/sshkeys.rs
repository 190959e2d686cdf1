//! Keys made and messages signed by the real `ssh-keygen` (`-Y sign`), as an operator's
//! client does, and configs whose admin is such a key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64ct::{Base64, Encoding as _};

/// The smallest valid fixture.
pub const MINIMAL: &str = include_str!("../../../config/tests/fixtures/minimal.toml");
/// The admin key of [`MINIMAL`].
pub const FIXTURE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGWJTPQWixeXADe1Iu7qyvUW+Xrb1QRoB/IqOo3CBAE5 admin@laptop";

/// A key made by `ssh-keygen`.
pub struct Key {
    /// The private key file.
    pub path: PathBuf,
    /// The public key line.
    pub public: String,
}

/// `ssh-keygen -t …` (`args`) into `dir/name`, no passphrase.
pub fn keygen(dir: &Path, name: &str, args: &[&str]) -> Key {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {args:?}");
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned();
    Key { path, public }
}

/// `ssh-keygen -Y sign -n <namespace>` of `message`, base64 as the signature header carries
/// it.
pub fn sign_ns(key: &Key, message: &str, namespace: &str) -> String {
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(&key.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Base64::encode_string(&out.stdout)
}

/// `path` without its query: what a signature covers.
pub fn unqueried(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// [`sign_ns`] in the API's namespace.
pub fn sign(key: &Key, message: &str) -> String {
    sign_ns(key, message, atomix_api::NAMESPACE)
}

/// [`MINIMAL`] with `admin` as the admin's key and `extra` (more users) added.
pub fn config(admin: &str, extra: &str) -> String {
    assert!(MINIMAL.contains(FIXTURE_KEY));
    MINIMAL
        .replace(FIXTURE_KEY, admin)
        .replace("[activation]", &format!("{extra}\n[activation]"))
}
