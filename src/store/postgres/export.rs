//! The PostgreSQL export: one query behind a cursor in a read-only
//! transaction, fetched a batch at a time by a task that feeds a bounded
//! channel. The cursor bounds the rows in flight from the server, the
//! channel bounds the batches waiting for the client; when the client goes
//! away the task stops, its transaction rolls back and the connection
//! returns to the pool.
//!
//! A cursor rather than a plain portal because PostgreSQL plans cursors for
//! a fast start: with a small `cursor_tuple_fraction` it walks the
//! `(org_key, ts, id)` index in order with nested-loop lookups of the
//! (small) dimension tables, so the first rows leave at once however large
//! the window. A plain query over a large window would instead be planned
//! as hash joins followed by a full sort, which delays the first byte by
//! seconds and spills to disk.

use crate::domain::{DateRange, EventKind, OrgId, Timestamp};
use crate::store::stream_after_first;
use crate::store::{ExportRow, RowBatch, RowStream, StoreError};
use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_postgres::Row;

/// Rows per fetch once streaming; the first fetch is small so the first
/// bytes leave quickly whatever the window.
const BATCH_ROWS: usize = 1024;
const FIRST_BATCH_ROWS: usize = 64;
/// Batches buffered between the fetching task and the HTTP body.
const CHANNEL_BATCHES: usize = 4;

/// Tells the planner that only the first rows matter (see module docs).
const FAST_START: &str = "SET LOCAL cursor_tuple_fraction = 0.001";

/// The same query as SQLite's, behind a cursor. The organization's key is resolved first
/// (`ORG_KEY_SQL`) and every join carries org_key, so that on a database
/// distributed by organization the whole export runs on one shard.
const EXPORT_SQL: &str = "
DECLARE catalytics_export NO SCROLL CURSOR FOR
SELECT e.ts, e.kind, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name,
       a.name, p.external_id, u.external_id, u.email
FROM events e
JOIN components c ON c.org_key = e.org_key AND c.component_key = e.component_key
JOIN users u ON u.org_key = e.org_key AND u.user_key = e.user_key
LEFT JOIN categories cat ON cat.org_key = c.org_key AND cat.category_key = c.category_key
LEFT JOIN manufacturers m ON m.org_key = c.org_key AND m.manufacturer_key = c.manufacturer_key
LEFT JOIN applications a ON a.org_key = e.org_key AND a.application_key = e.application_key
LEFT JOIN projects p ON p.org_key = e.org_key AND p.project_key = e.project_key
WHERE e.org_key = $1 AND e.ts >= $2 AND e.ts < $3
ORDER BY e.ts, e.id";

const ORG_KEY_SQL: &str = "SELECT org_key FROM organizations WHERE org_id = $1";

/// Starts the export and waits for its first batch, so that a store that
/// cannot run the query at all answers with an error status instead of a
/// 200 followed by an aborted body.
pub async fn export(pool: Pool, org: OrgId, range: DateRange) -> Result<RowStream, StoreError> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    tokio::spawn(async move {
        if let Err(e) = run(&pool, &org, range, &tx).await {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = tx.send(Err(e)).await;
        }
    });
    stream_after_first(rx).await
}

async fn run(
    pool: &Pool,
    org: &OrgId,
    range: DateRange,
    tx: &mpsc::Sender<Result<RowBatch, StoreError>>,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let txn = client.build_transaction().read_only(true).start().await?;
    let org_key: i64 = match txn
        .query_opt(&txn.prepare_cached(ORG_KEY_SQL).await?, &[&org.as_str()])
        .await?
    {
        Some(row) => row.try_get(0)?,
        None => {
            // No events were ever stored for it: a header-only download.
            let _ = tx.send(Ok(Vec::new())).await;
            return Ok(());
        }
    };
    txn.batch_execute(FAST_START).await?;
    let declare = txn.prepare_cached(EXPORT_SQL).await?;
    let (start, end) = (range.start().millis(), range.end().millis());
    txn.execute(&declare, &[&org_key, &start, &end]).await?;
    // Prepared after the cursor exists, as describing a FETCH needs it.
    let first = txn
        .prepare(&format!("FETCH {FIRST_BATCH_ROWS} FROM catalytics_export"))
        .await?;
    let next = txn
        .prepare(&format!("FETCH {BATCH_ROWS} FROM catalytics_export"))
        .await?;
    let (mut fetch, mut limit) = (&first, FIRST_BATCH_ROWS);
    loop {
        let rows = txn.query(fetch, &[]).await?;
        let last = rows.len() < limit;
        let batch = rows
            .iter()
            .map(export_row)
            .collect::<Result<RowBatch, _>>()?;
        // An empty first batch is still sent: it tells `export` the query ran.
        if (!batch.is_empty() || limit == FIRST_BATCH_ROWS) && tx.send(Ok(batch)).await.is_err() {
            return Ok(()); // client went away: stop reading
        }
        if last {
            return Ok(());
        }
        (fetch, limit) = (&next, BATCH_ROWS);
    }
}

fn export_row(row: &Row) -> Result<ExportRow, StoreError> {
    let code: i16 = row.try_get(1)?;
    Ok(ExportRow {
        timestamp: Timestamp::from_millis(row.try_get(0)?),
        kind: EventKind::from_code(i64::from(code))
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {code}")))?,
        component_id: row.try_get(2)?,
        component_name: row.try_get(3)?,
        catalogs: row.try_get(4)?,
        category: row.try_get(5)?,
        manufacturer: row.try_get(6)?,
        application: row.try_get(7)?,
        project_id: row.try_get(8)?,
        user_id: row.try_get(9)?,
        user_email: row.try_get(10)?,
    })
}
