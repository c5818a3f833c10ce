//! Narrow event rows → CSV bytes. Pure and synchronous: the HTTP layer feeds
//! it batches from a store stream and sends what it returns as body chunks.
//!
//! RFC 4180 with CRLF line ends, UTF-8 without BOM, quoting whenever a field
//! holds a comma, quote, CR or LF, and the OWASP CSV-injection guard on every
//! free-text cell. Names are rendered into cells once per organization
//! ([`Dictionary`]); each row is then a timestamp and a few copied byte
//! ranges ([`CsvWriter`]).

mod cache;
mod cell;
mod clock;
mod dictionary;
mod guard;
mod writer;

pub use cache::DictionaryCache;
pub use dictionary::{ComponentNames, Dictionary, DictionaryBuilder, UnknownKey};
pub use writer::CsvWriter;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Timestamp};
    use crate::store::EventRow;
    use std::sync::Arc;

    #[test]
    fn writes_header_and_rows_with_crlf_quoting_and_guard() {
        let mut b = DictionaryBuilder::new();
        let comp = |name| ComponentNames {
            id: "c-1",
            name,
            catalogs: Some("A; B"),
            category: None,
            manufacturer: Some("ACME, Inc."),
        };
        b.component(1, comp("=SUM(A1)"));
        b.component(2, comp("say \"hi\"\nthere"));
        b.user(7, "u", "u@example.com");
        b.application(3, "-app");
        let dict = Arc::new(b.build());
        let row = |component, application| EventRow {
            timestamp: Timestamp::parse("2024-01-02T03:04:05.006Z").unwrap(),
            kind: EventKind::Place,
            component,
            user: 7,
            application,
            project: None,
        };
        let mut w = CsvWriter::new(Arc::clone(&dict));
        let mut out = w.header().to_vec();
        out.extend_from_slice(&w.rows(&[row(1, None), row(2, Some(3))]).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Timestamp,Event,Component Id,Component Name,Catalogs,Category,Manufacturer,Application,Project Id,User Id,User Email\r\n\
             2024-01-02T03:04:05.006Z,Place,c-1,'=SUM(A1),A; B,,\"ACME, Inc.\",,,u,u@example.com\r\n\
             2024-01-02T03:04:05.006Z,Place,c-1,\"say \"\"hi\"\"\nthere\",A; B,,\"ACME, Inc.\",'-app,,u,u@example.com\r\n"
        );
        assert_eq!(w.rows(&[row(9, None)]), Err(UnknownKey("component")));
        let resolved = dict.resolve(&row(2, Some(3))).unwrap();
        assert_eq!(resolved.component_name, "say \"hi\"\nthere");
        assert_eq!(resolved.application.as_deref(), Some("-app"));
        assert_eq!(resolved.project_id, None);
    }
}
