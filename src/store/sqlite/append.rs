//! Appending an ingestion's new events: one idempotency row and one event
//! row each, the hottest writes of the store.
//!
//! Event ids are random, so the idempotency rows land all over their
//! B-tree: they are inserted in id order, so consecutive inserts descend
//! through pages just visited (still in the CPU cache) instead of a random
//! path each. Event rows are inserted in their clustering order
//! (organization, timestamp, id), mostly appends at the tree's right edge.
//!
//! Values are bound straight from the rows (no per-value allocation), many
//! rows per statement. The statements are `INSERT OR IGNORE`: a plain
//! multi-row insert keeps a statement journal (a copy of every page it
//! touches, to undo itself half-way on a constraint failure), which costs a
//! page copy per random insert. Nothing may be ignored, though: [`decide`]
//! only plans ids that are not stored, so every row must go in, and a
//! statement that inserted fewer rows than it was given fails the whole
//! transaction as corrupt.
//!
//! [`decide`]: crate::store::decide::decide

use crate::store::decide::NewEvent;
use crate::store::facts::Fingerprint;
use crate::store::keys::{EventRow, Keys};
use crate::store::StoreError;
use rusqlite::{CachedStatement, Transaction};

/// Rows inserted per statement: multi-row inserts spend far less time in
/// statement overhead than one row at a time (8 values a row, well under
/// SQLite's limit of 32,766 variables).
pub const ROWS_PER_INSERT: usize = 128;

/// One new event, resolved to keys.
struct NewRow {
    row: EventRow,
    facts: Fingerprint,
}

/// Inserts the idempotency and event rows of `new_events`.
pub fn append(
    tx: &Transaction<'_>,
    new_events: &[NewEvent<'_>],
    keys: &Keys,
) -> Result<(), StoreError> {
    let mut rows = new_events
        .iter()
        .map(|new| {
            Ok(NewRow {
                row: keys.event(new.event)?,
                facts: new.facts,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rows.sort_unstable_by_key(|a| a.row.id);
    insert(tx, IDS, &rows, |stmt, at, new| {
        stmt.raw_bind_parameter(at, &new.row.id.as_bytes()[..])?;
        stmt.raw_bind_parameter(at + 1, new.row.org)?;
        stmt.raw_bind_parameter(at + 2, new.facts.as_bytes())
    })?;
    rows.sort_unstable_by(|a, b| {
        let (a, b) = (&a.row, &b.row);
        (a.org, a.ts, a.id).cmp(&(b.org, b.ts, b.id))
    });
    insert(tx, EVENTS, &rows, |stmt, at, new| {
        let r = &new.row;
        stmt.raw_bind_parameter(at, r.org)?;
        stmt.raw_bind_parameter(at + 1, r.ts)?;
        stmt.raw_bind_parameter(at + 2, &r.id.as_bytes()[..])?;
        stmt.raw_bind_parameter(at + 3, r.kind)?;
        stmt.raw_bind_parameter(at + 4, r.component)?;
        stmt.raw_bind_parameter(at + 5, r.user)?;
        stmt.raw_bind_parameter(at + 6, r.application)?;
        stmt.raw_bind_parameter(at + 7, r.project)
    })
}

/// A table the new events go into.
struct Target {
    /// `table (columns)`.
    into: &'static str,
    /// Values per row.
    width: usize,
}

const IDS: Target = Target {
    into: "event_ids (id, org_key, facts)",
    width: 3,
};

const EVENTS: Target = Target {
    into: "events (org_key, ts, id, kind, component_key, user_key, application_key, project_key)",
    width: 8,
};

/// Inserts `rows` into `target`, [`ROWS_PER_INSERT`] a statement; `bind`
/// binds one row's values from parameter index `at` on.
fn insert(
    tx: &Transaction<'_>,
    target: Target,
    rows: &[NewRow],
    bind: impl Fn(&mut CachedStatement<'_>, usize, &NewRow) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let full = multi_row_insert(&target, ROWS_PER_INSERT);
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut stmt = if chunk.len() == ROWS_PER_INSERT {
            tx.prepare_cached(&full)?
        } else {
            tx.prepare_cached(&multi_row_insert(&target, chunk.len()))?
        };
        for (i, new) in chunk.iter().enumerate() {
            bind(&mut stmt, 1 + i * target.width, new)?;
        }
        let inserted = stmt.raw_execute()?;
        if inserted != chunk.len() {
            return Err(StoreError::Corrupt(format!(
                "{} of {} new rows of {} were already stored",
                chunk.len() - inserted,
                chunk.len(),
                target.into
            )));
        }
    }
    Ok(())
}

/// `INSERT OR IGNORE INTO {into} VALUES (…), (…)` for `rows` rows.
fn multi_row_insert(target: &Target, rows: usize) -> String {
    let row = format!("({})", vec!["?"; target.width].join(","));
    format!(
        "INSERT OR IGNORE INTO {} VALUES {}",
        target.into,
        vec![row; rows].join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_one_placeholder_per_value() {
        let sql = multi_row_insert(&IDS, 2);
        assert_eq!(
            sql,
            "INSERT OR IGNORE INTO event_ids (id, org_key, facts) VALUES (?,?,?),(?,?,?)"
        );
        assert_eq!(multi_row_insert(&EVENTS, 3).matches('?').count(), 24);
    }
}
