//! The PostgreSQL summary: the same three `GROUP BY`s as SQLite's over the
//! `(org_key, ts, id)` index, in one read-only repeatable-read transaction
//! so that every figure comes from the same snapshot.

use crate::domain::{Buckets, OrgId};
use crate::store::summary::{fill_buckets, GroupCount, Ranked, Summary, TOP_N};
use crate::store::StoreError;
use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::IsolationLevel;

const ORG_KEY_SQL: &str = "SELECT org_key FROM organizations WHERE org_id = $1";

/// Events per grid group and kind (`$4` origin, `$5` width; `ts >= $2 >=
/// $4`, so the division never sees a negative numerator).
const BUCKETS_SQL: &str = "
SELECT (ts - $4) / $5 AS g, kind::bigint, COUNT(*)
FROM events
WHERE org_key = $1 AND ts >= $2 AND ts < $3
GROUP BY g, kind";

/// The top components with, on every row, how many distinct ones there
/// are; ids in byte order, like SQLite's BINARY collation.
const TOP_COMPONENTS_SQL: &str = "
SELECT c.external_id, c.display_name, t.n, t.distinct_count
FROM (SELECT component_key, COUNT(*) AS n, COUNT(*) OVER () AS distinct_count
      FROM events
      WHERE org_key = $1 AND ts >= $2 AND ts < $3
      GROUP BY component_key) t
JOIN components c ON c.org_key = $1 AND c.component_key = t.component_key
ORDER BY t.n DESC, c.external_id COLLATE \"C\"
LIMIT $4";

/// The top users, as [`TOP_COMPONENTS_SQL`].
const TOP_USERS_SQL: &str = "
SELECT u.external_id, u.email, t.n, t.distinct_count
FROM (SELECT user_key, COUNT(*) AS n, COUNT(*) OVER () AS distinct_count
      FROM events
      WHERE org_key = $1 AND ts >= $2 AND ts < $3
      GROUP BY user_key) t
JOIN users u ON u.org_key = $1 AND u.user_key = t.user_key
ORDER BY t.n DESC, u.external_id COLLATE \"C\"
LIMIT $4";

/// Computes the summary.
pub async fn summary(pool: &Pool, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
    let mut client = pool.get().await?;
    let txn = client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let range = buckets.range();
    let grid = buckets.interval().grid(range);
    let org_key: Option<i64> = match txn
        .query_opt(&txn.prepare_cached(ORG_KEY_SQL).await?, &[&org.as_str()])
        .await?
    {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    let (start, end) = (range.start().millis(), range.end().millis());
    let (groups, components, users) = match org_key {
        // No events were ever stored for it: every figure is zero.
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(key) => {
            let stmt = txn.prepare_cached(BUCKETS_SQL).await?;
            let rows = txn
                .query(&stmt, &[&key, &start, &end, &grid.origin, &grid.width])
                .await?;
            let groups = rows
                .iter()
                .map(|r| {
                    Ok(GroupCount {
                        group: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        events: r.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let components = ranked(&txn, TOP_COMPONENTS_SQL, key, start, end).await?;
            let users = ranked(&txn, TOP_USERS_SQL, key, start, end).await?;
            (groups, components, users)
        }
    };
    txn.commit().await?;
    let filled = fill_buckets(buckets, grid, groups)?;
    Ok(Summary::assemble(filled, components, users))
}

async fn ranked(
    txn: &Transaction<'_>,
    sql: &str,
    org_key: i64,
    start: i64,
    end: i64,
) -> Result<Vec<Ranked>, StoreError> {
    let stmt = txn.prepare_cached(sql).await?;
    txn.query(&stmt, &[&org_key, &start, &end, &TOP_N])
        .await?
        .iter()
        .map(|r| {
            Ok(Ranked {
                id: r.try_get(0)?,
                label: r.try_get(1)?,
                events: r.try_get(2)?,
                distinct: r.try_get(3)?,
            })
        })
        .collect()
}
