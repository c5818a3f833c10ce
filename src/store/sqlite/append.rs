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

use crate::store::decide::Fingerprinted;
use crate::store::facts::Fingerprint;
use crate::store::keys::{EventRow, Keys};
use crate::store::StoreError;
use rusqlite::{ToSql, Transaction};

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
    new_events: &[Fingerprinted<'_>],
    keys: &Keys,
) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(new_events.len());
    for new in new_events {
        let (row, facts) = (keys.event(new.event)?, new.facts);
        rows.push(NewRow { row, facts });
    }
    rows.sort_unstable_by_key(|a| a.row.id);
    insert(tx, &IDS, &rows)?;
    rows.sort_unstable_by_key(|new| (new.row.org, new.row.ts, new.row.id));
    insert(tx, &EVENTS, &rows)
}

/// A table the new events go into: `table (columns)` and a row's values.
struct Target<const W: usize> {
    into: &'static str,
    values: for<'r> fn(&'r NewRow) -> [&'r dyn ToSql; W],
}

const IDS: Target<3> = Target {
    into: "event_ids (id, org_key, facts)",
    values: |new| [new.row.id.as_bytes(), &new.row.org, new.facts.as_bytes()],
};

const EVENTS: Target<8> = Target {
    into: "events (org_key, ts, id, kind, component_key, user_key, application_key, project_key)",
    values: |new| {
        let r = &new.row;
        let (id, component, user) = (r.id.as_bytes(), &r.component, &r.user);
        let (app, project) = (&r.application, &r.project);
        [&r.org, &r.ts, id, &r.kind, component, user, app, project]
    },
};

/// Inserts `rows` into `target`, [`ROWS_PER_INSERT`] a statement.
fn insert<const W: usize>(
    tx: &Transaction<'_>,
    target: &Target<W>,
    rows: &[NewRow],
) -> Result<(), StoreError> {
    let full = multi_row_insert(target, ROWS_PER_INSERT);
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut stmt = match chunk.len() {
            ROWS_PER_INSERT => tx.prepare_cached(&full)?,
            rows => tx.prepare_cached(&multi_row_insert(target, rows))?,
        };
        for (at, value) in chunk.iter().flat_map(target.values).enumerate() {
            stmt.raw_bind_parameter(1 + at, value)?;
        }
        let inserted = stmt.raw_execute()?;
        if inserted != chunk.len() {
            let (ignored, of, into) = (chunk.len() - inserted, chunk.len(), target.into);
            let why = format!("{ignored} of {of} new rows of {into} were already stored");
            return Err(StoreError::Corrupt(why));
        }
    }
    Ok(())
}

/// `INSERT OR IGNORE INTO {into} VALUES (…), (…)` for `rows` rows.
fn multi_row_insert<const W: usize>(target: &Target<W>, rows: usize) -> String {
    let row = format!("({})", ["?"; W].join(","));
    let values = vec![row; rows].join(",");
    format!("INSERT OR IGNORE INTO {} VALUES {values}", target.into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn row(id: u128) -> NewRow {
        NewRow {
            row: EventRow {
                org: 1,
                ts: 1_700_000_000_000,
                id: uuid::Uuid::from_u128(id),
                kind: 1,
                component: 1,
                user: 1,
                application: None,
                project: None,
            },
            facts: Fingerprint::from_bytes(&[7; 16]).unwrap_or_else(|| unreachable!()),
        }
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::migrations::apply(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        conn
    }

    #[test]
    fn every_row_goes_in_across_statements() {
        let mut conn = store();
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<NewRow> = (0..300).map(|i| row(1000 - i)).collect();
        insert(&tx, &IDS, &rows).unwrap_or_else(|e| panic!("{e}"));
        let count: i64 = tx
            .query_row("SELECT count(*) FROM event_ids", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count, 300);
    }

    #[test]
    fn an_id_already_stored_fails_the_insert_instead_of_being_ignored() {
        let mut conn = store();
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        tx.execute(
            "INSERT INTO event_ids (id, org_key, facts) VALUES (?1, 1, NULL)",
            [&uuid::Uuid::from_u128(5).as_bytes()[..]],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rows = [row(4), row(5), row(6)];
        let result = insert(&tx, &IDS, &rows);
        assert!(
            matches!(&result, Err(StoreError::Corrupt(why)) if why.contains("1 of 3 new rows")),
            "{result:?}"
        );
    }

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
