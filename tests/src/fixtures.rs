//! The inputs a qemu-virt test boot is built from, shared by the T3 tests and the benchmarks:
//! the initramfs spec (our `/init`, the board's modules, optionally its repart data) and the
//! disk image holding the probe rootfs. The building itself is `atomix-image`'s.

use std::path::{Path, PathBuf};

use atomix_board::{Board, BoardError};
use atomix_image::disk::{self, DiskError, DiskLayout, DiskReport, DiskSpec, RootfsSource};
use atomix_image::initramfs::{InitramfsSpec, RepartSpec};

use crate::{Artifacts, HarnessError};

impl Artifacts {
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
                layout: DiskLayout::atomix(),
                boot_files: vec![
                    ("Image".to_owned(), self.kernel_image.clone()),
                    ("initrd".to_owned(), initramfs.to_owned()),
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
}
