//! The inputs a qemu-virt test boot is built from, shared by the T3 tests and the benchmarks:
//! the initramfs spec (our `/init`, the board's modules, optionally its repart data) and the
//! disk image holding the probe rootfs. The building itself is `atomix-image`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_board::{Board, BoardError};
use atomix_image::disk::{
    self, BootSource, DiskError, DiskLayout, DiskReport, DiskSpec, RootfsSource,
};
use atomix_image::initramfs::{InitramfsSpec, RepartSpec};

use atomix_board::bootscript::{self, BuildInfo};
use atomix_board::uimage;
use atomix_image::flashable::{self, Inputs};
use atomix_qemu::{FlashBankError, Forward, QemuConfig};

use crate::{Artifacts, HarnessError, qemu_log_path};

/// A qemu-virt image as flashed (sparse), and the boot files an update writes into a slot
/// beside its rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashedImage {
    /// The image.
    pub disk: PathBuf,
    /// `Image`, `initrd` and `boot.scr`, for `atomix_image::slot::write_slot`.
    pub boot_files: PathBuf,
}

/// The version every test image's boot.scr echoes.
pub const TEST_IMAGE_VERSION: &str = "test";

impl Artifacts {
    /// Builds in `dir` the qemu-virt image (`disk.img`, `size` bytes, sparse) of the rootfs
    /// `squashfs` with our initramfs (repart data included), as `atomix image build` makes it,
    /// its boot.scr echoing `build_id` and [`TEST_IMAGE_VERSION`]; and the boot files of a slot.
    ///
    /// # Errors
    /// The initramfs, the image or the boot files cannot be made.
    pub fn flashed_image(
        &self,
        squashfs: &Path,
        size: u64,
        dir: &Path,
        build_id: &str,
    ) -> anyhow::Result<FlashedImage> {
        let board = Board::builtin("qemu-virt")?;
        let initramfs = dir.join("initramfs.img");
        atomix_image::initramfs::build(&self.qemu_virt_initramfs(true)?, &initramfs)?;
        let disk = dir.join("disk.img");
        flashable::build(
            &board,
            &Inputs {
                rootfs: RootfsSource::Squashfs(squashfs.to_owned()),
                kernel: self.kernel_image.clone(),
                initramfs: initramfs.clone(),
                dtb: None,
                loader_dir: None,
                build_id: Some(build_id.to_owned()),
                version: TEST_IMAGE_VERSION.to_owned(),
                epoch: 0,
                seed: None,
                size: Some(size),
            },
            &disk,
            &mut |_| {},
        )?;
        let boot_files = dir.join("boot-files");
        std::fs::create_dir_all(&boot_files)?;
        std::fs::copy(&self.kernel_image, boot_files.join("Image"))?;
        std::fs::copy(&initramfs, boot_files.join("initrd"))?;
        let info = BuildInfo::new(build_id, TEST_IMAGE_VERSION)?;
        let script = uimage::encode_script(
            &bootscript::image_name(&info),
            0,
            bootscript::render(&board, &info).as_bytes(),
        )?;
        std::fs::write(boot_files.join("boot.scr"), script)?;
        Ok(FlashedImage { disk, boot_files })
    }

    /// [`Artifacts::uboot_config`] for the real root filesystem: 2 GiB, two CPUs, and the
    /// device's two NICs ([`atomix_qemu::appliance_nics`]: restricted user networking) with
    /// `wan` and `lan` forwarded from the host's 127.0.0.1.
    ///
    /// # Errors
    /// As [`Artifacts::uboot_config`].
    pub fn appliance_config(
        &self,
        disk: &Path,
        timeout: Duration,
        log_name: &str,
        wan: Vec<Forward>,
        lan: Vec<Forward>,
    ) -> Result<QemuConfig, HarnessError> {
        let [mut wan_nic, mut lan_nic] = atomix_qemu::appliance_nics();
        wan_nic.forwards = wan;
        lan_nic.forwards = lan;
        Ok(QemuConfig {
            nics: vec![wan_nic, lan_nic],
            memory_mib: 2048,
            cpus: 2,
            ..self.uboot_config(disk, timeout, log_name)?
        })
    }

    /// An emptied directory `<target>/systest-tmp/<name>` for one test binary's fixtures.
    ///
    /// # Errors
    /// [`HarnessError::CreateDir`] if it cannot be emptied or made.
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        let dir = self.target_dir.join("systest-tmp").join(name);
        let made = match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::create_dir_all(&dir),
        };
        made.map_err(|source| HarnessError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// The initramfs of a qemu-virt test boot: our `/init` and the board's modules; with
    /// `repart`, also the board's repart definitions and first-boot modules.
    ///
    /// # Errors
    /// The board profile does not load.
    pub fn qemu_virt_initramfs(&self, repart: bool) -> Result<InitramfsSpec, BoardError> {
        let board = Board::builtin("qemu-virt")?;
        Ok(InitramfsSpec {
            modules_root: Some(self.modules_root.clone()),
            modules: board.modules.clone(),
            repart: repart
                .then(|| RepartSpec::from_board(board.repart.definitions, &board.repart.modules)),
            ..InitramfsSpec::new(&self.init_binary)
        })
    }

    /// A disk image as flashed (DESIGN section 3: boot-a with `Image` and `initrd`, rootfs-a
    /// holding `rootfs`), grown sparsely to `size` if given.
    ///
    /// # Errors
    /// What [`disk::build`] reports.
    pub fn probe_disk(
        &self,
        rootfs: &Path,
        initramfs: &Path,
        seed: &str,
        size: Option<u64>,
        out: &Path,
    ) -> Result<DiskReport, DiskError> {
        disk::build(
            &DiskSpec {
                layout: DiskLayout::atomix().map_err(|source| DiskError::Layout { source })?,
                loader: Vec::new(),
                boot_files: vec![
                    (
                        "Image".to_owned(),
                        BootSource::File(self.kernel_image.clone()),
                    ),
                    ("initrd".to_owned(), BootSource::File(initramfs.to_owned())),
                ],
                rootfs: RootfsSource::Dir(rootfs.to_owned()),
                epoch: 0,
                seed: seed.to_owned(),
                size,
            },
            out,
            &mut |_| {},
        )
    }

    /// The QEMU configuration of a boot through the qemu-virt board's U-Boot (`-bios`) and the
    /// boot.scr on `disk`, as on a board: no kernel, initramfs or command line of its own. Flash
    /// bank 1 holds U-Boot's own default environment with `bootdelay=0` (made once per call in
    /// `<target>/systest-tmp/`), so no boot waits out the countdown. `-no-reboot`: every reset
    /// (U-Boot's or the kernel's) and every panic ends the run, one boot attempt per run.
    ///
    /// # Errors
    /// The board profile does not load, the firmware cannot be read, or the seed not written.
    pub fn uboot_config(
        &self,
        disk: &Path,
        timeout: Duration,
        log_name: &str,
    ) -> Result<QemuConfig, HarnessError> {
        let board = Board::builtin("qemu-virt").map_err(|e| HarnessError::Board(Box::new(e)))?;
        let firmware = board
            .firmware
            .ok_or_else(|| HarnessError::MissingArtifact {
                what: "qemu-virt firmware entry",
                path: PathBuf::from("board/profiles/qemu-virt.toml"),
                make: "add [firmware] to the profile",
            })?;
        let bios = PathBuf::from(&firmware.bios);
        let seed_dir = self.target_dir.join("systest-tmp");
        std::fs::create_dir_all(&seed_dir).map_err(|source| HarnessError::CreateDir {
            path: seed_dir.clone(),
            source,
        })?;
        let seed = seed_dir.join("uboot-env-bootdelay0.img");
        atomix_qemu::write_no_bootdelay_bank(&bios, firmware.env_size, &seed).map_err(
            |e| match e {
                FlashBankError::ReadFirmware { path, source } => {
                    HarnessError::Firmware { path, source }
                }
                FlashBankError::Seed { path, source } => HarnessError::EnvSeed { path, source },
                FlashBankError::Write { path, source } => HarnessError::Write { path, source },
                e @ FlashBankError::EnvSize { .. } => HarnessError::Write {
                    path: seed.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                },
            },
        )?;
        Ok(QemuConfig {
            bios: Some(bios),
            flash_bank1: Some(seed),
            disks: vec![disk.to_owned()],
            timeout,
            console_log: Some(qemu_log_path(log_name)),
            ..QemuConfig::default()
        })
    }
}
