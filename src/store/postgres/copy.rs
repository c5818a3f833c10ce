//! Decoder of `COPY (SELECT ts, kind, component_key, user_key,
//! application_key, project_key …) TO STDOUT (FORMAT binary)`.
//!
//! Hand-written because `tokio_postgres::binary_copy` allocates a row
//! object per row; this decoder writes straight into [`EventRow`]s. The
//! format (PostgreSQL manual, "COPY — Binary Format"): an 11-byte
//! signature, a 32-bit flags field and a 32-bit header-extension length
//! (plus that many bytes); then per tuple a 16-bit field count followed by
//! each field as a 32-bit length (−1 for NULL) and its big-endian bytes; a
//! field count of −1 ends the data. Tuples may span the chunks the server
//! sends, so an incomplete tail is kept for the next chunk.

use crate::domain::{EventKind, Timestamp};
use crate::store::{EventRow, StoreError};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
const FIELDS: i16 = 6;

/// Incremental decoder of the export's binary COPY stream.
#[derive(Debug, Default)]
pub struct CopyDecoder {
    pending: Vec<u8>,
    header_done: bool,
    finished: bool,
}

/// Why a chunk could not be decoded.
fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("binary COPY stream: {what}"))
}

impl CopyDecoder {
    /// A decoder expecting the header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the end-of-data marker was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Decodes every complete tuple of `chunk` (after what was left of the
    /// previous one) into `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<EventRow>) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            let used = self.decode(chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.decode(&data, out)?;
            data.drain(..used);
            self.pending = data;
        }
        Ok(())
    }

    /// Decodes what it can of `data`; returns how many bytes it used.
    fn decode(&mut self, data: &[u8], out: &mut Vec<EventRow>) -> Result<usize, StoreError> {
        let mut at = 0;
        if !self.header_done {
            let Some(ext) = data.get(15..19) else {
                return Ok(0);
            };
            if &data[..11] != SIGNATURE {
                return Err(corrupt("bad signature"));
            }
            let ext = be_i32(ext) as usize;
            if data.len() < 19 + ext {
                return Ok(0);
            }
            at = 19 + ext;
            self.header_done = true;
        }
        while !self.finished {
            let Some(count) = data.get(at..at + 2) else {
                break;
            };
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.finished = true;
                at += 2;
                break;
            }
            if count != FIELDS {
                return Err(corrupt("unexpected field count"));
            }
            match tuple(&data[at + 2..])? {
                Some((row, len)) => {
                    out.push(row);
                    at += 2 + len;
                }
                None => break,
            }
        }
        Ok(at)
    }
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One field: `Ok(None)` when incomplete, else its value (or NULL) and
/// the bytes it used.
fn field(data: &[u8]) -> Result<Option<(Option<i64>, usize)>, StoreError> {
    let Some(len) = data.get(..4) else {
        return Ok(None);
    };
    let len = be_i32(len);
    if len == -1 {
        return Ok(Some((None, 4)));
    }
    let len = usize::try_from(len).map_err(|_| corrupt("negative field length"))?;
    let Some(bytes) = data.get(4..4 + len) else {
        return Ok(None);
    };
    let value = match *bytes {
        [a, b] => i64::from(i16::from_be_bytes([a, b])),
        [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => return Err(corrupt("unexpected integer width")),
    };
    Ok(Some((Some(value), 4 + len)))
}

/// One tuple's fields (after the count): `Ok(None)` when incomplete.
fn tuple(data: &[u8]) -> Result<Option<(EventRow, usize)>, StoreError> {
    let mut values = [None; FIELDS as usize];
    let mut at = 0;
    for slot in &mut values {
        let Some((value, used)) = field(&data[at..])? else {
            return Ok(None);
        };
        *slot = value;
        at += used;
    }
    let required = |v: Option<i64>, what| v.ok_or_else(|| corrupt(what));
    let code = required(values[1], "NULL kind")?;
    let row = EventRow {
        timestamp: Timestamp::from_millis(required(values[0], "NULL timestamp")?),
        kind: EventKind::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {code}")))?,
        component: required(values[2], "NULL component")?,
        user: required(values[3], "NULL user")?,
        application: values[4],
        project: values[5],
    };
    Ok(Some((row, at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(rows: &[EventRow]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        for r in rows {
            out.extend_from_slice(&FIELDS.to_be_bytes());
            let int8 = |out: &mut Vec<u8>, v: Option<i64>| match v {
                Some(v) => {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&v.to_be_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            };
            int8(&mut out, Some(r.timestamp.millis()));
            out.extend_from_slice(&2i32.to_be_bytes());
            out.extend_from_slice(&r.kind.code().to_be_bytes());
            int8(&mut out, Some(r.component));
            int8(&mut out, Some(r.user));
            int8(&mut out, r.application);
            int8(&mut out, r.project);
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn rows() -> Vec<EventRow> {
        (0..5)
            .map(|i| EventRow {
                timestamp: Timestamp::from_millis(1_700_000_000_000 + i),
                kind: EventKind::ALL[i as usize % 3],
                component: 10 + i,
                user: -i,
                application: (i % 2 == 0).then_some(i64::MAX - i),
                project: (i % 3 == 0).then_some(7),
            })
            .collect()
    }

    #[test]
    fn decodes_whatever_the_chunking() {
        let want = rows();
        let bytes = encode(&want);
        for size in [1, 2, 3, 7, 19, 20, 64, bytes.len()] {
            let mut d = CopyDecoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(size) {
                d.feed(chunk, &mut got).unwrap();
            }
            assert!(d.finished(), "chunk size {size}");
            assert_eq!(got, want, "chunk size {size}");
        }
    }

    #[test]
    fn rejects_what_is_not_the_export() {
        let mut d = CopyDecoder::new();
        let mut out = Vec::new();
        let mut bad = encode(&rows());
        bad[0] = b'X';
        assert!(d.feed(&bad, &mut out).is_err());
        let mut d = CopyDecoder::new();
        let mut bad = encode(&rows());
        bad[19 + 4..19 + 6].copy_from_slice(&5i16.to_be_bytes());
        assert!(d.feed(&bad, &mut out).is_err());
    }
}
