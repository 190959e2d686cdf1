//! Writing the partition table in the crash-safe order: protective MBR, backup entries and
//! header at the disk's end, a flush, then the primary entries and header, a flush.

use std::path::Path;

use super::ApplyError;
use crate::gpt::{self, Geometry, Structure, Table};
use crate::io::DiskIo;

pub(super) fn write_table(
    io: &dyn DiskIo,
    target: &Path,
    geometry: &Geometry,
    table: &Table,
) -> Result<(), ApplyError> {
    let pieces = gpt::encode(geometry, table).map_err(|source| ApplyError::EncodeTable {
        target: target.to_owned(),
        source,
    })?;
    let flush = |what: &str| {
        io.flush().map_err(|source| ApplyError::WriteTable {
            target: target.to_owned(),
            what: what.to_owned(),
            source,
        })
    };
    for piece in &pieces {
        if piece.what == Structure::PrimaryEntries {
            // The new backup is durable before the primary changes.
            flush("backup GPT (flush)")?;
        }
        io.write_at(&piece.data, piece.offset)
            .map_err(|source| ApplyError::WriteTable {
                target: target.to_owned(),
                what: piece.what.to_string(),
                source,
            })?;
    }
    flush("primary GPT (flush)")
}
