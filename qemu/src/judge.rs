//! Turning console text into an [`Ending`], and finding patterns in the console byte stream.

use crate::Ending;

/// Printed by the kernel's `kernel_power_off()`.
const POWER_DOWN: &str = "reboot: Power down";
/// Printed by the kernel's `kernel_restart()`.
const RESTARTING: &str = "reboot: Restarting system";
/// Printed by `panic()`; the message follows.
const PANIC: &str = "Kernel panic - not syncing: ";
/// Printed by `panic()` when it is done (not printed when `panic=-1` reboots at once).
const PANIC_END: &str = "---[ end Kernel panic";
/// What U-Boot's `reset` command prints before resetting the board (`arch/arm/lib/reset.c`).
const UBOOT_RESET: &str = "resetting ...";

/// The ending that the first terminal marker in `console` stands for, judged as under
/// `-no-reboot`: `reboot: Power down` → [`Ending::PowerOff`], `reboot: Restarting system` →
/// [`Ending::Reset`], `Kernel panic - not syncing: <msg>` → [`Ending::Panic`]. `None` when the
/// console shows none of them.
pub fn classify(console: &str) -> Option<Ending> {
    console.lines().find_map(line_ending)
}

/// The ending one console line stands for, if any.
pub(crate) fn line_ending(line: &str) -> Option<Ending> {
    if line.contains(PANIC_END) {
        return None;
    }
    if let Some(at) = line.find(PANIC) {
        let message = line[at + PANIC.len()..].trim_end().to_owned();
        return Some(Ending::Panic { message });
    }
    if line.contains(POWER_DOWN) {
        return Some(Ending::PowerOff);
    }
    if line.contains(RESTARTING) || line.trim() == UBOOT_RESET {
        return Some(Ending::Reset);
    }
    None
}

/// Whether the line closes a panic report (nothing more will follow).
pub(crate) fn is_panic_end(line: &str) -> bool {
    line.contains(PANIC_END)
}

/// Finds one needle in a growing byte stream without rescanning what was already searched.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    /// Matches must start at or after this offset (just after the previous match).
    floor: usize,
    /// The stream length at the last unsuccessful search.
    checked: usize,
}

impl Scanner {
    /// Searches the part of `stream` not yet searched; on a match returns the offset just past
    /// it and continues from there next time.
    pub(crate) fn next_match(&mut self, stream: &[u8], needle: &[u8]) -> Option<usize> {
        let start = self
            .checked
            .saturating_sub(needle.len().saturating_sub(1))
            .max(self.floor);
        let found = find(stream.get(start..).unwrap_or_default(), needle);
        match found {
            Some(at) => {
                let end = start + at + needle.len();
                self.floor = end;
                self.checked = end;
                Some(end)
            }
            None => {
                self.checked = stream.len();
                None
            }
        }
    }
}

/// The offset of the first `needle` in `hay` (an empty needle matches at 0).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PANIC_CONSOLE: &str = "\
[    0.918399] List of all partitions:
[    0.918592] No filesystem could mount root, tried:
[    0.918841] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    0.919118] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
[    0.920763] Memory Limit: none
";

    #[test]
    fn panic_message_is_the_rest_of_the_line() {
        assert_eq!(
            classify(PANIC_CONSOLE),
            Some(Ending::Panic {
                message: "VFS: Unable to mount root fs on unknown-block(0,0)".into()
            })
        );
    }

    #[test]
    fn power_down_and_restart() {
        let off = "ROOTFS-DONE\n[    2.01] reboot: Power down\n";
        assert_eq!(classify(off), Some(Ending::PowerOff));
        let reset = "[ 12.5] atomix: rebooting\r\n[   12.6] reboot: Restarting system\r\n";
        assert_eq!(classify(reset), Some(Ending::Reset));
    }

    #[test]
    fn the_first_marker_wins() {
        let text = "[1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n\
                    [2] reboot: Restarting system\n";
        assert_eq!(
            classify(text),
            Some(Ending::Panic {
                message: "Attempted to kill init! exitcode=0x00000100".into()
            })
        );
        let text = "[2] reboot: Restarting system\n[3] reboot: Power down\n";
        assert_eq!(classify(text), Some(Ending::Reset));
        let text = "AtomixOS: cannot boot slot B\r\nresetting ...\r\n";
        assert_eq!(classify(text), Some(Ending::Reset));
        assert_eq!(classify("echo resetting ... later\n"), None);
    }

    #[test]
    fn no_marker_no_ending() {
        assert_eq!(classify(""), None);
        assert_eq!(
            classify("U-Boot 2023.01\n=> poweroff\npoweroff ...\n"),
            None
        );
        // The closing line of a panic report is not a second panic.
        assert_eq!(
            classify("---[ end Kernel panic - not syncing: Fatal exception ]---\n"),
            None
        );
        assert!(is_panic_end(
            "[ 3.1] ---[ end Kernel panic - not syncing: Fatal exception ]---"
        ));
    }

    #[test]
    fn scanner_finds_matches_across_chunks_and_in_order() {
        let mut stream = Vec::new();
        let mut scanner = Scanner::default();
        let mut found = Vec::new();
        for chunk in [&b"login"[..], b": x", b"x login", b": "] {
            stream.extend_from_slice(chunk);
            found.push(scanner.next_match(&stream, b"login: "));
        }
        // "login: x" matches once (ending at 7), "xx login: " matches again (ending at 17).
        assert_eq!(found, [None, Some(7), None, Some(17)]);
    }

    #[test]
    fn scanner_byte_by_byte_and_empty_needle() {
        let text = b"aaaab => ok";
        let mut scanner = Scanner::default();
        let mut hits = Vec::new();
        for end in 1..=text.len() {
            if let Some(at) = scanner.next_match(&text[..end], b"aab") {
                hits.push(at);
            }
        }
        assert_eq!(hits, [5]);
        let mut empty = Scanner::default();
        assert_eq!(empty.next_match(b"", b""), Some(0));
    }
}
