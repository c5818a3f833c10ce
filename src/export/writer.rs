//! Narrow rows + dictionary → CSV chunks, by copying precomputed cells.

use super::clock::TimestampCells;
use super::dictionary::{Dictionary, UnknownKey};
use super::HEADER;
use crate::store::EventRow;
use bytes::Bytes;
use std::sync::Arc;

/// Room reserved for each chunk; a batch of rows becomes one chunk, grown
/// only if its rows are unusually long.
const CHUNK_CAPACITY: usize = 256 * 1024;

/// Writes one download: the header row, then each batch of rows as one
/// chunk. Holds one buffer at a time; no allocation per row.
#[derive(Debug)]
pub struct CsvWriter {
    dictionary: Arc<Dictionary>,
    clock: TimestampCells,
    buf: Vec<u8>,
}

impl CsvWriter {
    /// A writer resolving names through `dictionary`.
    pub fn new(dictionary: Arc<Dictionary>) -> Self {
        Self {
            dictionary,
            clock: TimestampCells::new(),
            buf: Vec::new(),
        }
    }

    /// The header row as a chunk.
    pub fn header(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(128);
        for (i, name) in HEADER.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Bytes::from(out)
    }

    /// One batch of rows as one chunk.
    pub fn rows(&mut self, rows: &[EventRow]) -> Result<Bytes, UnknownKey> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK_CAPACITY);
        }
        let result = rows.iter().try_for_each(|row| self.row(row));
        let chunk = std::mem::take(&mut self.buf);
        result.map(|()| Bytes::from(chunk))
    }

    #[inline]
    fn row(&mut self, row: &EventRow) -> Result<(), UnknownKey> {
        let d = &*self.dictionary;
        let component = d.component_cells(row.component)?;
        let user = d.user_cells(row.user)?;
        let application = d.application_cell(row.application)?;
        let project = d.project_cell(row.project)?;
        let out = &mut self.buf;
        self.clock.push(out, row.timestamp);
        out.push(b',');
        out.extend_from_slice(row.kind.as_str().as_bytes());
        out.push(b',');
        out.extend_from_slice(component);
        out.push(b',');
        out.extend_from_slice(application);
        out.push(b',');
        out.extend_from_slice(project);
        out.push(b',');
        out.extend_from_slice(user);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}
