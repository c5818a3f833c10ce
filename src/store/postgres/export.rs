//! The PostgreSQL export, in one repeatable-read, read-only transaction
//! (one snapshot for names and rows): the window's narrow integer rows as a
//! binary `COPY … TO STDOUT`, decoded in Rust ([`super::copy`]) into
//! batches that feed a bounded channel, and the dictionary of their names
//! (four queries, pipelined). A large window gets the organization's every
//! name first, then streams; a small one (a bounded count says which) is
//! read whole first and gets only the names it uses, which is what keeps
//! small downloads cheap without a cross-process cache. When the client
//! goes away the task cancels the COPY, its transaction rolls back and the
//! connection returns to the pool.
//!
//! The rows come from an ordered scan of the `(org_key, ts, id)` primary
//! key: the planner is told not to sort or scan the whole table, which for
//! a large window it would otherwise prefer, delaying the first byte by
//! the whole sort (see docs/operations.md).

use super::copy::CopyDecoder;
use crate::domain::{DateRange, OrgId};
use crate::export::{ComponentNames, Dictionary, DictionaryBuilder};
use crate::store::row::{export_channel, Batches, ExportSender, BATCH_ROWS};
use crate::store::{EventRow, Export, StoreError};
use deadpool_postgres::{Object, Pool, Transaction};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, IsolationLevel, NoTls};

/// Ordered index scan only (see module docs).
const INDEX_ORDER: &str =
    "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";

/// Windows of at most this many rows are read whole before any name: their
/// dictionary then holds only the names they use, which for a small
/// window is far cheaper than the organization's every name.
const SMALL_WINDOW_ROWS: i64 = 4096;

/// The organization's key and its window's row count, counted only up to
/// `$4` (so the count costs little however large the window).
const ORG_AND_SIZE_SQL: &str = "
SELECT o.org_key, (
    SELECT count(*) FROM (
        SELECT 1 FROM events e WHERE e.org_key = o.org_key AND e.ts >= $2 AND e.ts < $3 LIMIT $4
    ) w
)
FROM organizations o WHERE o.org_id = $1";

/// The dictionary queries: the organization's every name, or (`$2`) only
/// those of the given keys.
struct NameQueries {
    components: &'static str,
    users: &'static str,
    applications: &'static str,
    projects: &'static str,
}

macro_rules! name_queries {
    ($($filter:literal)?) => {
        NameQueries {
            components: concat!(
                "SELECT c.component_key, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name
                 FROM components c
                 LEFT JOIN categories cat ON cat.org_key = c.org_key AND cat.category_key = c.category_key
                 LEFT JOIN manufacturers m ON m.org_key = c.org_key AND m.manufacturer_key = c.manufacturer_key
                 WHERE c.org_key = $1",
                $(" AND c.component_key", $filter)?
            ),
            users: concat!(
                "SELECT user_key, external_id, email FROM users WHERE org_key = $1",
                $(" AND user_key", $filter)?
            ),
            applications: concat!(
                "SELECT application_key, name FROM applications WHERE org_key = $1",
                $(" AND application_key", $filter)?
            ),
            projects: concat!(
                "SELECT project_key, external_id FROM projects WHERE org_key = $1",
                $(" AND project_key", $filter)?
            ),
        }
    };
}

const ALL_NAMES: NameQueries = name_queries!();
const NAMES_OF_KEYS: NameQueries = name_queries!(" = ANY($2)");

/// The distinct keys a set of rows refers to, per dimension.
#[derive(Default)]
struct UsedKeys {
    components: Vec<i64>,
    users: Vec<i64>,
    applications: Vec<i64>,
    projects: Vec<i64>,
}

impl UsedKeys {
    fn of(rows: &[EventRow]) -> Self {
        let mut keys = Self::default();
        for r in rows {
            keys.components.push(r.component);
            keys.users.push(r.user);
            keys.applications.extend(r.application);
            keys.projects.extend(r.project);
        }
        for list in [
            &mut keys.components,
            &mut keys.users,
            &mut keys.applications,
            &mut keys.projects,
        ] {
            list.sort_unstable();
            list.dedup();
        }
        keys
    }
}

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
    let (start, end) = (range.start().millis(), range.end().millis());
    let find = txn.prepare_cached(ORG_AND_SIZE_SQL).await?;
    let (org_id, limit) = (org.as_str(), SMALL_WINDOW_ROWS + 1);
    let params: [&(dyn ToSql + Sync); 4] = [&org_id, &start, &end, &limit];
    // Sent together: one round trip.
    let ((), found) = tokio::try_join!(
        txn.batch_execute(INDEX_ORDER),
        txn.query_opt(&find, &params),
    )?;
    let Some(found) = found else {
        // No events were ever stored for it: a header-only download.
        tx.send_dictionary(Arc::default());
        let _ = tx.rows.send(Ok(Vec::new())).await;
        return Ok(Ended::Complete);
    };
    let (org_key, small): (i64, i64) = (found.try_get(0)?, found.try_get(1)?);
    let copy_statement = copy_sql(org_key, range);
    if small <= SMALL_WINDOW_ROWS {
        let mut rows = Vec::with_capacity(usize::try_from(small).unwrap_or(0));
        let copy = txn.copy_out(copy_statement.as_str()).await?;
        futures_util::pin_mut!(copy);
        let mut decoder = CopyDecoder::new();
        while let Some(chunk) = copy.next().await {
            decoder.feed(&chunk?, &mut rows)?;
        }
        if !decoder.finished() {
            return Err(StoreError::Backend(
                "COPY ended before its end marker".into(),
            ));
        }
        let dictionary = dictionary(txn, org_key, Some(&UsedKeys::of(&rows))).await?;
        tx.send_dictionary(Arc::new(dictionary));
        if rows.is_empty() {
            // An empty batch still tells `export` that the query ran.
            let _ = tx.rows.send(Ok(Vec::new())).await;
        }
        for part in rows.chunks(BATCH_ROWS) {
            if tx.rows.send(Ok(part.to_vec())).await.is_err() {
                break;
            }
        }
        return Ok(Ended::Complete);
    }
    let dictionary = Arc::new(dictionary(txn, org_key, None).await?);
    if !tx.send_dictionary(dictionary) {
        return Ok(Ended::Complete); // nobody waits any more; nothing running
    }
    let copy = txn.copy_out(copy_statement.as_str()).await?;
    futures_util::pin_mut!(copy);
    let mut decoder = CopyDecoder::new();
    let mut batches = Batches::new();
    let mut batch = Batches::batch();
    while let Some(chunk) = copy.next().await {
        decoder.feed(&chunk?, &mut batch)?;
        if let Some(full) = batches.full(&mut batch) {
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
        }
    }
    if !decoder.finished() {
        return Err(StoreError::Backend(
            "COPY ended before its end marker".into(),
        ));
    }
    if let Some(last) = batches.last(batch) {
        let _ = tx.rows.send(Ok(last)).await;
    }
    Ok(Ended::Complete)
}

/// Reads and renders the organization's names — all of them, or only
/// those of `keys` — with four queries sent together (one round trip).
async fn dictionary<'a>(
    txn: &'a Transaction<'_>,
    org_key: i64,
    keys: Option<&'a UsedKeys>,
) -> Result<Dictionary, StoreError> {
    let query = |sql: &'static str, list: Option<&'a [i64]>| async move {
        let stmt = txn.prepare_cached(sql).await?;
        match list {
            Some(list) => txn.query(&stmt, &[&org_key, &list]).await,
            None => txn.query(&stmt, &[&org_key]).await,
        }
    };
    let sql = if keys.is_some() {
        &NAMES_OF_KEYS
    } else {
        &ALL_NAMES
    };
    let (components, users, applications, projects) = tokio::try_join!(
        query(sql.components, keys.map(|k| k.components.as_slice())),
        query(sql.users, keys.map(|k| k.users.as_slice())),
        query(sql.applications, keys.map(|k| k.applications.as_slice())),
        query(sql.projects, keys.map(|k| k.projects.as_slice())),
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
