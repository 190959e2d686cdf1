//! The reader thread: reads a file front to back in [`CHUNK_BYTES`] chunks into a pool of
//! [`ALIGN`]ed buffers (what `O_DIRECT` needs), hashing the bytes when asked, while the caller
//! writes or hashes the previous chunk.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use sha2::{Digest, Sha256};

use super::{ALIGN, CHUNK_BYTES};

/// Chunks in flight between the reader thread and the writer.
const BUFFERS: usize = 3;

/// A chunk buffer whose usable part starts at an [`ALIGN`]ed address (what `O_DIRECT` needs).
pub(super) struct Buf {
    storage: Vec<u8>,
    start: usize,
}

impl Buf {
    fn new() -> Self {
        let storage = vec![0u8; CHUNK_BYTES + ALIGN];
        let addr = storage.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        Self { storage, start }
    }

    pub(super) fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + CHUNK_BYTES]
    }
}

/// A filled chunk: the first `len` bytes of `buf`.
pub(super) struct Filled {
    pub(super) buf: Buf,
    pub(super) len: usize,
}

/// A failed read of the reader thread: the byte offset and the cause.
pub(super) struct ReadFailure {
    pub(super) offset: u64,
    pub(super) source: io::Error,
}

/// The reader thread's ends: filled chunks come out of `full`, used buffers go back to `free`.
pub(super) struct Reader {
    pub(super) full: Receiver<Filled>,
    pub(super) free: Sender<Buf>,
    handle: thread::JoinHandle<Result<Option<[u8; 32]>, ReadFailure>>,
}

impl Reader {
    /// Reads `total` bytes of `file` from offset 0 in [`CHUNK_BYTES`] chunks on a thread; with
    /// `direct`, each read's length is rounded up to [`ALIGN`] (`O_DIRECT`); with `hash`, the
    /// thread also computes the SHA-256 of the bytes.
    pub(super) fn spawn(file: File, total: u64, direct: bool, hash: bool) -> io::Result<Self> {
        let (full_tx, full) = mpsc::channel::<Filled>();
        let (free, free_rx) = mpsc::channel::<Buf>();
        for _ in 0..BUFFERS {
            // The receiver is alive: it is moved into the thread below.
            let _ = free.send(Buf::new());
        }
        let handle = thread::Builder::new()
            .name("flash-read".into())
            .spawn(move || {
                let mut hasher = hash.then(Sha256::new);
                let mut offset = 0u64;
                while offset < total {
                    let Ok(mut buf) = free_rx.recv() else {
                        return Ok(None);
                    };
                    let want = usize::try_from(total - offset)
                        .map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
                    let request = if direct {
                        want.next_multiple_of(ALIGN)
                    } else {
                        want
                    };
                    fill(&file, &mut buf.bytes()[..request], offset, want).map_err(
                        |(got, source)| ReadFailure {
                            offset: offset + got as u64,
                            source,
                        },
                    )?;
                    if let Some(h) = &mut hasher {
                        h.update(&buf.bytes()[..want]);
                    }
                    if full_tx.send(Filled { buf, len: want }).is_err() {
                        return Ok(None);
                    }
                    offset += want as u64;
                }
                Ok(hasher.map(|h| h.finalize().into()))
            })?;
        Ok(Self { full, free, handle })
    }

    /// Waits for the thread: the hash, or the failure.
    pub(super) fn finish(self) -> Result<Option<[u8; 32]>, ReadFailure> {
        drop(self.full);
        drop(self.free);
        self.handle.join().unwrap_or_else(|_| {
            Err(ReadFailure {
                offset: 0,
                source: io::Error::other("the reader thread panicked"),
            })
        })
    }
}

/// Reads into `buf` at `offset` until at least `want` bytes are in; the end of the file before
/// that is an error. Returns (bytes read so far, cause) on failure.
fn fill(file: &File, buf: &mut [u8], offset: u64, want: usize) -> Result<(), (usize, io::Error)> {
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => {
                return Err((
                    got,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "ended early"),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e)),
        }
    }
    Ok(())
}
