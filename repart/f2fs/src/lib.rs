//! Formats f2fs filesystems on devices and image files through f2fs-tools 1.15's format library
//! ([`f2fs_sys`]), safely: the library keeps global state, is not thread-safe, prints to C stdout
//! and may call `exit()`, so every format runs in a forked child that sets the global
//! configuration, runs mkfs.f2fs's sequence and `_exit`s; the parent waits, captures what the
//! child printed and turns a failure into a typed [`F2fsError`].
//!
//! This crate owns the format call and its options (label, features, discard, reproducible
//! output, size). It must not decide what to format or when (that is `atomix-repart`), and it
//! does not wipe old signatures: unlike `mkfs.f2fs`, nothing here zeroes the device's first 4 MiB.
//!
//! `f2fs_devs_are_umounted` reads `/proc/mounts`: in the initrd, mount `/proc` first.
//!
//! All unsafe code (fork, the FFI calls, the global `c`) is in the private module `sys`.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod error;
mod features;
mod sys;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, WaitOptions, WaitStatus, waitpid};

pub use error::{ChildEnding, ChildMessages, F2fsError, OptionsError, Step};
pub use features::{Feature, FeatureError, Features};
pub use uuid::Uuid;

/// The longest label f2fs-tools 1.15 accepts, in bytes.
pub const MAX_LABEL_BYTES: usize = 512;

/// At most this much of the child's output is kept.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// The library's message level in the child: 0 keeps its `Info:` and `Error:` lines (they go to
/// the captured pipe, not the console). At -1 (`mkfs.f2fs -q`) some errors, such as "Device size
/// is not sufficient", are not printed at all.
const DEBUG_LEVEL: i32 = 0;

/// How to format.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FormatOptions {
    /// The volume label (`mkfs.f2fs -l`), at most [`MAX_LABEL_BYTES`] bytes of UTF-8.
    pub label: String,
    /// The features (`mkfs.f2fs -O`); the default is the set of [`Features::default`].
    pub features: Features,
    /// Discard the device before formatting (`mkfs.f2fs -t 1`). Off by default: on an image
    /// file it punches holes, on a disk it discards the whole partition.
    pub discard: bool,
    /// Fixed UUID, seed and time, for byte-identical output.
    pub reproducible: Option<Reproducible>,
    /// Use only this many sectors of the device (`mkfs.f2fs DEVICE SECTORS`), in units of the
    /// device's logical sector size (512 bytes for image files); `None` for all of it.
    pub total_sectors: Option<u64>,
}

impl FormatOptions {
    /// The default options with `label`.
    pub fn new(label: impl Into<String>) -> Self {
        FormatOptions {
            label: label.into(),
            ..FormatOptions::default()
        }
    }
}

/// Reproducible output: the same options on the same device size give the same bytes.
///
/// The superblock also records the kernel version string the format ran under (from
/// `/proc/version`), so images are identical only when made under the same kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reproducible {
    /// The filesystem UUID.
    pub uuid: Uuid,
    /// The time stamped on the root inode and checkpoint, in seconds since the epoch.
    pub time: u64,
}

/// What the child needs, prepared before the fork so that the child allocates nothing in Rust.
#[derive(Debug)]
pub(crate) struct ChildConfig {
    device: CString,
    label: CString,
    features: u32,
    quota_bits: u32,
    discard: bool,
    debug_level: i32,
    total_sectors: Option<u64>,
    reproducible: Option<ChildReproducible>,
}

#[derive(Debug)]
pub(crate) struct ChildReproducible {
    uuid: CString,
    time: libc::time_t,
}

impl ChildConfig {
    fn new(device: &Path, opts: &FormatOptions) -> Result<Self, OptionsError> {
        if opts.label.len() > MAX_LABEL_BYTES {
            return Err(OptionsError::LabelTooLong {
                len: opts.label.len(),
            });
        }
        if opts.total_sectors == Some(0) {
            return Err(OptionsError::ZeroSectors);
        }
        let reproducible = match opts.reproducible {
            Some(Reproducible { uuid, time }) => Some(ChildReproducible {
                // A hyphenated UUID never contains a NUL byte: the default is unreachable.
                uuid: CString::new(uuid.hyphenated().to_string()).unwrap_or_default(),
                time: libc::time_t::try_from(time)
                    .map_err(|_| OptionsError::TimeOutOfRange { time })?,
            }),
            None => None,
        };
        Ok(ChildConfig {
            device: CString::new(device.as_os_str().as_bytes())
                .map_err(|_| OptionsError::DevicePathNul)?,
            label: CString::new(opts.label.as_bytes()).map_err(|_| OptionsError::LabelNul)?,
            features: opts.features.library_bits(),
            quota_bits: opts.features.quota_bits(),
            discard: opts.discard,
            debug_level: DEBUG_LEVEL,
            total_sectors: opts.total_sectors,
            reproducible,
        })
    }
}

/// Formats `device` (a block device or an existing file) as f2fs, in a forked child.
///
/// Blocks until the child has ended. Safe to call repeatedly and from several threads: each
/// call is its own process with its own copy of the library's globals.
pub fn format(device: &Path, opts: &FormatOptions) -> Result<(), F2fsError> {
    let config = ChildConfig::new(device, opts).map_err(|source| F2fsError::Options {
        device: device.to_owned(),
        source,
    })?;
    let pipe_error = |e: Errno| F2fsError::Pipe {
        device: device.to_owned(),
        source: e.into(),
    };
    let (output_read, output_write) = pipe_with(PipeFlags::CLOEXEC).map_err(pipe_error)?;
    let (progress_read, progress_write) = pipe_with(PipeFlags::CLOEXEC).map_err(pipe_error)?;

    let started = Instant::now();
    let pid = sys::fork_format(&config, output_write.as_fd(), progress_write.as_fd()).map_err(
        |source| F2fsError::Fork {
            device: device.to_owned(),
            source,
        },
    )?;
    // The child holds the write ends now; ours must close for the reads to see EOF.
    drop(output_write);
    drop(progress_write);

    // Read before waiting: a child blocked on a full pipe would never end. Wait in any case.
    let read = read_capped(output_read).and_then(|output| Ok((output, read_all(progress_read)?)));
    let status = wait(pid).map_err(|source| F2fsError::Wait {
        device: device.to_owned(),
        source,
    })?;
    let (output, progress) = read.map_err(|source| F2fsError::Output {
        device: device.to_owned(),
        source,
    })?;

    let ending = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => ChildEnding::Exited(code),
        (None, Some(signal)) => ChildEnding::Signaled(signal),
        // waitpid without WUNTRACED/WCONTINUED reports only terminations.
        (None, None) => ChildEnding::Exited(-1),
    };
    let messages = ChildMessages::new(&output);
    if ending == ChildEnding::Exited(0) && progress.last() == Some(&sys::DONE) {
        log::debug!(
            "formatted {} as f2fs (label {:?}, features {}) in {} ms",
            device.display(),
            opts.label,
            opts.features,
            started.elapsed().as_millis()
        );
        if let Some(messages) = &messages {
            log::trace!("f2fs-tools: {}", messages.text());
        }
        return Ok(());
    }
    let step = progress
        .iter()
        .rev()
        .find_map(|code| Step::from_code(*code))
        .unwrap_or(Step::Setup);
    Err(F2fsError::Failed {
        device: device.to_owned(),
        step,
        ending,
        messages,
    })
}

fn read_capped(fd: OwnedFd) -> io::Result<Vec<u8>> {
    let mut file = File::from(fd);
    let mut kept = Vec::new();
    (&mut file).take(MAX_OUTPUT_BYTES).read_to_end(&mut kept)?;
    // Drain the rest so that the child never blocks on a full pipe.
    io::copy(&mut file, &mut io::sink())?;
    Ok(kept)
}

fn read_all(fd: OwnedFd) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::from(fd).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn wait(pid: Pid) -> io::Result<WaitStatus> {
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(status),
            Ok(None) => return Err(io::Error::other("waitpid returned no status")),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_forking() {
        let device = Path::new("/nonexistent/f2fs.img");
        let too_long = FormatOptions::new("x".repeat(MAX_LABEL_BYTES + 1));
        assert_eq!(
            ChildConfig::new(device, &too_long).err(),
            Some(OptionsError::LabelTooLong { len: 513 })
        );
        assert_eq!(
            ChildConfig::new(device, &FormatOptions::new("a\0b")).err(),
            Some(OptionsError::LabelNul)
        );
        let zero = FormatOptions {
            total_sectors: Some(0),
            ..FormatOptions::default()
        };
        assert_eq!(
            ChildConfig::new(device, &zero).err(),
            Some(OptionsError::ZeroSectors)
        );
        let late = FormatOptions {
            reproducible: Some(Reproducible {
                uuid: Uuid::nil(),
                time: u64::MAX,
            }),
            ..FormatOptions::default()
        };
        assert_eq!(
            ChildConfig::new(device, &late).err(),
            Some(OptionsError::TimeOutOfRange { time: u64::MAX })
        );
        let err = format(device, &too_long).unwrap_err();
        assert!(
            matches!(err, F2fsError::Options { ref device, .. } if device == Path::new("/nonexistent/f2fs.img"))
        );
        assert_eq!(
            err.to_string(),
            "invalid f2fs options for /nonexistent/f2fs.img"
        );
    }

    #[test]
    fn failures_say_device_step_and_ending() {
        let err = F2fsError::Failed {
            device: "/dev/mmcblk0p4".into(),
            step: Step::FormatDevice,
            ending: ChildEnding::Signaled(9),
            messages: None,
        };
        assert_eq!(
            err.to_string(),
            "f2fs format of /dev/mmcblk0p4 failed in f2fs_format_device (killed by signal 9)"
        );
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(ChildEnding::Exited(255).to_string(), "exit status 255");
    }

    #[test]
    fn messages_display_as_one_line() {
        let m = ChildMessages::new(b"\tInfo: x\n\tError: a\n\n\tError: b!\n").unwrap();
        assert_eq!(m.to_string(), "Error: a; Error: b!");
        assert_eq!(m.text(), "Info: x\n\tError: a\n\n\tError: b!");
        let info = ChildMessages::new(b"\tInfo: x\n\tInfo: y\n").unwrap();
        assert_eq!(info.to_string(), "Info: x; Info: y");
        assert_eq!(ChildMessages::new(b" \n\t"), None);
    }

    #[test]
    fn step_codes_round_trip_and_avoid_library_exits() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step.code()), Some(step));
            assert!(![0, 1, 255].contains(&step.exit_code()));
        }
        assert_eq!(Step::from_code(sys::DONE), None);
    }
}
