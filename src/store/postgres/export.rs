//! The PostgreSQL export.
//!
//! A small window (at most [`SMALL_WINDOW_ROWS`] rows) is one prepared
//! statement, sent in one round trip with the read-only transaction around
//! it that tells the planner to scan in key order: the organization's key,
//! its dictionary version (its change-log rows, see migrations 6 and 8)
//! and the window's narrow rows packed into one value, all from one
//! snapshot. When
//! the process-wide [`DictionaryCache`] holds that organization's names at
//! that version and they cover every key of the rows, that is the whole
//! download: one round trip, no names read.
//!
//! Otherwise (a larger window, a changed or uncached dictionary) the export
//! runs in one repeatable-read, read-only transaction (one snapshot for
//! names and rows): the window's rows as a binary `COPY … TO STDOUT`,
//! decoded in Rust ([`super::copy`]) into batches that feed a bounded
//! channel, and the organization's every name (four queries, pipelined),
//! which are then cached for the small windows that follow. When the
//! client goes away the task cancels the COPY, its transaction rolls back
//! and the connection returns to the pool.
//!
//! The rows come from an ordered scan of the `(org_key, ts, id)` primary
//! key: the planner is told not to sort or scan the whole table, which for
//! a large window it would otherwise prefer, delaying the first byte by
//! the whole sort (see docs/operations.md).

use super::copy::CopyDecoder;
use crate::domain::{DateRange, OrgId};
use crate::domain::{EventKind, Timestamp};
use crate::export::{ComponentNames, Dictionary, DictionaryBuilder, DictionaryCache};
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

/// Windows of at most this many rows are read whole, in one statement,
/// before anything is sent.
const SMALL_WINDOW_ROWS: i64 = 4096;

/// The dictionary version of the organization whose key the SQL
/// expression `$key` yields (migrations 6 and 8): the change rows pruned
/// so far plus those left, read by one statement, hence from one
/// snapshot. A prune moves rows from one term to the other in one
/// transaction ([`PRUNE_SQL`]), so it never changes the version.
macro_rules! dictionary_version {
    ($key:literal) => {
        concat!(
            "(COALESCE((SELECT p.pruned FROM dictionary_pruned p WHERE p.org_key = ",
            $key,
            "), 0) + (SELECT count(*) FROM dictionary_changes d WHERE d.org_key = ",
            $key,
            "))"
        )
    };
}

/// The organization's key and dictionary version, and its window's first
/// `$4` rows packed into one value ([`unpack`]): one result row, however
/// many events, so neither side pays per-tuple protocol costs. The
/// organization and the version are read once (init plans); the rows come
/// from the primary key in key order. An unknown organization has a NULL
/// key.
const SMALL_WINDOW_SQL: &str = concat!(
    r"
SELECT (SELECT org_key FROM organizations WHERE org_id = $1),
       ",
    dictionary_version!("(SELECT org_key FROM organizations WHERE org_id = $1)"),
    r",
       count(*),
       string_agg(
           int8send(w.ts) || int2send(w.kind) || int8send(w.component_key) || int8send(w.user_key)
           || CASE WHEN w.application_key IS NULL THEN '\x00'::bytea
                   ELSE '\x01'::bytea || int8send(w.application_key) END
           || CASE WHEN w.project_key IS NULL THEN '\x00'::bytea
                   ELSE '\x01'::bytea || int8send(w.project_key) END,
           ''::bytea ORDER BY w.ts, w.id)
FROM (
    SELECT ev.ts, ev.id, ev.kind, ev.component_key, ev.user_key,
           ev.application_key, ev.project_key
    FROM events ev
    WHERE ev.org_key = (SELECT org_key FROM organizations WHERE org_id = $1)
      AND ev.ts >= $2 AND ev.ts < $3
    ORDER BY ev.ts, ev.id
    LIMIT $4
) w"
);

/// Reads the rows [`SMALL_WINDOW_SQL`] packed: per row the timestamp, kind,
/// component and user (big-endian), then the application and the project,
/// each a presence byte followed, when present, by the key.
fn unpack(mut packed: &[u8], count: usize) -> Result<Vec<EventRow>, StoreError> {
    fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], StoreError> {
        let (head, rest) = bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| StoreError::Corrupt("packed export rows end early".into()))?;
        *bytes = rest;
        Ok(*head)
    }
    fn optional(bytes: &mut &[u8]) -> Result<Option<i64>, StoreError> {
        match take::<1>(bytes)? {
            [0] => Ok(None),
            [1] => Ok(Some(i64::from_be_bytes(take(bytes)?))),
            [other] => Err(StoreError::Corrupt(format!(
                "packed export rows: presence byte {other}"
            ))),
        }
    }
    let mut rows = Vec::with_capacity(count);
    while !packed.is_empty() {
        let timestamp = Timestamp::from_millis(i64::from_be_bytes(take(&mut packed)?));
        let code = i16::from_be_bytes(take(&mut packed)?);
        rows.push(EventRow {
            timestamp,
            kind: EventKind::from_code(code.into())
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {code}")))?,
            component: i64::from_be_bytes(take(&mut packed)?),
            user: i64::from_be_bytes(take(&mut packed)?),
            application: optional(&mut packed)?,
            project: optional(&mut packed)?,
        });
    }
    if rows.len() != count {
        return Err(StoreError::Corrupt(format!(
            "packed export rows: {} rows, {count} counted",
            rows.len()
        )));
    }
    Ok(rows)
}

/// The organization's key, its dictionary version and its window's row
/// count, counted only up to `$4` (so the count costs little however large
/// the window).
const ORG_AND_SIZE_SQL: &str = concat!(
    "
SELECT o.org_key, (
    SELECT count(*) FROM (
        SELECT 1 FROM events e WHERE e.org_key = o.org_key AND e.ts >= $2 AND e.ts < $3 LIMIT $4
    ) w
), ",
    dictionary_version!("o.org_key"),
    "
FROM organizations o WHERE o.org_id = $1"
);

/// The organization's every name, per dimension.
const COMPONENTS_SQL: &str = "
SELECT c.component_key, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name
FROM components c
LEFT JOIN categories cat ON cat.org_key = c.org_key AND cat.category_key = c.category_key
LEFT JOIN manufacturers m ON m.org_key = c.org_key AND m.manufacturer_key = c.manufacturer_key
WHERE c.org_key = $1";
const USERS_SQL: &str = "SELECT user_key, external_id, email FROM users WHERE org_key = $1";
const APPLICATIONS_SQL: &str = "SELECT application_key, name FROM applications WHERE org_key = $1";
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

/// What the small-window statement found.
enum SmallWindow {
    /// Every row, with names from the cache: the whole export.
    Done(Export),
    /// No rows (an empty window, or an organization that never stored an
    /// event): a header-only download.
    Empty,
    /// Larger than a small window, or its names are not cached: the
    /// transaction path must run.
    NotCached,
}

/// Runs the export: the small-window statement first, then, when that was
/// not the whole of it, the transaction path (waiting for its dictionary
/// and first batch).
pub async fn export(
    pool: Pool,
    cache: Arc<DictionaryCache>,
    org: OrgId,
    range: DateRange,
) -> Result<Export, StoreError> {
    match small_window(&pool, &cache, &org, range).await? {
        SmallWindow::Done(export) => return Ok(export),
        SmallWindow::Empty => {
            return Ok(Export::whole(Arc::default(), Vec::new()));
        }
        SmallWindow::NotCached => {}
    }
    let (mut tx, rx) = export_channel();
    tokio::spawn(async move {
        if let Err(e) = run(&pool, &cache, &org, range, &mut tx).await {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = tx.rows.send(Err(e)).await;
        }
    });
    rx.start().await
}

/// One statement, one snapshot: up to [`SMALL_WINDOW_ROWS`] + 1 rows and
/// the organization's dictionary version, in one result row.
async fn small_window(
    pool: &Pool,
    cache: &DictionaryCache,
    org: &OrgId,
    range: DateRange,
) -> Result<SmallWindow, StoreError> {
    let found = {
        let client = pool.get().await?;
        let stmt = client.prepare_cached(SMALL_WINDOW_SQL).await?;
        let (start, end, limit) = (
            range.start().millis(),
            range.end().millis(),
            SMALL_WINDOW_ROWS + 1,
        );
        // In a transaction told to scan the primary key in order, all sent
        // at once (one round trip): with many organizations the planner
        // takes `org_key = (subquery)` for an average one, expects a few
        // rows and would otherwise sort the whole organization's events
        // (0.3 s for a million) to keep 4,097.
        let (begun, ordered, found, ended) = futures_util::future::join4(
            client.batch_execute("BEGIN READ ONLY"),
            client.batch_execute(INDEX_ORDER),
            client.query_one(&stmt, &[&org.as_str(), &start, &end, &limit]),
            client.batch_execute("COMMIT"),
        )
        .await;
        begun?;
        ordered?;
        let found = found?;
        ended?;
        found
    };
    let Some(org_key) = found.try_get::<_, Option<i64>>(0)? else {
        return Ok(SmallWindow::Empty); // never stored an event
    };
    let (version, count): (i64, i64) = (found.try_get(1)?, found.try_get(2)?);
    if count == 0 {
        return Ok(SmallWindow::Empty);
    }
    if count > SMALL_WINDOW_ROWS {
        return Ok(SmallWindow::NotCached);
    }
    let Some(dictionary) = cache.get(org_key, version) else {
        return Ok(SmallWindow::NotCached);
    };
    let rows = unpack(found.try_get(3)?, usize::try_from(count).unwrap_or(0))?;
    if !dictionary.covers(&rows) {
        return Ok(SmallWindow::NotCached);
    }
    Ok(SmallWindow::Done(Export::whole(dictionary, rows)))
}

/// Moves up to `$1` rows of the dictionary change log into the
/// organizations' pruned counts (migration 8): the rows deleted and their
/// number added, per organization, in one statement, so no snapshot sees
/// one without the other and [`dictionary_version!`] stays the same.
const PRUNE_SQL: &str = "
WITH gone AS (
    DELETE FROM dictionary_changes d
     WHERE (d.org_key, d.seq) IN (SELECT org_key, seq FROM dictionary_changes LIMIT $1)
    RETURNING d.org_key),
counted AS (
    INSERT INTO dictionary_pruned AS p (org_key, pruned)
    SELECT org_key, count(*) FROM gone GROUP BY org_key
    ON CONFLICT (org_key) DO UPDATE SET pruned = p.pruned + excluded.pruned)
SELECT count(*) FROM gone";

/// One prune step of at most `limit` rows, under the maintenance lock (so
/// replicas never delete the same rows in different orders and deadlock);
/// `None` when another replica holds it.
pub async fn prune(pool: &Pool, limit: i64) -> Result<Option<u64>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if !super::partitions::try_lock(&tx).await? {
        return Ok(None);
    }
    let moved: i64 = tx.query_one(PRUNE_SQL, &[&limit]).await?.try_get(0)?;
    tx.commit().await?;
    Ok(Some(u64::try_from(moved).unwrap_or(0)))
}

/// The organization's dictionary version; `None` when it never stored an
/// event.
pub async fn version(pool: &Pool, org: &OrgId) -> Result<Option<i64>, StoreError> {
    let client = pool.get().await?;
    let sql = concat!(
        "SELECT ",
        dictionary_version!("o.org_key"),
        " FROM organizations o WHERE o.org_id = $1"
    );
    let found = client.query_opt(sql, &[&org.as_str()]).await?;
    Ok(found.map(|row| row.try_get(0)).transpose()?)
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
    cache: &DictionaryCache,
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
    let ended = stream(&txn, cache, &cancel, org, range, tx).await?;
    drop(txn);
    if let Ended::Abandoned { reusable: false } = ended {
        drop(Object::take(client));
    }
    Ok(())
}

async fn stream(
    txn: &Transaction<'_>,
    cache: &DictionaryCache,
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
    let (org_key, small, version): (i64, i64, i64) =
        (found.try_get(0)?, found.try_get(1)?, found.try_get(2)?);
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
        let dictionary = match cache.get(org_key, version) {
            Some(cached) if cached.covers(&rows) => cached,
            _ => names(txn, cache, org_key, version).await?,
        };
        tx.send_dictionary(dictionary);
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
    // A large window's rows cannot be checked against a cached dictionary
    // before they stream: its names are read afresh.
    let dictionary = names(txn, cache, org_key, version).await?;
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

/// Reads the organization's every name in the transaction's snapshot,
/// whose dictionary version is `version`, and caches them.
async fn names(
    txn: &Transaction<'_>,
    cache: &DictionaryCache,
    org_key: i64,
    version: i64,
) -> Result<Arc<Dictionary>, StoreError> {
    let dictionary = Arc::new(dictionary(txn, org_key).await?);
    cache.insert(org_key, version, Arc::clone(&dictionary));
    Ok(dictionary)
}

/// Reads and renders the organization's every name with four queries
/// sent together (one round trip).
async fn dictionary(txn: &Transaction<'_>, org_key: i64) -> Result<Dictionary, StoreError> {
    let query = |sql: &'static str| async move {
        let stmt = txn.prepare_cached(sql).await?;
        txn.query(&stmt, &[&org_key]).await
    };
    let (components, users, applications, projects) = tokio::try_join!(
        query(COMPONENTS_SQL),
        query(USERS_SQL),
        query(APPLICATIONS_SQL),
        query(PROJECTS_SQL),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(rows: &[EventRow]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in rows {
            out.extend_from_slice(&r.timestamp.millis().to_be_bytes());
            out.extend_from_slice(&r.kind.code().to_be_bytes());
            out.extend_from_slice(&r.component.to_be_bytes());
            out.extend_from_slice(&r.user.to_be_bytes());
            for key in [r.application, r.project] {
                match key {
                    None => out.push(0),
                    Some(k) => {
                        out.push(1);
                        out.extend_from_slice(&k.to_be_bytes());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn unpacks_what_the_statement_packs_and_refuses_the_rest() {
        let rows: Vec<EventRow> = (0..5i64)
            .map(|i| EventRow {
                timestamp: Timestamp::from_millis(1_700_000_000_000 + i),
                kind: EventKind::ALL[i as usize % 3],
                component: i + 1,
                user: -i,
                application: (i % 2 == 0).then_some(i * 10),
                project: (i % 3 == 0).then_some(i64::MAX - i),
            })
            .collect();
        let packed = pack(&rows);
        assert_eq!(unpack(&packed, rows.len()).unwrap(), rows);
        assert_eq!(unpack(&[], 0).unwrap(), Vec::new());
        for bad in [
            unpack(&packed[..packed.len() - 1], rows.len()),
            unpack(&packed, rows.len() + 1),
        ] {
            assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
        }
        let mut wrong_flag = pack(&rows[..1]);
        let flag_at = 8 + 2 + 8 + 8;
        wrong_flag[flag_at] = 7;
        assert!(matches!(
            unpack(&wrong_flag, 1),
            Err(StoreError::Corrupt(_))
        ));
    }
}
