//! The narrow disk I/O layer every write of [`crate::apply`] goes through.
//!
//! [`DiskIo`] is positional read/write plus flush; it is implemented for [`File`] (image files
//! and block devices alike). Tests substitute an implementation that fails after the Nth write
//! to prove that a cut at any write leaves a disk the next run completes. [`Window`] turns a
//! byte range of a [`DiskIo`] into a `Read + Write + Seek` stream (what `fatfs` wants), with
//! every access bounded by the range.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// Positional access to a disk or image file.
pub trait DiskIo {
    /// Reads up to `buf.len()` bytes at byte `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at byte `offset`. One call is one write as counted by fault injection.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the writes so far durable (`fsync`).
    fn flush(&self) -> io::Result<()>;
}

impl DiskIo for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.sync_data()
    }
}

impl<T: DiskIo + ?Sized> DiskIo for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        (**self).flush()
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_exact_at(io: &dyn DiskIo, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match io.read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A `len`-byte window of a [`DiskIo`] starting at byte `start`, with its own position.
pub struct Window<'a> {
    io: &'a dyn DiskIo,
    start: u64,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<'a> Window<'a> {
    /// The bytes `start..start + len` of `io`.
    pub fn new(io: &'a dyn DiskIo, start: u64, len: u64) -> Self {
        Window {
            io,
            start,
            len,
            pos: 0,
        }
    }

    /// How many of `want` bytes fit between the position and the end of the window.
    fn room(&self, want: usize) -> usize {
        let left = self.len.saturating_sub(self.pos);
        usize::try_from(left).map_or(want, |left| want.min(left))
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        let n = self.io.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        self.io.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) if n <= self.len => {
                self.pos = n;
                Ok(n)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

/// Coalesces sequential small writes (fatfs writes a sector at a time) into writes of up to
/// `cap` bytes. Pending bytes are written before any read and on [`DiskIo::flush`] (which
/// does not flush the inner layer: the caller decides when the disk must be durable).
pub(crate) struct WriteBack<'a> {
    inner: &'a dyn DiskIo,
    cap: usize,
    pending: std::cell::RefCell<(u64, Vec<u8>)>,
}

impl<'a> WriteBack<'a> {
    pub(crate) fn new(inner: &'a dyn DiskIo, cap: usize) -> Self {
        WriteBack {
            inner,
            cap,
            pending: std::cell::RefCell::new((0, Vec::new())),
        }
    }

    fn drain(&self) -> io::Result<()> {
        let mut p = self.pending.borrow_mut();
        if !p.1.is_empty() {
            let (offset, data) = (p.0, std::mem::take(&mut p.1));
            self.inner.write_at(&data, offset)?;
        }
        Ok(())
    }
}

impl DiskIo for WriteBack<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.drain()?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        {
            let mut p = self.pending.borrow_mut();
            let (start, data) = &mut *p;
            if !data.is_empty()
                && offset == *start + data.len() as u64
                && data.len() + buf.len() <= self.cap
            {
                data.extend_from_slice(buf);
                return Ok(());
            }
        }
        self.drain()?;
        if buf.len() >= self.cap {
            return self.inner.write_at(buf, offset);
        }
        let mut p = self.pending.borrow_mut();
        p.0 = offset;
        p.1.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.drain()
    }
}

/// A [`DiskIo`] that refuses every write into `[protected_start, protected_end)`: the raw
/// loader region between the primary GPT and the first partition. Reads pass through.
pub(crate) struct Guarded<'a> {
    pub(crate) inner: &'a dyn DiskIo,
    pub(crate) protected_start: u64,
    pub(crate) protected_end: u64,
}

impl DiskIo for Guarded<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if offset < self.protected_end && self.protected_start < end {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to write bytes {offset}..{end}: bytes {}..{} below the first \
                     partition are never written",
                    self.protected_start, self.protected_end
                ),
            ));
        }
        self.inner.write_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(100).unwrap();
        let mut w = Window::new(&f, 10, 20);
        assert_eq!(w.write(&[1u8; 30]).unwrap(), 20);
        assert!(w.write(&[1]).is_err());
        assert!(w.seek(SeekFrom::Current(1)).is_err());
        assert_eq!(w.seek(SeekFrom::End(-5)).unwrap(), 15);
        let mut buf = [0u8; 10];
        assert_eq!(w.read(&mut buf).unwrap(), 5);
        let mut all = vec![0u8; 100];
        FileExt::read_exact_at(&f, &mut all, 0).unwrap();
        assert!(all[..10].iter().all(|&b| b == 0));
        assert!(all[10..30].iter().all(|&b| b == 1));
        assert!(all[30..].iter().all(|&b| b == 0));
    }

    #[test]
    fn write_back_coalesces_and_reads_its_own_writes() {
        struct Count(File, std::cell::Cell<usize>);
        impl DiskIo for Count {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
                FileExt::read_at(&self.0, buf, offset)
            }
            fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
                self.1.set(self.1.get() + 1);
                FileExt::write_all_at(&self.0, buf, offset)
            }
            fn flush(&self) -> io::Result<()> {
                Ok(())
            }
        }
        let f = tempfile::tempfile().unwrap();
        f.set_len(8192).unwrap();
        let c = Count(f, std::cell::Cell::new(0));
        let w = WriteBack::new(&c, 2048);
        for i in 0..8u8 {
            w.write_at(&[i; 512], u64::from(i) * 512).unwrap();
        }
        assert_eq!(c.1.get(), 1, "the first 2048 bytes went out in one write");
        let mut b = [0u8; 512];
        w.read_at(&mut b, 3584).unwrap();
        assert_eq!(b, [7u8; 512], "a read sees pending writes");
        assert_eq!(c.1.get(), 2);
        w.write_at(&[9; 10], 100).unwrap();
        w.flush().unwrap();
        assert_eq!(c.1.get(), 3);
    }

    #[test]
    fn guard_refuses_the_protected_range() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(100).unwrap();
        let g = Guarded {
            inner: &f,
            protected_start: 20,
            protected_end: 40,
        };
        assert!(g.write_at(&[1; 20], 0).is_ok());
        assert!(g.write_at(&[1; 21], 0).is_err());
        assert!(g.write_at(&[1; 1], 39).is_err());
        assert!(g.write_at(&[1; 10], 40).is_ok());
    }
}
