//! One CSV cell, rendered the way the contract wants it: the spreadsheet
//! guard first, then RFC 4180 quoting when needed. Names are rendered once
//! per dictionary build, never per row.

use super::guard::needs_guard;

/// Appends `value` as one CSV cell: prefixed with `'` when it would start a
/// formula, wrapped in quotes (inner quotes doubled) when it holds a comma,
/// quote, CR or LF. Exactly what the `csv` crate writes with
/// `QuoteStyle::Necessary`, which the tests check.
pub fn push_cell(out: &mut Vec<u8>, value: &str) {
    let guard = needs_guard(value);
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        if guard {
            out.push(b'\'');
        }
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    if guard {
        out.push(b'\'');
    }
    for part in bytes.split_inclusive(|b| *b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::push_cell;

    fn cell(v: &str) -> String {
        let mut out = Vec::new();
        push_cell(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    /// What the `csv` crate writes for the same (guarded) value.
    fn oracle(v: &str) -> String {
        let guarded = if super::needs_guard(v) {
            format!("'{v}")
        } else {
            v.to_owned()
        };
        let mut w = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Necessary)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        w.write_record([guarded.as_str(), "x"]).unwrap();
        let mut s = String::from_utf8(w.into_inner().unwrap()).unwrap();
        s.truncate(s.len() - ",x\r\n".len());
        s
    }

    #[test]
    fn renders_like_the_csv_crate() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("\"", "\"\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("cr\rx", "\"cr\rx\""),
            ("=SUM(A1)", "'=SUM(A1)"),
            ("=1,2", "\"'=1,2\""),
            ("\rx", "\"'\rx\""),
            ("\ttab", "'\ttab"),
            ("-", "'-"),
            ("Ünïcødé 漢字 😀", "Ünïcødé 漢字 😀"),
            ("'quoted", "'quoted"),
        ];
        for (value, want) in cases {
            assert_eq!(cell(value), want, "{value:?}");
            assert_eq!(cell(value), oracle(value), "{value:?}");
        }
    }
}
