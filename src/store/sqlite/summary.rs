//! The SQLite summary: three `GROUP BY`s over the `(org_key, ts, id)`
//! range scan, in one read transaction so that every figure comes from the
//! same snapshot.

use crate::domain::{Buckets, OrgId};
use crate::store::summary::{fill_buckets, GroupCount, Ranked, Summary, TOP_N};
use crate::store::StoreError;
use rusqlite::{params, Connection};

/// Events per grid group and kind (`?4` origin, `?5` width; `ts >= ?2 >=
/// ?4`, so the division never sees a negative numerator).
const BUCKETS_SQL: &str = "
SELECT (ts - ?4) / ?5 AS g, kind, COUNT(*)
FROM events
WHERE org_key = (SELECT org_key FROM organizations WHERE org_id = ?1)
  AND ts >= ?2 AND ts < ?3
GROUP BY g, kind";

/// The top components with, on every row, how many distinct ones there are.
const TOP_COMPONENTS_SQL: &str = "
SELECT c.external_id, c.display_name, t.n, t.distinct_count
FROM (SELECT component_key, COUNT(*) AS n, COUNT(*) OVER () AS distinct_count
      FROM events
      WHERE org_key = (SELECT org_key FROM organizations WHERE org_id = ?1)
        AND ts >= ?2 AND ts < ?3
      GROUP BY component_key) t
JOIN components c ON c.component_key = t.component_key
ORDER BY t.n DESC, c.external_id
LIMIT ?4";

/// The top users with, on every row, how many distinct ones there are.
const TOP_USERS_SQL: &str = "
SELECT u.external_id, u.email, t.n, t.distinct_count
FROM (SELECT user_key, COUNT(*) AS n, COUNT(*) OVER () AS distinct_count
      FROM events
      WHERE org_key = (SELECT org_key FROM organizations WHERE org_id = ?1)
        AND ts >= ?2 AND ts < ?3
      GROUP BY user_key) t
JOIN users u ON u.user_key = t.user_key
ORDER BY t.n DESC, u.external_id
LIMIT ?4";

/// Computes the summary on a pooled reader (blocking).
pub fn summary(conn: &Connection, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let range = buckets.range();
    let (start, end) = (range.start().millis(), range.end().millis());
    let grid = buckets.interval().grid(range);
    let mut stmt = tx.prepare_cached(BUCKETS_SQL)?;
    let groups = stmt
        .query_map(
            params![org.as_str(), start, end, grid.origin, grid.width],
            |r| {
                Ok(GroupCount {
                    group: r.get(0)?,
                    kind: r.get(1)?,
                    events: r.get(2)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    drop(stmt);
    let filled = fill_buckets(buckets, grid, groups)?;
    let components = ranked(&tx, TOP_COMPONENTS_SQL, org, start, end)?;
    let users = ranked(&tx, TOP_USERS_SQL, org, start, end)?;
    tx.finish()?;
    Ok(Summary::assemble(filled, components, users))
}

fn ranked(
    conn: &Connection,
    sql: &str,
    org: &OrgId,
    start: i64,
    end: i64,
) -> Result<Vec<Ranked>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(params![org.as_str(), start, end, TOP_N], |r| {
            Ok(Ranked {
                id: r.get(0)?,
                label: r.get(1)?,
                events: r.get(2)?,
                distinct: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
