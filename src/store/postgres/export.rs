//! The PostgreSQL export, in one repeatable-read, read-only transaction
//! (one snapshot for names and rows): the organization's dictionary (four
//! small queries, pipelined), then the window's narrow integer rows as a
//! binary `COPY … TO STDOUT`, decoded in Rust ([`super::copy`]) into
//! batches that feed a bounded channel. When the client goes away the task
//! cancels the COPY, its transaction rolls back and the connection returns
//! to the pool.
//!
//! The rows come from an ordered scan of the `(org_key, ts, id)` primary
//! key: the planner is told not to sort or scan the whole table, which for
//! a large window it would otherwise prefer, delaying the first byte by
//! the whole sort (see docs/operations.md).

use super::copy::CopyDecoder;
use crate::domain::{DateRange, OrgId};
use crate::export::{ComponentNames, Dictionary, DictionaryBuilder};
use crate::store::row::{export_channel, ExportSender, BATCH_ROWS, FIRST_BATCH_ROWS};
use crate::store::{Export, StoreError};
use deadpool_postgres::{Object, Pool, Transaction};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{CancelToken, IsolationLevel, NoTls};

/// Ordered index scan only (see module docs).
const INDEX_ORDER: &str =
    "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";

const ORG_KEY_SQL: &str = "SELECT org_key FROM organizations WHERE org_id = $1";
const COMPONENTS_SQL: &str = "
SELECT c.component_key, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name
FROM components c
LEFT JOIN categories cat ON cat.org_key = c.org_key AND cat.category_key = c.category_key
LEFT JOIN manufacturers m ON m.org_key = c.org_key AND m.manufacturer_key = c.manufacturer_key
WHERE c.org_key = $1";
const USERS_SQL: &str = "SELECT user_key, external_id, email FROM users WHERE org_key = $1";
const APPLICATIONS_SQL: &str =
    "SELECT application_key, name FROM applications WHERE org_key = $1";
const PROJECTS_SQL: &str = "SELECT project_key, external_id FROM projects WHERE org_key = $1";

/// The COPY statement for one window. COPY takes no parameters; the values
/// are integers formatted here, never text from a request.
fn copy_sql(org_key: i64, range: DateRange) -> String {
    format!(
        "COPY (SELECT ts, kind, component_key, user_key, application_key, project_key
               FROM events WHERE org_key = {org_key} AND ts >= {} AND ts < {}
               ORDER BY ts, id) TO STDOUT (FORMAT binary)",
        range.start().millis(),
        range.end().millis()
    )
}

/// Starts the export and waits for its dictionary and first batch.
pub async fn export(pool: Pool, org: OrgId, range: DateRange) -> Result<Export, StoreError> {
    let (mut tx, rx) = export_channel();
    tokio::spawn(async move {
        if let Err(e) = run(&pool, &org, range, &mut tx).await {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = tx.rows.send(Err(e)).await;
        }
    });
    rx.start().await
}

/// How a COPY ended.
enum Ended {
    /// Every row was sent (or an empty window answered).
    Complete,
    /// The client went away and the COPY was cancelled. `reusable` is
    /// false when the server may still deliver that cancel later, which
    /// would hit the connection's next query: it is then closed instead of
    /// going back to the pool.
    Abandoned { reusable: bool },
}

async fn run(
    pool: &Pool,
    org: &OrgId,
    range: DateRange,
    tx: &mut ExportSender,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let cancel = client.cancel_token();
    let txn = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let ended = stream(&txn, &cancel, org, range, tx).await?;
    drop(txn);
    if let Ended::Abandoned { reusable: false } = ended {
        drop(Object::take(client));
    }
    Ok(())
}

async fn stream(
    txn: &Transaction<'_>,
    cancel: &CancelToken,
    org: &OrgId,
    range: DateRange,
    tx: &mut ExportSender,
) -> Result<Ended, StoreError> {
    let org_key: i64 = match txn
        .query_opt(&txn.prepare_cached(ORG_KEY_SQL).await?, &[&org.as_str()])
        .await?
    {
        Some(row) => row.try_get(0)?,
        None => {
            // No events were ever stored for it: a header-only download.
            if let Some(d) = tx.dictionary.take() {
                let _ = d.send(Arc::new(Dictionary::default()));
            }
            let _ = tx.rows.send(Ok(Vec::new())).await;
            return Ok(Ended::Complete);
        }
    };
    let dictionary = Arc::new(dictionary(txn, org_key).await?);
    if let Some(d) = tx.dictionary.take() {
        if d.send(dictionary).is_err() {
            return Ok(Ended::Complete); // nobody waits any more; nothing running
        }
    }
    txn.batch_execute(INDEX_ORDER).await?;
    let copy = txn.copy_out(copy_sql(org_key, range).as_str()).await?;
    futures_util::pin_mut!(copy);
    let mut decoder = CopyDecoder::new();
    let mut limit = FIRST_BATCH_ROWS;
    let mut batch = Vec::with_capacity(BATCH_ROWS + 64);
    let mut sent_any = false;
    while let Some(chunk) = copy.next().await {
        decoder.feed(&chunk?, &mut batch)?;
        if batch.len() >= limit {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS + 64));
            if tx.rows.send(Ok(full)).await.is_err() {
                // Client went away: stop the server's side of the COPY too,
                // so the connection is free at once, not after the window.
                let _ = cancel.cancel_query(NoTls).await;
                let mut reusable = false;
                while let Some(rest) = copy.next().await {
                    if let Err(e) = rest {
                        reusable = e.code() == Some(&SqlState::QUERY_CANCELED);
                        break;
                    }
                }
                return Ok(Ended::Abandoned { reusable });
            }
            sent_any = true;
            limit = BATCH_ROWS;
        }
    }
    if !decoder.finished() {
        return Err(StoreError::Backend("COPY ended before its end marker".into()));
    }
    if !batch.is_empty() || !sent_any {
        let _ = tx.rows.send(Ok(batch)).await;
    }
    Ok(Ended::Complete)
}

/// Reads and renders every name of the organization: four queries sent
/// together, so one round trip.
async fn dictionary(txn: &Transaction<'_>, org_key: i64) -> Result<Dictionary, StoreError> {
    let (components, users, applications, projects) = tokio::try_join!(
        async { txn.query(&txn.prepare_cached(COMPONENTS_SQL).await?, &[&org_key]).await },
        async { txn.query(&txn.prepare_cached(USERS_SQL).await?, &[&org_key]).await },
        async { txn.query(&txn.prepare_cached(APPLICATIONS_SQL).await?, &[&org_key]).await },
        async { txn.query(&txn.prepare_cached(PROJECTS_SQL).await?, &[&org_key]).await },
    )?;
    let mut b = DictionaryBuilder::new();
    for r in &components {
        b.component(
            r.try_get(0)?,
            ComponentNames {
                id: r.try_get(1)?,
                name: r.try_get(2)?,
                catalogs: r.try_get(3)?,
                category: r.try_get(4)?,
                manufacturer: r.try_get(5)?,
            },
        );
    }
    for r in &users {
        b.user(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    }
    for r in &applications {
        b.application(r.try_get(0)?, r.try_get(1)?);
    }
    for r in &projects {
        b.project(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(b.build())
}
