//! The crate's only unsafe code: `fork()`, the FFI calls into f2fs-tools and its global `c`.
//!
//! The child runs the sequence of mkfs.f2fs 1.15's `main()` and never returns: it ends with
//! `fflush(NULL)` and `_exit()`, with [`Step::exit_code`] for a step that returned an error. Before
//! each step it writes the step's code to the progress pipe, so the parent knows the step even
//! when the library calls `exit()` itself or a signal kills the child.
//!
//! Fork in a multi-threaded process (the host tools, the test harness): POSIX only promises
//! async-signal-safe functions in the child, and the library calls `malloc`, `strdup` and
//! `printf`. This is acceptable here, as in the research prototype: glibc's `fork()` resets the
//! malloc arenas and the stdio list lock in the child, the child is single-purpose and short-lived,
//! everything Rust-side is prepared before the fork (no Rust allocation in the child), and nothing
//! in this process uses C stdio from another thread. In `/init` (PID 1) the process is
//! single-threaded and the caveat does not apply.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use f2fs_sys::{f2fs_config_func, f2fs_configuration};
use rustix::process::Pid;

use crate::ChildConfig;
use crate::error::Step;

/// Written to the progress pipe after the last step succeeded.
pub(crate) const DONE: u8 = 0xff;

/// The child's exit status when its Rust code panicked (it never should).
const EXIT_PANIC: c_int = 120;

/// Forks a child that formats with `config`, its stdout and stderr on `output`, its progress on
/// `progress`. Returns the child's pid in the parent; the child never returns.
pub(crate) fn fork_format(
    config: &ChildConfig,
    output: BorrowedFd<'_>,
    progress: BorrowedFd<'_>,
) -> io::Result<Pid> {
    // SAFETY: fflush(NULL) takes no pointer from us; it flushes the C stdio buffers so that the
    // child does not inherit (and print again) anything this process buffered.
    unsafe { libc::fflush(ptr::null_mut()) };
    // SAFETY: the child branch only runs `child()`, which never returns into the caller's code:
    // it uses data prepared before the fork, calls the f2fs library and ends in `_exit()`.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => child(config, output.as_raw_fd(), progress.as_raw_fd()),
        pid => Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned pid 0")),
    }
}

fn child(config: &ChildConfig, output: RawFd, progress: RawFd) -> ! {
    // A panic must not unwind into the parent's code, which this process is a copy of.
    let code =
        catch_unwind(AssertUnwindSafe(|| run(config, output, progress))).unwrap_or(EXIT_PANIC);
    // SAFETY: flush what the library printed into the pipe, then end the process without
    // running the parent's atexit handlers or Rust destructors (it is a copy of the parent).
    unsafe {
        libc::fflush(ptr::null_mut());
        libc::_exit(code)
    }
}

fn report(progress: RawFd, code: u8) {
    // SAFETY: writes one byte from a live stack variable to a pipe fd this child holds open.
    // A failed write only loses progress detail, so the result is ignored.
    let _ = unsafe { libc::write(progress, (&raw const code).cast(), 1) };
}

fn run(config: &ChildConfig, output: RawFd, progress: RawFd) -> c_int {
    report(progress, Step::Setup.code());
    // SAFETY: dup2 of a pipe fd this child holds open onto its own stdout and stderr.
    if unsafe { libc::dup2(output, libc::STDOUT_FILENO) } < 0
        // SAFETY: as above.
        || unsafe { libc::dup2(output, libc::STDERR_FILENO) } < 0
    {
        return Step::Setup.exit_code();
    }
    // SAFETY: resets the global configuration to the library's defaults (memset + defaults);
    // this child is single-threaded, nothing else touches the global.
    unsafe { f2fs_sys::f2fs_init_configuration() };
    {
        let global = &raw mut f2fs_sys::c;
        // SAFETY: the child has one thread and no library call runs while this exclusive
        // reference to the global `c` lives (it ends with this block).
        let global = unsafe { &mut *global };
        if configure(global, config).is_none() {
            return Step::Setup.exit_code();
        }
    }
    type Call = unsafe extern "C" fn() -> c_int;
    let steps: [(Step, Call); 5] = [
        (Step::DevsAreUmounted, f2fs_sys::f2fs_devs_are_umounted),
        (Step::GetDeviceInfo, f2fs_sys::f2fs_get_device_info),
        (Step::GetF2fsInfo, f2fs_sys::f2fs_get_f2fs_info),
        (Step::FormatDevice, f2fs_sys::f2fs_format_device),
        (Step::FinalizeDevice, f2fs_sys::f2fs_finalize_device),
    ];
    for (step, call) in steps {
        report(progress, step.code());
        // SAFETY: the library functions take no arguments and work on the global `c`, which is
        // configured above; they are called in mkfs.f2fs 1.15's order, in a single thread.
        if unsafe { call() } < 0 {
            if step == Step::FormatDevice {
                // SAFETY: as mkfs.f2fs's error path does after a failed format; no arguments.
                unsafe { f2fs_sys::f2fs_release_sparse_resource() };
            }
            return step.exit_code();
        }
    }
    report(progress, DONE);
    0
}

/// Sets the global configuration like mkfs.f2fs's option parser. `None` when `strdup` fails.
fn configure(global: &mut f2fs_configuration, config: &ChildConfig) -> Option<()> {
    global.func = f2fs_config_func::MKFS as c_int;
    global.dbg_lv = config.debug_level;
    global.trim = c_int::from(config.discard);
    global.feature |= config.features.to_le();
    global.quota_bits = config.quota_bits;
    // The library keeps (and may free) these strings: they must be malloc'd C strings.
    global.devices[0].path = strdup(&config.device)?;
    global.vol_label = strdup(&config.label)?;
    if let Some(sectors) = config.total_sectors {
        global.wanted_total_sectors = sectors;
    }
    if let Some(reproducible) = &config.reproducible {
        global.vol_uuid = strdup(&reproducible.uuid)?;
        global.fake_seed = 1;
        global.fixed_time = reproducible.time;
    }
    Some(())
}

fn strdup(s: &CStr) -> Option<*mut libc::c_char> {
    // SAFETY: `s` is a valid NUL-terminated string that lives for the whole call.
    let copy = unsafe { libc::strdup(s.as_ptr()) };
    (!copy.is_null()).then_some(copy)
}
