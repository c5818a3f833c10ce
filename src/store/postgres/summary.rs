//! The PostgreSQL summary: ONE `GROUP BY GROUPING SETS` over the window —
//! events per (grid group, kind), per component and per user, hash
//! aggregated in a single pass — then the ids and names of the few top-list
//! candidates, in one read-only repeatable-read transaction so that every
//! figure comes from the same snapshot.

use crate::domain::{Buckets, OrgId};
use crate::store::summary::{
    candidates, count, fill_buckets, rank, Candidates, GroupCount, Ranked, Ranking, Summary,
};
use crate::store::StoreError;
use deadpool_postgres::{Pool, Transaction};
use rustc_hash::FxHashMap;
use tokio_postgres::IsolationLevel;

const ORG_KEY_SQL: &str = "SELECT org_key FROM organizations WHERE org_id = $1";

/// Which grouping set a row belongs to: `GROUPING(component_key, user_key)`
/// is 3 for the (group, kind) rows, 1 for per-component rows, 2 for
/// per-user rows. `$4` is the grid's origin, `$5` its width; `ts >= $2 >=
/// $4`, so the division never sees a negative numerator.
const GROUPS_SQL: &str = "
SELECT GROUPING(component_key, user_key)::int AS set,
       (ts - $4) / $5 AS g, kind::bigint, component_key, user_key, COUNT(*)
FROM events
WHERE org_key = $1 AND ts >= $2 AND ts < $3
GROUP BY GROUPING SETS (((ts - $4) / $5, kind), (component_key), (user_key))";
const BUCKET_ROWS: i32 = 3;
const COMPONENT_ROWS: i32 = 1;
const USER_ROWS: i32 = 2;

const COMPONENTS_SQL: &str = "SELECT component_key, external_id, display_name FROM components
     WHERE org_key = $1 AND component_key = ANY($2)";
const USERS_SQL: &str =
    "SELECT user_key, external_id, email FROM users WHERE org_key = $1 AND user_key = ANY($2)";

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
    let mut groups = Vec::new();
    let (mut per_component, mut per_user) = (FxHashMap::default(), FxHashMap::default());
    // No organization row: no events were ever stored for it, every figure is zero.
    if let Some(key) = org_key {
        let (start, end) = (range.start().millis(), range.end().millis());
        let stmt = txn.prepare_cached(GROUPS_SQL).await?;
        for row in txn
            .query(&stmt, &[&key, &start, &end, &grid.origin, &grid.width])
            .await?
        {
            let events: i64 = row.try_get(5)?;
            match row.try_get::<_, i32>(0)? {
                BUCKET_ROWS => groups.push(GroupCount {
                    group: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    events,
                }),
                COMPONENT_ROWS => {
                    per_component.insert(row.try_get::<_, i64>(3)?, count(events));
                }
                USER_ROWS => {
                    per_user.insert(row.try_get::<_, i64>(4)?, count(events));
                }
                other => {
                    return Err(StoreError::Backend(format!(
                        "unexpected grouping set {other}"
                    )))
                }
            }
        }
    }
    let components = match org_key {
        Some(key) => named(&txn, COMPONENTS_SQL, key, candidates(per_component)).await?,
        None => Ranking::default(),
    };
    let users = match org_key {
        Some(key) => named(&txn, USERS_SQL, key, candidates(per_user)).await?,
        None => Ranking::default(),
    };
    txn.commit().await?;
    let filled = fill_buckets(buckets, grid, groups)?;
    Ok(Summary::assemble(filled, components, users))
}

/// Looks up the candidates' ids and labels and ranks them.
async fn named(
    txn: &Transaction<'_>,
    sql: &str,
    org_key: i64,
    candidates: Candidates,
) -> Result<Ranking, StoreError> {
    let keys: Vec<i64> = candidates.keys.iter().map(|&(key, _)| key).collect();
    let events: FxHashMap<i64, u64> = candidates.keys.into_iter().collect();
    let stmt = txn.prepare_cached(sql).await?;
    let mut out = Vec::with_capacity(keys.len());
    for row in txn.query(&stmt, &[&org_key, &keys]).await? {
        let key: i64 = row.try_get(0)?;
        out.push(Ranked {
            id: row.try_get(1)?,
            label: row.try_get(2)?,
            events: events.get(&key).copied().unwrap_or(0),
        });
    }
    if out.len() != keys.len() {
        return Err(StoreError::Corrupt("events refer to missing keys".into()));
    }
    Ok(rank(out, candidates.distinct))
}
