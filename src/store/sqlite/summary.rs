//! The SQLite summary: ONE covering range scan of `(org_key, ts, id)` over
//! the window, summed as it streams by (`store::summary::Tally`), then the
//! ids and names of the few top-list candidates, all in one read
//! transaction so that every figure comes from the same snapshot.
//!
//! Not `GROUP BY`s as on PostgreSQL: SQLite groups by sorting, and sorting
//! a million rows three times (buckets, components, users) costs several
//! times more than one scan; an index per grouping would instead nearly
//! double the file and slow every ingestion (see BENCHMARKS.md, "Usage
//! summary").

use crate::domain::{Buckets, OrgId};
use crate::store::summary::{rank, Candidates, Ranked, Ranking, Summary, Tally};
use crate::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// The window's events in timestamp order: the primary key's order, so
/// SQLite reads the table's own b-tree without sorting.
const SCAN_SQL: &str = "
SELECT ts, kind, component_key, user_key
FROM events
WHERE org_key = (SELECT org_key FROM organizations WHERE org_id = ?1)
  AND ts >= ?2 AND ts < ?3
ORDER BY ts";

const COMPONENT_SQL: &str =
    "SELECT external_id, display_name FROM components WHERE component_key = ?1";
const USER_SQL: &str = "SELECT external_id, email FROM users WHERE user_key = ?1";

/// Computes the summary on a pooled reader (blocking).
pub fn summary(conn: &Connection, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let range = buckets.range();
    let mut tally = Tally::new(buckets);
    {
        let mut stmt = tx.prepare_cached(SCAN_SQL)?;
        let mut rows = stmt.query(params![
            org.as_str(),
            range.start().millis(),
            range.end().millis()
        ])?;
        while let Some(row) = rows.next()? {
            tally.add(buckets, row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)?;
        }
    }
    let (filled, components, users) = tally.finish();
    let components = named(&tx, COMPONENT_SQL, components)?;
    let users = named(&tx, USER_SQL, users)?;
    tx.finish()?;
    Ok(Summary::assemble(filled, components, users))
}

/// Looks up the candidates' ids and labels and ranks them.
fn named(conn: &Connection, sql: &str, candidates: Candidates) -> Result<Ranking, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::with_capacity(candidates.keys.len());
    for (key, events) in candidates.keys {
        let (id, label): (String, String) = stmt
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("event refers to missing key {key}")))?;
        out.push(Ranked { id, label, events });
    }
    Ok(rank(out, candidates.distinct))
}
