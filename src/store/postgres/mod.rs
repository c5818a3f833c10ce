//! The PostgreSQL store, for deployments where several replicas share one
//! database (see `docs/operations.md`).
//!
//! A pool of `tokio-postgres` connections (deadpool) with short connect
//! and wait timeouts, so an outage answers 503 at once instead of hanging,
//! and connections that sat idle verified on checkout, so the pool heals
//! by itself when the server comes back. Behaviour matches the SQLite store exactly; the
//! shared contract suite (`tests/store_contract.rs`) proves it.

mod audit;
mod copy;
mod error;
mod export;
mod ingest;
mod migrations;
mod partitions;
mod privacy;
mod rate;
mod sql;
mod summary;

use super::privacy::access_record;
use super::{
    ErasureOutcome, Export, IngestOutcome, LoginCodeClock, Purged, Store, StoreError, Summary,
    LOGIN_CODES_PURGED_PER_REDEMPTION,
};
use crate::domain::{
    AccessGrant, AuditRecord, Buckets, DateRange, Event, Grant, LoginCodeId, OrgId, Timestamp,
    UserId,
};
use crate::export::DictionaryCache;
use async_trait::async_trait;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;
use tokio_util::task::AbortOnDropHandle;

/// Default connections per process (setting `database_pool_size`). Each
/// replica opens at most this many, so the server needs
/// `replicas × pool size` connection slots plus headroom.
pub const POOL_SIZE: usize = 32;
/// Connections kept out of the download limit for ingestion and
/// authorization checks.
const RESERVED_CONNECTIONS: usize = 4;
/// How long to wait for a TCP connection and the server's handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request waits for a free pooled connection before the store
/// reports itself unavailable.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection last checked out at most this long ago is handed
/// out again without a round trip (a closed one is still replaced): under
/// load connections cycle within milliseconds, and checking each would add
/// a round trip to every request. One that sat idle longer — across a
/// server restart or a failover, say — is verified with an empty query.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long `open` keeps retrying a database that is not reachable yet
/// (it may be starting alongside the service) before giving up.
pub const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// How often each process prunes the dictionary change log (see
/// [`PgStore::prune_dictionary_changes`]); the first time this long after
/// it opens the store.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Change-log rows one prune transaction moves at most.
const PRUNE_BATCH: i64 = 10_000;
/// First and largest pause between start-up attempts.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    pool_size: usize,
    /// Rendered names of recently downloaded organizations (see `export`).
    dictionaries: Arc<DictionaryCache>,
    /// Where read audit records go (batched, see `audit`).
    audit: audit::AuditAppender,
    /// The periodic prune of the dictionary change log, stopped when the
    /// last handle of this store is dropped.
    _pruning: Arc<AbortOnDropHandle<()>>,
}

/// Prunes the dictionary change log every [`PRUNE_EVERY`], logging (not
/// failing on) errors: the next run starts over.
async fn prune_periodically(pool: Pool) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match prune_all(&pool).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "pruned the dictionary change log"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the dictionary change log; will retry")
            }
        }
    }
}

/// Prune steps until one moves less than a whole batch.
async fn prune_all(pool: &Pool) -> Result<u64, StoreError> {
    let mut total = 0;
    while let Some(moved) = export::prune(pool, PRUNE_BATCH).await? {
        total += moved;
        if moved < PRUNE_BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(total)
}

impl PgStore {
    /// Connects to the database `url` names (`postgres://` or
    /// `postgresql://`), waiting up to [`STARTUP_WAIT`] for it to become
    /// reachable, and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_pool_size(url, POOL_SIZE).await
    }

    /// [`PgStore::open`] with at most `pool_size` connections (at least 1).
    pub async fn open_with_pool_size(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::connect(url, STARTUP_WAIT, pool_size).await
    }

    /// [`PgStore::open`] with a chosen start-up wait: zero fails at the
    /// first unreachable attempt.
    pub async fn open_with_startup_wait(url: &str, max_wait: Duration) -> Result<Self, StoreError> {
        Self::connect(url, max_wait, POOL_SIZE).await
    }

    async fn connect(url: &str, max_wait: Duration, pool_size: usize) -> Result<Self, StoreError> {
        let pool_size = pool_size.max(1);
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!("invalid PostgreSQL URL: {}", error::describe(&e)))
        })?;
        let target = describe(&config);
        let pool = build_pool(config, pool_size)?;
        let store = Self {
            audit: audit::AuditAppender::start(pool.clone()),
            _pruning: Arc::new(AbortOnDropHandle::new(tokio::spawn(prune_periodically(
                pool.clone(),
            )))),
            pool,
            pool_size,
            dictionaries: Arc::default(),
        };
        let started = Instant::now();
        let mut delay = FIRST_RETRY;
        loop {
            // A server that answers "no" (unknown database, role or
            // password) will not change its mind: fail at once.
            let attempt = match store.pool.get().await {
                Err(deadpool_postgres::PoolError::Backend(e)) if error::is_refusal(&e) => {
                    return Err(StoreError::Config(format!(
                        "PostgreSQL at {target}: {}",
                        error::refusal_reason(&e)
                    )));
                }
                Err(e) => Err(StoreError::from(e)),
                Ok(client) => {
                    drop(client);
                    store.migrate().await
                }
            };
            match attempt {
                Ok(()) => {
                    let now = Timestamp::now();
                    let horizon = partitions::opening_horizon(now);
                    if let Err(e) = partitions::ensure(&store.pool, horizon, now).await {
                        tracing::warn!(error = %e, "cannot create events partitions yet; the retention task retries");
                    }
                    return Ok(store);
                }
                Err(StoreError::Unavailable(cause)) if started.elapsed() + delay <= max_wait => {
                    tracing::warn!(%target, %cause, retry_in = ?delay, "waiting for PostgreSQL");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies pending migrations (also done by `open`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        migrations::apply(&mut client).await
    }

    /// Moves every row of the dictionary change log into per-organization
    /// counts (migration 8), in transactions of at most [`PRUNE_BATCH`]
    /// rows, leaving every dictionary version as it was: what the store
    /// does by itself every [`PRUNE_EVERY`], so that the count each small
    /// download makes stays small. Returns the rows moved (0 when another
    /// replica is at it).
    pub async fn prune_dictionary_changes(&self) -> Result<u64, StoreError> {
        prune_all(&self.pool).await
    }

    /// The organization's dictionary version, which its cached names are
    /// checked against (see `export`); `None` when it never stored an
    /// event. For operations and tests.
    pub async fn dictionary_version(&self, org: &OrgId) -> Result<Option<i64>, StoreError> {
        export::version(&self.pool, org).await
    }
}

/// Where the URL points, for log lines: `host:port/database`, never the
/// user's password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

fn build_pool(mut config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("catalytics");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Closed connections are replaced; idle ones are verified by
            // the hook below.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .pre_recycle(Hook::async_fn(|client, metrics| {
            Box::pin(async move {
                if metrics.last_used() < VERIFY_AFTER_IDLE {
                    return Ok(());
                }
                match tokio::time::timeout(CONNECT_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(HookError::Backend(e)),
                    Err(_) => Err(HookError::message("connection check timed out")),
                }
            })
        }))
        .max_size(size)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()?)
}

#[async_trait]
impl Store for PgStore {
    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        ingest::ingest(&self.pool, &events).await
    }

    async fn export(&self, org: &OrgId, range: DateRange) -> Result<Export, StoreError> {
        export::export(
            self.pool.clone(),
            Arc::clone(&self.dictionaries),
            org.clone(),
            range,
        )
        .await
    }

    async fn summary(&self, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
        summary::summary(&self.pool, org, buckets).await
    }

    async fn may_view_analytics(&self, org: &OrgId, user: &UserId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT kind, name FROM access_grants WHERE org_id = $1 AND user_id = $2",
            )
            .await?;
        for row in client
            .query(&stmt, &[&org.as_str(), &user.as_str()])
            .await?
        {
            let (kind, name): (&str, &str) = (row.try_get(0)?, row.try_get(1)?);
            // Every known role and permission allows downloads; unknown
            // rows (from a newer version) grant nothing.
            if Grant::from_stored(kind, name).is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn grant(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "INSERT INTO access_grants (org_id, user_id, kind, name, granted_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &grant.org.as_str(),
                    &grant.user.as_str(),
                    &grant.grant.kind(),
                    &grant.grant.name(),
                    &Timestamp::now().millis(),
                ],
            )
            .await?;
        if n == 1 {
            privacy::insert_audit(&tx, &access_record(grant, false)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn revoke(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM access_grants WHERE org_id = $1 AND user_id = $2 AND kind = $3 AND name = $4",
                &[
                    &grant.org.as_str(),
                    &grant.user.as_str(),
                    &grant.grant.kind(),
                    &grant.grant.name(),
                ],
            )
            .await?;
        if n == 1 {
            privacy::insert_audit(&tx, &access_record(grant, true)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn list_access(&self, org: Option<&OrgId>) -> Result<Vec<AccessGrant>, StoreError> {
        let client = self.pool.get().await?;
        // Byte order, like SQLite's BINARY collation, so both list alike.
        let rows = client
            .query(
                "SELECT org_id, user_id, kind, name FROM access_grants
                 WHERE $1::text IS NULL OR org_id = $1
                 ORDER BY org_id COLLATE \"C\", user_id COLLATE \"C\", kind COLLATE \"C\", name COLLATE \"C\"",
                &[&org.map(OrgId::as_str)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (kind, name): (&str, &str) = (row.try_get(2)?, row.try_get(3)?);
            if let Some(grant) =
                super::access_grant_from_stored(row.try_get(0)?, row.try_get(1)?, kind, name)
            {
                out.push(grant);
            }
        }
        Ok(out)
    }

    async fn erase_user(
        &self,
        org: &OrgId,
        user: &UserId,
        actor: Option<&UserId>,
    ) -> Result<ErasureOutcome, StoreError> {
        privacy::erase(&self.pool, org, user, actor).await
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.audit.append(record).await
    }

    async fn list_audit(
        &self,
        org: &OrgId,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        privacy::list_audit(&self.pool, org, since).await
    }

    async fn purge_events(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        // Months are created from the cutoff on, never behind it, so an
        // expired month is not created again after it was dropped.
        partitions::ensure(&self.pool, before, Timestamp::now()).await?;
        let whole = partitions::drop_expired(&self.pool, before, limit).await?;
        if whole.more {
            return Ok(whole);
        }
        let rows = privacy::purge_events(&self.pool, before, limit - whole.rows).await?;
        Ok(Purged {
            rows: whole.rows + rows.rows,
            partitions: whole.partitions,
            more: rows.more,
        })
    }

    async fn purge_audit(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        privacy::purge_audit(&self.pool, before, limit).await
    }

    /// The primary key decides: of concurrent inserts of one id, one
    /// commits and the others, waiting on its row lock, insert nothing.
    async fn redeem_login_code(
        &self,
        id: &LoginCodeId,
        valid_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let clock = LoginCodeClock::at(Timestamp::now(), valid_until);
        if !clock.redeemable {
            return Ok(false);
        }
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM login_codes_used WHERE code_id IN (
                     SELECT code_id FROM login_codes_used WHERE valid_until < $1 LIMIT $2
                     FOR UPDATE SKIP LOCKED)",
                &[
                    &clock.forget_before.millis(),
                    &LOGIN_CODES_PURGED_PER_REDEMPTION,
                ],
            )
            .await?;
        let n = client
            .execute(
                "INSERT INTO login_codes_used (code_id, valid_until) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&id.as_str(), &valid_until.millis()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        // A server that only reads (a standby after a failover, or one put
        // read-only) answers, but cannot take this replica's writes.
        let read_only: String = client
            .query_one("SELECT current_setting('transaction_read_only')", &[])
            .await?
            .try_get(0)?;
        if read_only == "on" {
            return Err(StoreError::Unavailable(
                "PostgreSQL server is read-only".into(),
            ));
        }
        Ok(())
    }

    async fn holds_events(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT EXISTS (SELECT 1 FROM events)", &[])
            .await?;
        Ok(row.get(0))
    }

    fn pool_use(&self) -> Option<super::PoolUse> {
        let status = self.pool.status();
        Some(super::PoolUse {
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            max: status.max_size,
        })
    }

    fn max_concurrent_exports(&self) -> Option<usize> {
        // Each streaming export holds a pooled connection; leave a few for
        // ingestion and authorization checks.
        Some(self.pool_size.saturating_sub(RESERVED_CONNECTIONS).max(1))
    }

    fn shared_rate_limiter(&self) -> Option<Arc<dyn super::SharedRateLimiter>> {
        Some(Arc::new(self.clone()))
    }
}
