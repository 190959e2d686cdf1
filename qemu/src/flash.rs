//! Flash bank images for the `virt` machine's pflash, and the one U-Boot bank the toolkit makes:
//! U-Boot's own default environment with `bootdelay=0` ([`write_no_bootdelay_bank`]), so a boot
//! through U-Boot does not wait out the autoboot countdown.
//!
//! Must not: know which board or test wants a bank, or where it goes (callers give the path);
//! the environment format itself is `atomix_board::env`'s.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use atomix_board::env::{self, EnvError};

/// Size of a `virt` machine flash bank: QEMU refuses a pflash drive of any other size (P5).
pub const FLASH_BANK_BYTES: u64 = 64 << 20;

/// A failure to make the `bootdelay=0` flash bank.
#[derive(Debug, thiserror::Error)]
pub enum FlashBankError {
    /// The U-Boot binary cannot be read.
    #[error("cannot read the firmware {}", path.display())]
    ReadFirmware {
        /// The U-Boot binary.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The environment size does not fit this machine's address space.
    #[error("environment size {size} is too large")]
    EnvSize {
        /// The size given.
        size: u64,
    },
    /// No environment can be made from the binary (no default environment found, or it does
    /// not fit the size).
    #[error("{}: cannot make a bootdelay=0 environment", path.display())]
    Seed {
        /// The U-Boot binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: EnvError,
    },
    /// The bank cannot be written.
    #[error("cannot write the flash environment {}", path.display())]
    Write {
        /// The bank file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Writes a flash bank image for [`QemuConfig::flash_bank1`](crate::QemuConfig::flash_bank1):
/// `contents` at its start (for qemu_arm64 U-Boot, an environment area of its CONFIG_ENV_SIZE),
/// the rest left as a hole. Written beside `path` and renamed into place.
///
/// # Errors
/// `contents` is larger than a bank, or the file cannot be written.
pub fn write_flash_bank(path: &Path, contents: &[u8]) -> io::Result<()> {
    if contents.len() as u64 > FLASH_BANK_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} bytes do not fit a {FLASH_BANK_BYTES}-byte flash bank",
                contents.len()
            ),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    file.as_file().set_len(FLASH_BANK_BYTES)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes to `out` the flash bank 1 for the U-Boot binary `bios`: U-Boot's own default
/// environment (found in the binary) with `bootdelay=0`, as an environment area of `env_size`
/// bytes (the firmware's CONFIG_ENV_SIZE, `atomix_board::Firmware::env_size`), through
/// [`write_flash_bank`].
///
/// # Errors
/// The binary cannot be read or holds no default environment, the environment does not fit
/// `env_size`, or the bank cannot be written.
pub fn write_no_bootdelay_bank(
    bios: &Path,
    env_size: u64,
    out: &Path,
) -> Result<(), FlashBankError> {
    let size = usize::try_from(env_size).map_err(|_| FlashBankError::EnvSize { size: env_size })?;
    let binary = std::fs::read(bios).map_err(|source| FlashBankError::ReadFirmware {
        path: bios.to_path_buf(),
        source,
    })?;
    let area = env::no_bootdelay_seed(&binary, size).map_err(|source| FlashBankError::Seed {
        path: bios.to_path_buf(),
        source,
    })?;
    write_flash_bank(out, &area).map_err(|source| FlashBankError::Write {
        path: out.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_banks_are_64_mib_with_the_contents_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.img");
        write_flash_bank(&path, b"env").unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, FLASH_BANK_BYTES);
        assert_eq!(&data[..4], b"env\0");
        assert!(data[3..].iter().all(|&b| b == 0));
        let too_big = vec![0u8; FLASH_BANK_BYTES as usize + 1];
        assert!(write_flash_bank(&dir.path().join("big.img"), &too_big).is_err());
        assert!(!dir.path().join("big.img").exists());
    }

    #[test]
    fn the_bootdelay_bank_holds_the_binary_defaults_with_bootdelay_0() {
        let dir = tempfile::tempdir().unwrap();
        let bios = dir.path().join("u-boot.bin");
        let mut binary = b"code\0".to_vec();
        binary.extend_from_slice(b"bootcmd=run distro_bootcmd\0bootdelay=2\0arch=arm\0\0tail\0");
        std::fs::write(&bios, &binary).unwrap();
        let bank = dir.path().join("bank.img");
        write_no_bootdelay_bank(&bios, 0x1000, &bank).unwrap();
        let data = std::fs::read(&bank).unwrap();
        assert_eq!(data.len() as u64, FLASH_BANK_BYTES);
        let seed = env::Env::decode_binary(&data[..0x1000]).unwrap();
        assert_eq!(seed.get("bootdelay"), Some("0"));
        assert_eq!(seed.get("bootcmd"), Some("run distro_bootcmd"));
        assert!(data[0x1000..].iter().all(|&b| b == 0));

        // Each failure names what it is about, and leaves no bank behind.
        let missing = dir.path().join("missing.bin");
        let other = dir.path().join("other.img");
        let e = write_no_bootdelay_bank(&missing, 0x1000, &other).unwrap_err();
        assert!(
            matches!(&e, FlashBankError::ReadFirmware { path, .. } if *path == missing),
            "{e:?}"
        );
        std::fs::write(&missing, b"no environment\0\0").unwrap();
        let e = write_no_bootdelay_bank(&missing, 0x1000, &other).unwrap_err();
        assert!(
            matches!(
                &e,
                FlashBankError::Seed {
                    source: EnvError::NoDefault,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = write_no_bootdelay_bank(&bios, 16, &other).unwrap_err();
        assert!(matches!(&e, FlashBankError::Seed { .. }), "{e:?}");
        let e = write_no_bootdelay_bank(&bios, 0x1000, &dir.path().join("no/dir/bank.img"))
            .unwrap_err();
        assert!(matches!(&e, FlashBankError::Write { .. }), "{e:?}");
        assert!(!other.exists());
    }
}
