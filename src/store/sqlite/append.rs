//! The hottest writes of the store, one row per event: *claiming* a
//! group's event ids (their idempotency rows) and *appending* the new
//! events.
//!
//! The read step claims the first occurrence of each id in the group with
//! its facts, before anything is decided, as PostgreSQL does: an id that
//! goes in was not stored, so it is new; only ids that do not go in (a
//! re-send, nearly never in bulk) are then looked up for their stored
//! facts. One B-tree descent per id instead of a lookup and then an insert.
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
//! page copy per random insert. A claim says which ids went in (`RETURNING`);
//! an event row is never ignored, though: only claimed ids are appended, so
//! a statement that inserted fewer event rows than it was given fails the
//! whole transaction as corrupt.

use crate::domain::EventId;
use crate::store::decide::{FastHash, StoredEvents};
use crate::store::facts::Fingerprint;
use crate::store::keys::{Claim, EventRow};
use crate::store::StoreError;
use rusqlite::{CachedStatement, OptionalExtension, ToSql, Transaction};
use std::collections::HashSet;
use uuid::Uuid;

/// Rows inserted per statement: multi-row inserts spend far less time in
/// statement overhead than one row at a time (8 values a row, well under
/// SQLite's limit of 32,766 variables).
pub const ROWS_PER_INSERT: usize = 128;

/// Claims `claims`' ids, returning the stored facts of those that were
/// already stored (and so stay as they are).
pub fn claim(tx: &Transaction<'_>, claims: &[Claim]) -> Result<StoredEvents, StoreError> {
    let mut taken = Vec::new();
    for chunk in claims.chunks(ROWS_PER_INSERT) {
        let mut stmt = statement(tx, &IDS, chunk)?;
        let mut fresh = Vec::with_capacity(chunk.len());
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let id: [u8; 16] = row.get(0)?;
            fresh.push(Uuid::from_bytes(id));
        }
        if fresh.len() < chunk.len() {
            let fresh: HashSet<Uuid, FastHash> = fresh.into_iter().collect();
            taken.extend(chunk.iter().map(|c| c.id).filter(|id| !fresh.contains(id)));
        }
    }
    let mut stored = StoredEvents::with_capacity(taken.len());
    let mut facts = tx.prepare_cached("SELECT facts FROM event_ids WHERE id = ?1")?;
    for id in taken {
        let found = facts.query_row([id.as_bytes()], |r| {
            let blob = r.get_ref(0)?.as_blob_or_null()?;
            Ok(blob.and_then(Fingerprint::from_bytes))
        });
        let found = found.optional()?;
        let found =
            found.ok_or_else(|| StoreError::Corrupt("a stored event id vanished".into()))?;
        stored.insert(EventId::from_uuid(id), found);
    }
    Ok(stored)
}

/// Inserts `rows` into `events`, in clustering order: the rows of new
/// events, whose ids the read step claimed.
pub fn append(tx: &Transaction<'_>, mut rows: Vec<EventRow>) -> Result<(), StoreError> {
    rows.sort_unstable_by_key(|r| (r.org, r.ts, r.id));
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let inserted = statement(tx, &EVENTS, chunk)?.raw_execute()?;
        if inserted != chunk.len() {
            let (ignored, of, into) = (chunk.len() - inserted, chunk.len(), EVENTS.into);
            let why = format!("{ignored} of {of} new rows of {into} were already stored");
            return Err(StoreError::Corrupt(why));
        }
    }
    Ok(())
}

/// A table rows of type `R` go into: `table (columns)`, a row's values,
/// and what the insert returns.
struct Target<R: 'static, const W: usize> {
    into: &'static str,
    values: for<'r> fn(&'r R) -> [&'r dyn ToSql; W],
    returning: &'static str,
}

const IDS: Target<Claim, 3> = Target {
    into: "event_ids (id, org_key, facts)",
    values: |c| [c.id.as_bytes(), &c.org, c.facts.as_bytes()],
    returning: " RETURNING id",
};

const EVENTS: Target<EventRow, 8> = Target {
    into: "events (org_key, ts, id, kind, component_key, user_key, application_key, project_key)",
    values: |r| {
        let (id, component, user) = (r.id.as_bytes(), &r.component, &r.user);
        let (app, project) = (&r.application, &r.project);
        [&r.org, &r.ts, id, &r.kind, component, user, app, project]
    },
    returning: "",
};

/// The insert of `rows` into `target`, with their values bound.
fn statement<'c, R, const W: usize>(
    tx: &'c Transaction<'_>,
    target: &Target<R, W>,
    rows: &[R],
) -> Result<CachedStatement<'c>, StoreError> {
    let mut stmt = tx.prepare_cached(&multi_row_insert(target, rows.len()))?;
    for (at, value) in rows.iter().flat_map(target.values).enumerate() {
        stmt.raw_bind_parameter(1 + at, value)?;
    }
    Ok(stmt)
}

/// `INSERT OR IGNORE INTO {into} VALUES (…), (…)` for `rows` rows.
fn multi_row_insert<R, const W: usize>(target: &Target<R, W>, rows: usize) -> String {
    let row = format!("({})", ["?"; W].join(","));
    let values = vec![row; rows].join(",");
    format!(
        "INSERT OR IGNORE INTO {} VALUES {values}{}",
        target.into, target.returning
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn facts(byte: u8) -> Fingerprint {
        Fingerprint::from_bytes(&[byte; 16]).unwrap_or_else(|| unreachable!())
    }

    fn claim_of(id: u128) -> Claim {
        let id = Uuid::from_u128(id);
        Claim {
            id,
            org: 1,
            facts: facts(7),
        }
    }

    fn event(id: u128) -> EventRow {
        EventRow {
            org: 1,
            ts: 1_700_000_000_000,
            id: Uuid::from_u128(id),
            kind: 1,
            component: 1,
            user: 1,
            application: None,
            project: None,
        }
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::migrations::apply(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        conn
    }

    fn count(tx: &Transaction<'_>, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        tx.query_row(&sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_id_is_claimed_across_statements() {
        let mut conn = store();
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        let claims: Vec<Claim> = (0..300).map(|i| claim_of(700 + i)).collect();
        let stored = claim(&tx, &claims).unwrap_or_else(|e| panic!("{e}"));
        assert!(stored.is_empty());
        assert_eq!(count(&tx, "event_ids"), 300);
    }

    #[test]
    fn ids_already_stored_are_not_claimed_and_come_back_with_their_facts() {
        let mut conn = store();
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        let before = "INSERT INTO event_ids (id, org_key, facts) VALUES (?1, 1, ?2)";
        for (id, stored) in [(5u128, None), (6, Some(facts(9)))] {
            let stored = stored.map(|f| f.as_bytes().to_vec());
            tx.execute(before, (&Uuid::from_u128(id).as_bytes()[..], stored))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let claims: Vec<Claim> = (4..=7).map(claim_of).collect();
        let stored = claim(&tx, &claims).unwrap_or_else(|e| panic!("{e}"));
        let id = |n| EventId::from_uuid(Uuid::from_u128(n));
        let expected = StoredEvents::from_iter([(id(5), None), (id(6), Some(facts(9)))]);
        assert_eq!(stored, expected);
        assert_eq!(count(&tx, "event_ids"), 4);
    }

    #[test]
    fn an_event_row_already_stored_fails_the_append_instead_of_being_ignored() {
        let mut conn = store();
        let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
        append(&tx, vec![event(5)]).unwrap_or_else(|e| panic!("{e}"));
        let result = append(&tx, vec![event(4), event(5), event(6)]);
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
            "INSERT OR IGNORE INTO event_ids (id, org_key, facts) VALUES (?,?,?),(?,?,?) RETURNING id"
        );
        assert_eq!(multi_row_insert(&EVENTS, 3).matches('?').count(), 24);
    }
}
