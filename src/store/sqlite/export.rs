//! The SQLite export: on a pooled reader, inside one read transaction, the
//! organization's dictionary (from the cache when its version still
//! matches) and then a range scan of the narrow `events` table, which is
//! clustered on `(org_key, ts, id)` — no join, no sort. It runs on a
//! blocking thread that feeds a bounded channel: the scan advances only as
//! fast as the client reads.

use super::pool::ReadPool;
use crate::domain::{DateRange, EventKind, OrgId, Timestamp};
use crate::export::{ComponentNames, Dictionary, DictionaryBuilder, DictionaryCache};
use crate::store::row::{export_channel, Batches, ExportSender};
use crate::store::{EventRow, Export, StoreError};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::Arc;

const ORG_SQL: &str = "
SELECT o.org_key, COALESCE(v.version, 0)
FROM organizations o LEFT JOIN dictionary_versions v ON v.org_key = o.org_key
WHERE o.org_id = ?1";

const EVENTS_SQL: &str = "
SELECT ts, kind, component_key, user_key, application_key, project_key
FROM events
WHERE org_key = ?1 AND ts >= ?2 AND ts < ?3
ORDER BY ts, id";

const COMPONENTS_SQL: &str = "
SELECT c.component_key, c.external_id, c.display_name, c.catalogs_label, cat.name, m.name
FROM components c
LEFT JOIN categories cat ON cat.category_key = c.category_key
LEFT JOIN manufacturers m ON m.manufacturer_key = c.manufacturer_key
WHERE c.org_key = ?1";
const USERS_SQL: &str = "SELECT user_key, external_id, email FROM users WHERE org_key = ?1";
const APPLICATIONS_SQL: &str = "SELECT application_key, name FROM applications WHERE org_key = ?1";
const PROJECTS_SQL: &str = "SELECT project_key, external_id FROM projects WHERE org_key = ?1";

/// Starts the export and waits for its dictionary and first batch.
pub async fn export(
    readers: ReadPool,
    cache: Arc<DictionaryCache>,
    org: OrgId,
    range: DateRange,
) -> Result<Export, StoreError> {
    let (mut tx, rx) = export_channel();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = run(&readers, &cache, &org, range, &mut tx) {
            // The receiver may be gone (client disconnected); nothing to do then.
            let _ = tx.rows.blocking_send(Err(e));
        }
    });
    rx.start().await
}

fn run(
    readers: &ReadPool,
    cache: &DictionaryCache,
    org: &OrgId,
    range: DateRange,
    tx: &mut ExportSender,
) -> Result<(), StoreError> {
    let conn = readers.get()?;
    // One snapshot for the dictionary and the rows.
    let snapshot = conn.unchecked_transaction()?;
    let found: Option<(i64, i64)> = snapshot
        .prepare_cached(ORG_SQL)?
        .query_row(params![org.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((org_key, version)) = found else {
        // No events were ever stored for it: a header-only download.
        tx.send_dictionary(Arc::default());
        let _ = tx.rows.blocking_send(Ok(Vec::new()));
        return Ok(());
    };
    let dictionary = match cache.get(org_key, version) {
        Some(d) => d,
        None => {
            let d = Arc::new(dictionary(&snapshot, org_key)?);
            cache.insert(org_key, version, Arc::clone(&d));
            d
        }
    };
    if !tx.send_dictionary(dictionary) {
        return Ok(()); // nobody waits any more
    }
    let mut stmt = snapshot.prepare_cached(EVENTS_SQL)?;
    let mut rows = stmt.query(params![
        org_key,
        range.start().millis(),
        range.end().millis()
    ])?;
    let mut batches = Batches::new();
    let mut batch = Batches::batch();
    while let Some(row) = rows.next()? {
        let code: i64 = row.get(1)?;
        batch.push(EventRow {
            timestamp: Timestamp::from_millis(row.get(0)?),
            kind: EventKind::from_code(code)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind code {code}")))?,
            component: row.get(2)?,
            user: row.get(3)?,
            application: row.get(4)?,
            project: row.get(5)?,
        });
        if let Some(full) = batches.full(&mut batch) {
            if tx.rows.blocking_send(Ok(full)).is_err() {
                return Ok(()); // client went away: stop reading
            }
        }
    }
    if let Some(last) = batches.last(batch) {
        let _ = tx.rows.blocking_send(Ok(last));
    }
    Ok(())
}

/// Reads and renders every name of the organization.
pub fn dictionary(conn: &Connection, org_key: i64) -> Result<Dictionary, StoreError> {
    let mut b = DictionaryBuilder::new();
    let mut stmt = conn.prepare_cached(COMPONENTS_SQL)?;
    let mut rows = stmt.query(params![org_key])?;
    while let Some(r) = rows.next()? {
        b.component(
            r.get(0)?,
            ComponentNames {
                id: text(r, 1)?,
                name: text(r, 2)?,
                catalogs: opt_text(r, 3)?,
                category: opt_text(r, 4)?,
                manufacturer: opt_text(r, 5)?,
            },
        );
    }
    let mut stmt = conn.prepare_cached(USERS_SQL)?;
    let mut rows = stmt.query(params![org_key])?;
    while let Some(r) = rows.next()? {
        b.user(r.get(0)?, text(r, 1)?, text(r, 2)?);
    }
    let mut stmt = conn.prepare_cached(APPLICATIONS_SQL)?;
    let mut rows = stmt.query(params![org_key])?;
    while let Some(r) = rows.next()? {
        b.application(r.get(0)?, text(r, 1)?);
    }
    let mut stmt = conn.prepare_cached(PROJECTS_SQL)?;
    let mut rows = stmt.query(params![org_key])?;
    while let Some(r) = rows.next()? {
        b.project(r.get(0)?, text(r, 1)?);
    }
    Ok(b.build())
}

fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn opt_text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    row.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}
