//! The `log` backend of `/init`: `/dev/kmsg`, mirrored to the console only where the kernel
//! would not print the record itself.
//!
//! Each record is written as `<N>atomix-init: message\n` (error 3, warn 4, info 6, debug 7), one
//! kmsg record per line of the message, each cut to under 1 KiB. The kernel rate-limits
//! `/dev/kmsg` writers to a burst of 10 lines per 5 s *per open file* (measured with
//! `printk_devkmsg=ratelimit`), so the file is reopened every [`REOPEN_EVERY`] records.
//!
//! The kernel prints a record on the console when its level is below `console_loglevel` (the
//! first field of `/proc/sys/kernel/printk`, read once in the early stage). Records at or above
//! it are written to stderr (the console) as `atomix-init: message`, so every line reaches the
//! console exactly once. When `/dev/kmsg` cannot be opened (before `/dev` is mounted) records go
//! to stderr only.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Records written through one open file before it is reopened (the kernel allows 10).
pub const REOPEN_EVERY: u32 = 8;
/// Longest message text in one record, in bytes (a kmsg record holds 1024 including prefix).
pub const MAX_TEXT: usize = 960;
/// The prefix of every line.
pub const TAG: &str = "atomix-init";
/// `console_loglevel` until the real one is known (the kernel's default).
const DEFAULT_CONSOLE_LOGLEVEL: u8 = 7;

/// The syslog level the kernel gets for a `log` level.
pub fn kernel_level(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether `/init` must copy a record of kernel level `level` to the console itself: the kernel
/// prints only levels below `console_loglevel`.
pub fn needs_mirror(level: u8, console_loglevel: u8) -> bool {
    level >= console_loglevel
}

/// Parses `/proc/sys/kernel/printk` ("7\t4\t1\t7") to its first field, `console_loglevel`.
pub fn parse_console_loglevel(printk: &str) -> Option<u8> {
    printk.split_whitespace().next()?.parse().ok()
}

/// Splits a message into kmsg-sized lines: one per text line, each at most [`MAX_TEXT`] bytes
/// (cut at a character boundary), empty lines dropped.
pub fn split_lines(message: &str) -> Vec<&str> {
    message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut end = l.len().min(MAX_TEXT);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            &l[..end]
        })
        .collect()
}

struct State {
    kmsg_path: PathBuf,
    file: Option<File>,
    written: u32,
    opens: u32,
    console_loglevel: u8,
    console: Box<dyn Write + Send>,
}

/// The kmsg logger. [`install`] makes the process-wide one; tests build their own with
/// [`KmsgLogger::new`].
pub struct KmsgLogger {
    state: Mutex<State>,
}

impl std::fmt::Debug for KmsgLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsgLogger").finish_non_exhaustive()
    }
}

impl KmsgLogger {
    /// A logger writing to `kmsg_path` (normally `/dev/kmsg`) and mirroring to `console`.
    pub fn new(kmsg_path: &Path, console: Box<dyn Write + Send>) -> Self {
        KmsgLogger {
            state: Mutex::new(State {
                kmsg_path: kmsg_path.to_path_buf(),
                file: None,
                written: 0,
                opens: 0,
                console_loglevel: DEFAULT_CONSOLE_LOGLEVEL,
                console,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while logging must not silence the panic hook's own messages.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets `console_loglevel` (from `/proc/sys/kernel/printk`).
    pub fn set_console_loglevel(&self, level: u8) {
        self.lock().console_loglevel = level;
    }

    /// How many times the kmsg file was opened (for tests and debugging).
    pub fn opens(&self) -> u32 {
        self.lock().opens
    }

    /// Writes one message at `level`, bypassing the `log` level filter.
    pub fn emit(&self, level: Level, message: &str) {
        let klevel = kernel_level(level);
        let mut st = self.lock();
        for line in split_lines(message) {
            let in_kmsg = write_kmsg(&mut st, klevel, line);
            if !in_kmsg || needs_mirror(klevel, st.console_loglevel) {
                // Nothing else can be done if the console is gone.
                let _ = writeln!(st.console, "{TAG}: {line}");
                let _ = st.console.flush();
            }
        }
    }
}

/// Writes one record to kmsg, reopening the file when the budget is spent. False if kmsg is
/// not available.
fn write_kmsg(st: &mut State, klevel: u8, line: &str) -> bool {
    if st.written >= REOPEN_EVERY {
        st.file = None;
    }
    if st.file.is_none() {
        match OpenOptions::new().append(true).open(&st.kmsg_path) {
            Ok(f) => {
                st.file = Some(f);
                st.written = 0;
                st.opens += 1;
            }
            Err(_) => return false,
        }
    }
    let record = format!("<{klevel}>{TAG}: {line}\n");
    let ok = st
        .file
        .as_mut()
        .is_some_and(|f| f.write_all(record.as_bytes()).is_ok());
    if ok {
        st.written += 1;
    } else {
        st.file = None;
    }
    ok
}

impl Log for KmsgLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.emit(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOGGER: OnceLock<KmsgLogger> = OnceLock::new();

/// The process-wide logger (`/dev/kmsg`, console = stderr).
pub fn global() -> &'static KmsgLogger {
    LOGGER.get_or_init(|| KmsgLogger::new(Path::new("/dev/kmsg"), Box::new(io::stderr())))
}

/// Installs [`global`] as the `log` backend at info level. Until `/dev` is mounted its records
/// go to stderr.
pub fn install() {
    // Fails only if a logger is already installed, which then keeps working.
    let _ = log::set_logger(global());
    log::set_max_level(LevelFilter::Info);
}

/// Turns debug records on or off (`atomix.debug`).
pub fn set_debug(debug: bool) {
    log::set_max_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn logger() -> (tempfile::TempDir, PathBuf, KmsgLogger, Sink) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(&path, b"").unwrap();
        let sink = Sink::default();
        let l = KmsgLogger::new(&path, Box::new(sink.clone()));
        (dir, path, l, sink)
    }

    #[test]
    fn levels_and_format() {
        let (_d, path, l, sink) = logger();
        l.emit(Level::Error, "e");
        l.emit(Level::Warn, "w");
        l.emit(Level::Info, "stage device: ok in 1.0 ms");
        l.emit(Level::Debug, "d");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<3>atomix-init: e\n<4>atomix-init: w\n<6>atomix-init: stage device: ok in 1.0 ms\n<7>atomix-init: d\n"
        );
        // console_loglevel 7: the kernel prints 3, 4, 6; only 7 is mirrored.
        assert_eq!(sink.text(), "atomix-init: d\n");
    }

    #[test]
    fn quiet_console_mirrors_info() {
        let (_d, _path, l, sink) = logger();
        l.set_console_loglevel(4);
        l.emit(Level::Error, "e");
        l.emit(Level::Warn, "w");
        l.emit(Level::Info, "i");
        assert_eq!(sink.text(), "atomix-init: w\natomix-init: i\n");
    }

    #[test]
    fn reopens_before_the_rate_limit() {
        let (_d, path, l, _sink) = logger();
        for i in 0..20 {
            l.emit(Level::Info, &format!("line {i}"));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 20);
        assert_eq!(l.opens(), 3, "20 records at 8 per open");
    }

    #[test]
    fn falls_back_to_stderr_without_kmsg() {
        let sink = Sink::default();
        let l = KmsgLogger::new(Path::new("/nonexistent/kmsg"), Box::new(sink.clone()));
        l.emit(Level::Info, "early");
        l.emit(Level::Error, "boom");
        assert_eq!(sink.text(), "atomix-init: early\natomix-init: boom\n");
        assert_eq!(l.opens(), 0);
    }

    #[test]
    fn long_and_multiline_messages() {
        let (_d, path, l, _sink) = logger();
        let long = "é".repeat(1000);
        l.emit(Level::Info, &format!("a\n\nb\n{long}"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "<6>atomix-init: a");
        assert_eq!(lines[1], "<6>atomix-init: b");
        assert!(lines[2].len() + 1 < 1024, "{}", lines[2].len());
    }

    #[test]
    fn printk_parse() {
        assert_eq!(parse_console_loglevel("7\t4\t1\t7\n"), Some(7));
        assert_eq!(parse_console_loglevel("4 4 1 7"), Some(4));
        assert_eq!(parse_console_loglevel(""), None);
        assert!(needs_mirror(7, 7));
        assert!(!needs_mirror(6, 7));
        assert_eq!(kernel_level(Level::Trace), 7);
    }
}
