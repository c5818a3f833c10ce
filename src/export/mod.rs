//! Rows → CSV bytes. Pure and synchronous: the HTTP layer feeds it batches
//! from a store stream and sends what it returns as body chunks.
//!
//! RFC 4180 with CRLF line ends, UTF-8 without BOM, quoting whenever a field
//! holds a comma, quote, CR or LF, and the OWASP CSV-injection guard on every
//! free-text cell.

mod guard;

pub use guard::needs_guard;

use crate::store::ExportRow;
use bytes::Bytes;

/// The header row, in contract order.
pub const HEADER: [&str; 11] = [
    "Timestamp",
    "Event",
    "Component Id",
    "Component Name",
    "Catalogs",
    "Category",
    "Manufacturer",
    "Application",
    "Project Id",
    "User Id",
    "User Email",
];

/// Encodes rows into CSV chunks. Each chunk gets its own `csv::Writer`
/// (cheap: the crate's writer is a small buffer around ours), because the
/// writer only hands its output back through `into_inner`.
pub struct CsvEncoder {
    builder: csv::WriterBuilder,
    writer: csv::Writer<Vec<u8>>,
    scratch: Vec<u8>,
}

impl Default for CsvEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvEncoder {
    /// A fresh encoder; the first call should be [`CsvEncoder::header`].
    pub fn new() -> Self {
        let mut builder = csv::WriterBuilder::new();
        builder
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary);
        let writer = builder.from_writer(Vec::new());
        Self {
            builder,
            writer,
            scratch: Vec::with_capacity(64),
        }
    }

    /// The header row as a chunk.
    pub fn header(&mut self) -> Bytes {
        // Writing to a Vec cannot fail; a failure would only mean a bug here.
        let _ = self.writer.write_record(HEADER);
        self.take()
    }

    /// One batch of rows as a chunk.
    pub fn rows(&mut self, rows: &[ExportRow]) -> Bytes {
        for row in rows {
            self.row(row);
        }
        self.take()
    }

    fn row(&mut self, row: &ExportRow) {
        self.scratch.clear();
        row.timestamp.write_wire(&mut self.scratch);
        let _ = self.writer.write_field(&self.scratch);
        let _ = self.writer.write_field(row.kind.as_str());
        self.text(&row.component_id);
        self.text(&row.component_name);
        self.opt_text(row.catalogs.as_deref());
        self.opt_text(row.category.as_deref());
        self.opt_text(row.manufacturer.as_deref());
        self.opt_text(row.application.as_deref());
        self.opt_text(row.project_id.as_deref());
        self.text(&row.user_id);
        self.text(&row.user_email);
        let _ = self.writer.write_record(None::<&[u8]>);
    }

    fn opt_text(&mut self, value: Option<&str>) {
        self.text(value.unwrap_or(""));
    }

    fn text(&mut self, value: &str) {
        if needs_guard(value) {
            self.scratch.clear();
            self.scratch.push(b'\'');
            self.scratch.extend_from_slice(value.as_bytes());
            let _ = self.writer.write_field(&self.scratch);
        } else {
            let _ = self.writer.write_field(value);
        }
    }

    fn take(&mut self) -> Bytes {
        let next = self.builder.from_writer(Vec::with_capacity(128 * 1024));
        let done = std::mem::replace(&mut self.writer, next);
        // Flushing into a Vec cannot fail.
        Bytes::from(done.into_inner().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Timestamp};

    fn row(name: &str) -> ExportRow {
        ExportRow {
            timestamp: Timestamp::parse("2024-01-02T03:04:05.006Z").unwrap(),
            kind: EventKind::Place,
            component_id: "c-1".into(),
            component_name: name.into(),
            catalogs: Some("A; B".into()),
            category: None,
            manufacturer: Some("ACME, Inc.".into()),
            application: None,
            project_id: None,
            user_id: "u".into(),
            user_email: "u@example.com".into(),
        }
    }

    #[test]
    fn writes_header_and_rows_with_crlf_quoting_and_guard() {
        let mut enc = CsvEncoder::new();
        let mut out = enc.header().to_vec();
        out.extend_from_slice(&enc.rows(&[row("=SUM(A1)"), row("say \"hi\"\nthere")]));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Timestamp,Event,Component Id,Component Name,Catalogs,Category,Manufacturer,Application,Project Id,User Id,User Email\r\n\
             2024-01-02T03:04:05.006Z,Place,c-1,'=SUM(A1),A; B,,\"ACME, Inc.\",,,u,u@example.com\r\n\
             2024-01-02T03:04:05.006Z,Place,c-1,\"say \"\"hi\"\"\nthere\",A; B,,\"ACME, Inc.\",,,u,u@example.com\r\n"
        );
    }
}
