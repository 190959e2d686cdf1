//! What [`super::apply`] did ([`ApplyReport`]), printable as text and serialisable as JSON.
//! Must not: read or write a disk.

use std::fmt;

use serde::Serialize;

use super::PendingFormat;

/// A partition as the kernel sees it after apply (sysfs `start` and `size`, in bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelPartition {
    /// Partition number.
    pub number: u32,
    /// Kernel name (`loop0p3`, `mmcblk0p5`).
    pub device: String,
    /// First byte.
    pub start_bytes: u64,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// How the `MakeDirectories=` of a new file system were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MakeDirsOutcome {
    /// Mounted, made, fsynced, unmounted.
    Done,
    /// Made by a host tool into the unmounted file system (the tool's name, `sload.f2fs`).
    Host(String),
    /// Not made, and why.
    Skipped(String),
}

/// What [`apply`](super::apply()) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ApplyReport {
    /// File systems made.
    pub formatted: Vec<PendingFormat>,
    /// The partition table was written.
    pub table_written: bool,
    /// Block devices: the kernel's view of every partition of the table, checked against it.
    pub kernel: Vec<KernelPartition>,
    /// Per formatted partition with `MakeDirectories=`: (number, directories, outcome).
    pub make_directories: Vec<(u32, Vec<String>, MakeDirsOutcome)>,
}

impl ApplyReport {
    /// Nothing was written.
    pub fn nothing_done(&self) -> bool {
        !self.table_written && self.formatted.is_empty()
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing_done() {
            writeln!(f, "nothing to do: no byte written")?;
        }
        for p in &self.formatted {
            writeln!(
                f,
                "formatted partition {} ({}) as {} ({})",
                p.number, p.label, p.format, p.reason
            )?;
        }
        for (number, dirs, outcome) in &self.make_directories {
            let how = match outcome {
                MakeDirsOutcome::Done => "made (mounted)".to_owned(),
                MakeDirsOutcome::Host(tool) => format!("made with {tool}"),
                MakeDirsOutcome::Skipped(why) => format!("skipped: {why}"),
            };
            writeln!(
                f,
                "partition {number}: directories {} {how}",
                dirs.join(" ")
            )?;
        }
        if self.table_written {
            writeln!(
                f,
                "partition table written (backup at the disk's end, then primary)"
            )?;
        }
        for k in &self.kernel {
            writeln!(
                f,
                "kernel: partition {} = {} start {} size {} bytes",
                k.number, k.device, k.start_bytes, k.size_bytes
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text() {
        let r = ApplyReport::default();
        assert!(r.to_string().contains("nothing to do"));
    }
}
