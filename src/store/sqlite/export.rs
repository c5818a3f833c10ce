//! The SQLite export: one statement on a pooled reader, run on a blocking
//! thread that feeds a bounded channel. The channel's bound is what keeps
//! memory flat: the query advances only as fast as the client reads.

use super::pool::ReadPool;
use crate::domain::{DateRange, EventKind, OrgId, Timestamp};
use crate::store::stream_after_first;
use crate::store::{ExportRow, RowBatch, RowStream, StoreError};
use rusqlite::{params, Row};
use tokio::sync::mpsc;

/// Rows per batch once streaming; the first batch is small so the first
/// bytes leave quickly whatever the window.
const BATCH_ROWS: usize = 1024;
const FIRST_BATCH_ROWS: usize = 64;
/// Batches buffered between the query thread and the HTTP body.
const CHANNEL_BATCHES: usize = 4;

const EXPORT_SQL: &str = "
SELECT e.ts, e.kind, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name,
       a.name, p.external_id, u.external_id, u.email
FROM events e
JOIN components c ON c.component_key = e.component_key
JOIN users u ON u.user_key = e.user_key
LEFT JOIN categories cat ON cat.category_key = c.category_key
LEFT JOIN manufacturers m ON m.manufacturer_key = c.manufacturer_key
LEFT JOIN applications a ON a.application_key = e.application_key
LEFT JOIN projects p ON p.project_key = e.project_key
WHERE e.org_key = (SELECT org_key FROM organizations WHERE org_id = ?1)
  AND e.ts >= ?2 AND e.ts < ?3
ORDER BY e.ts, e.id";

/// Starts the export and waits for its first batch, so that a store that
/// cannot run the query at all answers with an error status instead of a
/// 200 followed by an aborted body.
pub async fn export(
    readers: ReadPool,
    org: OrgId,
    range: DateRange,
) -> Result<RowStream, StoreError> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = run(&readers, &org, range, &tx) {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = tx.blocking_send(Err(e));
        }
    });
    stream_after_first(rx).await
}

fn run(
    readers: &ReadPool,
    org: &OrgId,
    range: DateRange,
    tx: &mpsc::Sender<Result<RowBatch, StoreError>>,
) -> Result<(), StoreError> {
    let conn = readers.get()?;
    let mut stmt = conn.prepare_cached(EXPORT_SQL)?;
    let mut rows = stmt.query(params![
        org.as_str(),
        range.start().millis(),
        range.end().millis()
    ])?;
    let mut limit = FIRST_BATCH_ROWS;
    let mut batch = Vec::with_capacity(limit);
    let mut sent_any = false;
    while let Some(row) = rows.next()? {
        batch.push(export_row(row)?);
        if batch.len() >= limit {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.blocking_send(Ok(full)).is_err() {
                return Ok(()); // client went away: stop reading
            }
            sent_any = true;
            limit = BATCH_ROWS;
        }
    }
    if !batch.is_empty() || !sent_any {
        let _ = tx.blocking_send(Ok(batch));
    }
    Ok(())
}

fn export_row(row: &Row<'_>) -> Result<ExportRow, StoreError> {
    let code: i64 = row.get(1)?;
    Ok(ExportRow {
        timestamp: Timestamp::from_millis(row.get(0)?),
        kind: EventKind::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {code}")))?,
        component_id: row.get(2)?,
        component_name: row.get(3)?,
        catalogs: row.get(4)?,
        category: row.get(5)?,
        manufacturer: row.get(6)?,
        application: row.get(7)?,
        project_id: row.get(8)?,
        user_id: row.get(9)?,
        user_email: row.get(10)?,
    })
}
