//! The embedded SQLite store: one file in the data directory, WAL mode,
//! `synchronous=FULL` so an acknowledged batch survives a crash or power cut.
//!
//! One writer connection (SQLite has one writer at a time anyway) on its own
//! thread with group commit (see `writer`), and a pool of read-only
//! connections for exports and access checks,
//! which WAL lets run alongside the writer. All SQLite calls happen on
//! blocking threads, never on the async runtime.

mod append;
mod checkpoint;
mod export;
mod ingest;
mod migrations;
mod pool;
mod privacy;
mod summary;
mod writer;

use super::privacy::access_record;
use super::{
    access_grant_from_stored, ErasureOutcome, Export, IngestOutcome, LoginCodeClock, Purged, Store,
    StoreError, Summary, LOGIN_CODES_PURGED_PER_REDEMPTION,
};
use crate::domain::{
    AccessGrant, AuditRecord, Buckets, DateRange, Event, Grant, LoginCodeId, OrgId, Timestamp,
    UserId,
};
use crate::export::DictionaryCache;
use async_trait::async_trait;
use pool::ReadPool;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Page size of new databases (existing ones keep theirs). Event ids are
/// random, so new events dirty pages all over the idempotency index and a
/// commit writes each whole to the WAL: smaller pages write fewer bytes, but
/// 1 KiB pages make B-trees two levels deeper and cost a system call per
/// page, and measured ingestion (BENCHMARKS.md) spends less CPU and time
/// with SQLite's default of 4 KiB.
const PAGE_SIZE: i64 = 4096;

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteStore {
    writer: writer::Writer,
    _checkpointer: checkpoint::Checkpointer,
    readers: ReadPool,
    dictionaries: Arc<DictionaryCache>,
}

impl SqliteStore {
    /// Opens or creates the database file at `path`, applies pending
    /// migrations and switches it to WAL. Fails when the file cannot be
    /// opened for writing (commands that need the store at once).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, false)).await?
    }

    /// As [`SqliteStore::open`], but a store that cannot be written yet
    /// (full disk, read-only file or directory) still opens: it answers
    /// unavailable until the cause is gone and heals by itself then. For
    /// the service, which must not need a restart.
    pub async fn open_tolerant(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, true)).await?
    }

    fn open_blocking(path: PathBuf, tolerant: bool) -> Result<Self, StoreError> {
        let conn = match open_writer(&path) {
            Ok(conn) => Some(conn),
            Err(StoreError::Unavailable(cause)) if tolerant => {
                tracing::error!(
                    path = %path.display(),
                    %cause,
                    "the SQLite store cannot be written; answering 503 until it can"
                );
                None
            }
            Err(e) => return Err(e),
        };
        let checkpointer = checkpoint::Checkpointer::spawn(path.clone())
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        let opener_path = path.clone();
        Ok(Self {
            readers: ReadPool::new(&path),
            dictionaries: Arc::default(),
            writer: writer::Writer::spawn(conn, Box::new(move || open_writer(&opener_path)))?,
            _checkpointer: checkpointer,
        })
    }

    /// Runs `f` on the writer thread.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// Runs `f` with a pooled reader on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.get()?;
            f(&conn)
        })
        .await?
    }
}

/// Opens the writer connection: creates the directory and file if needed,
/// applies the connection settings and pending migrations, and refuses a
/// file SQLite could only open read-only (it falls back silently).
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(256);
    // Must precede the first table; see docs/operations.md (SQLite page size).
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(StoreError::Unavailable(format!(
            "{} is read-only for this process",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -64_000)?;
    // Multi-row inserts keep a statement journal; in memory it costs no I/O.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrations::apply(&mut conn)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        self.writer.ingest(events).await
    }

    async fn export(&self, org: &OrgId, range: DateRange) -> Result<Export, StoreError> {
        export::export(
            self.readers.clone(),
            Arc::clone(&self.dictionaries),
            org.clone(),
            range,
        )
        .await
    }

    async fn summary(&self, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
        let (org, buckets) = (org.clone(), buckets.clone());
        self.read(move |conn| summary::summary(conn, &org, &buckets))
            .await
    }

    async fn may_view_analytics(&self, org: &OrgId, user: &UserId) -> Result<bool, StoreError> {
        let (org, user) = (org.clone(), user.clone());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT kind, name FROM access_grants WHERE org_id = ?1 AND user_id = ?2",
            )?;
            let mut rows = stmt.query(params![org.as_str(), user.as_str()])?;
            while let Some(row) = rows.next()? {
                let (kind, name): (String, String) = (row.get(0)?, row.get(1)?);
                // Every known role and permission allows downloads; unknown
                // rows (from a newer version) grant nothing.
                if Grant::from_stored(&kind, &name).is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
    }

    async fn grant(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        let g = grant.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "INSERT INTO access_grants (org_id, user_id, kind, name, granted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    g.org.as_str(),
                    g.user.as_str(),
                    g.grant.kind(),
                    g.grant.name(),
                    Timestamp::now().millis()
                ],
            )?;
            if n == 1 {
                privacy::insert_audit(&tx, &access_record(&g, false))?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        let g = grant.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "DELETE FROM access_grants WHERE org_id = ?1 AND user_id = ?2 AND kind = ?3 AND name = ?4",
                params![g.org.as_str(), g.user.as_str(), g.grant.kind(), g.grant.name()],
            )?;
            if n == 1 {
                privacy::insert_audit(&tx, &access_record(&g, true))?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_access(&self, org: Option<&OrgId>) -> Result<Vec<AccessGrant>, StoreError> {
        let org = org.cloned();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT org_id, user_id, kind, name FROM access_grants
                 WHERE ?1 IS NULL OR org_id = ?1 ORDER BY org_id, user_id, kind, name",
            )?;
            let rows = stmt.query_map(params![org.as_ref().map(OrgId::as_str)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (org, user, kind, name) = row?;
                if let Some(grant) = access_grant_from_stored(org, user, &kind, &name) {
                    out.push(grant);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn erase_user(
        &self,
        org: &OrgId,
        user: &UserId,
        actor: Option<&UserId>,
    ) -> Result<ErasureOutcome, StoreError> {
        let (org, user, actor) = (org.clone(), user.clone(), actor.cloned());
        self.write(move |conn| privacy::erase(conn, &org, &user, actor.as_ref()))
            .await
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |conn| privacy::insert_audit(conn, &record))
            .await
    }

    async fn list_audit(
        &self,
        org: &OrgId,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let org = org.clone();
        self.read(move |conn| privacy::list_audit(conn, &org, since))
            .await
    }

    async fn purge_events(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        self.write(move |conn| privacy::purge_events(conn, before, limit))
            .await
    }

    async fn purge_audit(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        self.write(move |conn| privacy::purge_audit(conn, before, limit))
            .await
    }

    async fn redeem_login_code(
        &self,
        id: &LoginCodeId,
        valid_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let clock = LoginCodeClock::at(Timestamp::now(), valid_until);
        if !clock.redeemable {
            return Ok(false);
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM login_codes_used WHERE code_id IN (
                     SELECT code_id FROM login_codes_used WHERE valid_until < ?1 LIMIT ?2)",
                params![
                    clock.forget_before.millis(),
                    LOGIN_CODES_PURGED_PER_REDEMPTION
                ],
            )?;
            let n = tx.execute(
                "INSERT INTO login_codes_used (code_id, valid_until) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![id.as_str(), valid_until.millis()],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_healthy() {
            // Writes failed last time: ready only once one goes through.
            self.writer.probe().await?;
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(())).optional()?;
            Ok(())
        })
        .await
    }

    async fn holds_events(&self) -> Result<bool, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?)
        })
        .await
    }

    /// Readers are opened as needed, never waited for: nothing to report.
    fn pool_use(&self) -> Option<super::PoolUse> {
        None
    }

    /// Each export opens its own read-only connection when none is idle,
    /// so no pool runs dry: no bound.
    fn max_concurrent_exports(&self) -> Option<usize> {
        None
    }

    /// One serving process per database file: it counts in memory.
    fn shared_rate_limiter(&self) -> Option<Arc<dyn super::SharedRateLimiter>> {
        None
    }
}
