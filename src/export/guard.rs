//! The spreadsheet-formula guard (OWASP "CSV Injection").

/// Whether a text cell must be prefixed with `'` so that Excel, LibreOffice
/// and Google Sheets show it as text instead of evaluating it: it starts
/// with `=`, `+`, `-`, `@`, TAB or CR.
pub fn needs_guard(value: &str) -> bool {
    matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

#[cfg(test)]
mod tests {
    use super::needs_guard;

    #[test]
    fn guards_exactly_the_formula_starters() {
        for v in ["=1", "+1", "-1", "@x", "\tx", "\rx"] {
            assert!(needs_guard(v), "{v:?}");
        }
        for v in ["", "a=1", " =1", "1-2", "'quoted", "\nx", "€"] {
            assert!(!needs_guard(v), "{v:?}");
        }
    }
}
