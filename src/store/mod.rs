//! Persistence. One [`Store`] trait, one module per backend, identical
//! behaviour; the HTTP layer and the CLI only ever see `Arc<dyn Store>`.
//!
//! Everything is keyed by organization first (see `docs/storage.md`), so a
//! PostgreSQL deployment can later distribute by organization and partition
//! events by month without the service changing.

pub mod decide;
mod error;
pub mod facts;
mod keys;
pub mod postgres;
mod privacy;
mod row;
pub mod sqlite;
mod summary;

pub use error::StoreError;
pub use row::{EventRow, Export, ExportRow, RowBatch, RowStream};
pub use summary::{BucketCounts, KindCounts, Summary, TopComponent, TopUser, TOP_N};

use crate::domain::{
    AccessGrant, AuditRecord, Buckets, DateRange, Event, EventId, Grant, LoginCodeId, OrgId,
    Timestamp, UserId,
};
use async_trait::async_trait;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Most expired sign-in code ids one redemption forgets (see
/// [`Store::redeem_login_code`]): redemptions are rare, so this keeps up.
pub const LOGIN_CODES_PURGED_PER_REDEMPTION: i64 = 100;

/// How long a redeemed code's id is kept past its `valid_until`: replicas
/// whose clocks disagree by less than this can never forget an id while
/// another still accepts its code.
pub const LOGIN_CODE_KEEP_MARGIN_MS: i64 = 3_600_000;

/// The two time rules of [`Store::redeem_login_code`], shared by the
/// backends: a code past `valid_until` is never recorded as redeemed (so a
/// code whose id may already be forgotten cannot be redeemed again), and
/// ids are forgotten only [`LOGIN_CODE_KEEP_MARGIN_MS`] after theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginCodeClock {
    /// Whether the code may still be redeemed at all.
    pub redeemable: bool,
    /// Ids whose `valid_until` lies before this are forgotten.
    pub forget_before: Timestamp,
}

impl LoginCodeClock {
    /// The rules for a code valid until `valid_until`, at `now`.
    pub fn at(now: Timestamp, valid_until: Timestamp) -> Self {
        Self {
            redeemable: valid_until.millis() >= now.millis(),
            forget_before: Timestamp::from_millis(
                now.millis().saturating_sub(LOGIN_CODE_KEEP_MARGIN_MS),
            ),
        }
    }
}

/// Most conflicting ids an outcome names; `conflicts` still counts all.
pub const MAX_CONFLICTING: usize = 100;

/// What a committed ingestion batch did (DESIGN §3.1), as the HTTP answer
/// and `import`'s summary report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    /// Events stored by this batch.
    pub accepted: u64,
    /// Events whose id was already stored (or came earlier in the batch)
    /// with the same facts: ignored.
    pub duplicates: u64,
    /// Events whose id was already stored (or came earlier in the batch)
    /// with other facts: not stored.
    pub conflicts: u64,
    /// The first [`MAX_CONFLICTING`] conflicting ids.
    #[schema(value_type = Vec<String>)]
    pub conflicting: Vec<EventId>,
}

impl IngestOutcome {
    /// Counts a conflict, naming it while there is room.
    pub fn add_conflict(&mut self, id: EventId) {
        self.conflicts += 1;
        if self.conflicting.len() < MAX_CONFLICTING {
            self.conflicting.push(id);
        }
    }
}

impl std::ops::AddAssign for IngestOutcome {
    fn add_assign(&mut self, rhs: Self) {
        self.accepted += rhs.accepted;
        self.duplicates += rhs.duplicates;
        self.conflicts += rhs.conflicts;
        let room = MAX_CONFLICTING.saturating_sub(self.conflicting.len());
        self.conflicting
            .extend(rhs.conflicting.into_iter().take(room));
    }
}

/// What erasing a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureOutcome {
    /// The pseudonym the user's events now carry.
    pub pseudonym: UserId,
    /// Events this request changed: 0 when the user was already erased or
    /// had no events.
    pub events: u64,
}

/// What one bounded retention step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Rows deleted one by one.
    pub rows: u64,
    /// Whole monthly partitions dropped (PostgreSQL events only).
    pub partitions: u64,
    /// Whether the step stopped at its limit, so more may be due.
    pub more: bool,
}

impl Purged {
    /// A step that deleted `deleted` rows one by one with at most `limit`
    /// allowed: reaching the limit means more may be due.
    pub fn rows(deleted: u64, limit: u64) -> Self {
        Self {
            rows: deleted,
            partitions: 0,
            more: deleted >= limit,
        }
    }
}

/// Connections of a store's pool, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections serving a request now.
    pub in_use: usize,
    /// Open connections waiting for work.
    pub idle: usize,
    /// Most connections the pool opens.
    pub max: usize,
}

/// The storage contract every backend fulfils, proven by one shared suite.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a batch atomically and durably: when this returns `Ok`, every
    /// new event is committed to disk; on `Err`, nothing of the batch is.
    /// What is new, duplicate or conflicting, and which names change, is
    /// [`decide::decide`]'s answer (DESIGN §3.1).
    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError>;

    /// Streams the organization's events in `range`, ordered by timestamp then
    /// event id, as narrow rows in batches, without ever holding the window
    /// in memory, with the dictionary of names they refer to.
    /// A failure after the first batch arrives as an `Err` item.
    async fn export(&self, org: &OrgId, range: DateRange) -> Result<Export, StoreError>;

    /// The organization's usage in the buckets' window: events per bucket
    /// and kind (zero buckets included), distinct users and components, and
    /// the top lists — every figure equal to what [`Store::export`] of the
    /// same window yields, all from one snapshot.
    async fn summary(&self, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError>;

    /// Whether `user` holds any role or permission that allows downloading
    /// `org`'s analytics.
    async fn may_view_analytics(&self, org: &OrgId, user: &UserId) -> Result<bool, StoreError>;

    /// Adds a grant; `Ok(false)` when it was already held. A change is
    /// recorded in the audit trail in the same transaction (actor: the
    /// command line).
    async fn grant(&self, grant: &AccessGrant) -> Result<bool, StoreError>;

    /// Removes a grant; `Ok(false)` when it was not held. Audited like
    /// [`Store::grant`].
    async fn revoke(&self, grant: &AccessGrant) -> Result<bool, StoreError>;

    /// Lists grants, of one organization or of all, in a stable order.
    async fn list_access(&self, org: Option<&OrgId>) -> Result<Vec<AccessGrant>, StoreError>;

    /// Erases `user` of `org` (see `docs/privacy.md`): their events keep
    /// being counted under their keyed pseudonym with an empty email, the
    /// real id and email are gone from the store, events for them that
    /// arrive later are pseudonymized on ingestion, and the erasure is
    /// recorded in the audit trail (as done by `actor`, `None` for the
    /// command line), all in one transaction. Idempotent.
    async fn erase_user(
        &self,
        org: &OrgId,
        user: &UserId,
        actor: Option<&UserId>,
    ) -> Result<ErasureOutcome, StoreError>;

    /// Appends a record to the audit trail.
    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;

    /// The organization's audit trail from `since` (inclusive), oldest
    /// first.
    async fn list_audit(
        &self,
        org: &OrgId,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// One bounded retention step for events older than `before`: at most
    /// `limit` rows deleted (plus, on PostgreSQL, whole monthly partitions
    /// that lie entirely before `before` dropped), in short transactions
    /// that never hold ingestion or downloads up for long.
    async fn purge_events(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError>;

    /// One bounded retention step for audit records older than `before`.
    async fn purge_audit(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError>;

    /// Records that the one-time sign-in code `id` is redeemed: `Ok(true)`
    /// for its first redemption only, whichever process sharing the store
    /// asks, however many ask at once. The id is remembered until
    /// `valid_until` (after which the code's own expiry refuses it);
    /// remembered ids past theirs are forgotten on the way, a bounded number
    /// per call.
    async fn redeem_login_code(
        &self,
        id: &LoginCodeId,
        valid_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Cheap reachability probe for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether any event is stored (in any organization): `demo` refuses
    /// a database that already holds data.
    async fn holds_events(&self) -> Result<bool, StoreError>;

    // The three below have no default, so that a store wrapping another
    // must pass them on rather than silently drop the inner store's bound.

    /// The connection pool's use right now, for `/metrics`; `None` when the
    /// backend has no pool worth reporting.
    fn pool_use(&self) -> Option<PoolUse>;

    /// How many exports may stream at once without starving other requests
    /// of connections; `None` when the backend has no such bound. The
    /// service caps its download limit at this.
    fn max_concurrent_exports(&self) -> Option<usize>;

    /// A rate limiter counted in the store, so that every process sharing
    /// it enforces one limit; `None` when the backend serves one process
    /// only (the service then counts in memory).
    fn shared_rate_limiter(&self) -> Option<Arc<dyn SharedRateLimiter>>;
}

/// What a rate limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the allowance; one unit was taken.
    Allowed,
    /// Over it; the next unit frees up after this long.
    Wait(Duration),
}

/// A per-key rate limit of `per_minute` units a minute with a burst of the
/// same size (GCRA, the same rule as `governor`'s `Quota::per_minute`),
/// whose state lives in the store.
#[async_trait]
pub trait SharedRateLimiter: Send + Sync + 'static {
    /// Takes one unit of `key`'s allowance, or says how long to wait.
    async fn take(&self, key: &str, per_minute: NonZeroU32) -> Result<RateDecision, StoreError>;
}

/// Opens (and migrates) the store a database URL names: empty means the
/// SQLite file in `data_dir`; `sqlite://PATH` a given SQLite file;
/// `postgres://…` or `postgresql://…` a PostgreSQL database (waiting for it
/// to become reachable, see [`postgres::STARTUP_WAIT`]).
pub async fn open(
    database_url: Option<&str>,
    data_dir: &Path,
) -> Result<Arc<dyn Store>, StoreError> {
    open_store(database_url, data_dir, false, postgres::POOL_SIZE).await
}

/// As [`open`], for the service: an embedded store that cannot be written
/// yet (full disk, read-only file or directory) still opens and answers
/// unavailable until it heals, so that no restart is needed. A PostgreSQL
/// store gets at most `pool_size` connections (setting
/// `database_pool_size`).
pub async fn open_for_serving(
    database_url: Option<&str>,
    data_dir: &Path,
    pool_size: usize,
) -> Result<Arc<dyn Store>, StoreError> {
    open_store(database_url, data_dir, true, pool_size).await
}

async fn open_store(
    database_url: Option<&str>,
    data_dir: &Path,
    tolerant: bool,
    pool_size: usize,
) -> Result<Arc<dyn Store>, StoreError> {
    let sqlite = |path: &Path| {
        let path = path.to_owned();
        async move {
            let store = if tolerant {
                sqlite::SqliteStore::open_tolerant(&path).await?
            } else {
                sqlite::SqliteStore::open(&path).await?
            };
            Ok::<Arc<dyn Store>, StoreError>(Arc::new(store))
        }
    };
    match database_url {
        None | Some("") => sqlite(&data_dir.join("catalytics.sqlite3")).await,
        Some(url) if url.starts_with("sqlite://") => {
            sqlite(Path::new(url.trim_start_matches("sqlite://"))).await
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(
            Arc::new(postgres::PgStore::open_with_pool_size(url, pool_size).await?),
        ),
        Some(url) => Err(StoreError::Config(format!(
            "database URL {:?} must start with postgres://, postgresql:// or sqlite://",
            crate::config::redact_url(url)
        ))),
    }
}

/// Rebuilds a grant from its stored columns; rows this version does not
/// understand are skipped rather than failing the whole listing.
pub(crate) fn access_grant_from_stored(
    org: String,
    user: String,
    kind: &str,
    name: &str,
) -> Option<AccessGrant> {
    Some(AccessGrant {
        org: OrgId::parse(org).ok()?,
        user: UserId::parse(user).ok()?,
        grant: Grant::from_stored(kind, name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_code_clock() {
        let at = |now: i64, until: i64| {
            LoginCodeClock::at(Timestamp::from_millis(now), Timestamp::from_millis(until))
        };
        let margin = LOGIN_CODE_KEEP_MARGIN_MS;
        let table = [
            (10_000_000, 10_000_001, true),
            (10_000_000, 10_000_000, true),
            (10_000_000, 9_999_999, false),
        ];
        for (now, until, redeemable) in table {
            let clock = at(now, until);
            assert_eq!(clock.redeemable, redeemable, "{now} {until}");
            assert_eq!(clock.forget_before.millis(), now - margin);
        }
        // A code redeemable now is never among the ids forgotten now, nor
        // by a replica whose clock runs up to the margin ahead.
        let clock = at(10_000_000, 10_000_000);
        assert!(at(10_000_000 + margin, 0).forget_before.millis() <= 10_000_000);
        assert!(clock.forget_before.millis() < 10_000_000);
    }
}
