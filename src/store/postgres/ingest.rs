//! The PostgreSQL ingestion transaction: the same decision as SQLite's,
//! read and written in pipelined waves of set-based statements instead of
//! one round trip per row:
//!
//! - *read*: organizations (created: an organization row alone shows
//!   nothing), then the batch's catalogs, components and users read and
//!   locked, and its event ids claimed with their facts;
//! - *decide*: [`decide`], on the facts hashed once for the claim;
//! - *write*: name-only dimensions, catalogs and users; components; catalog
//!   membership, labels and the new events.
//!
//! Concurrent batches from several replicas are safe: a claimed id makes a
//! concurrent claim of it wait and then see it stored, dimension rows are
//! locked in one global order, and a transaction that loses a deadlock, a
//! serialization check or the race to create a dimension row is run again
//! from its read.

use super::error::is_retryable;
use super::sql::{Attempt, NameStatements, Versioned};
use crate::domain::{Event, EventId, OrgId, Timestamp};
use crate::store::decide::{decide, ByOrg, Fingerprinted, InOrg, Key, Plan, Snapshot};
use crate::store::decide::{StoredComponent, StoredEvents, StoredName};
use crate::store::facts::Fingerprint;
use crate::store::keys::{org_key, Claim, Keys, Lookups, Orgs};
use crate::store::{IngestOutcome, StoreError};
use deadpool_postgres::{Pool, Transaction};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

/// Attempts per batch before lost races are reported; each lost attempt
/// has rolled back completely.
const MAX_ATTEMPTS: u32 = 8;

/// Why one attempt failed: database errors stay whole so the retry loop
/// can read their SQLSTATE.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether an attempt lost a race with a concurrent transaction: a
/// deadlock, a serialization failure, or a dimension row created by another
/// transaction after this one read (see `sql`'s module docs).
fn lost_a_race(e: &tokio_postgres::Error) -> bool {
    is_retryable(e) || e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Stores `events` in one transaction, retried when it loses a race, and
/// returns once it is committed.
pub async fn ingest(pool: &Pool, events: &[Event]) -> Result<IngestOutcome, StoreError> {
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        match run(&tx, events).await {
            Ok(outcome) => {
                tx.commit().await?;
                return Ok(outcome);
            }
            Err(Failure::Db(e)) if lost_a_race(&e) && attempt < MAX_ATTEMPTS => {
                drop(tx);
                tracing::debug!(attempt, error = %e, "ingestion transaction lost a race; retrying");
                let jitter = rand::random_range(0..10 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                attempt += 1;
            }
            // Still losing after every attempt: transient contention, so
            // "try again later" (503) rather than a failure (500).
            Err(Failure::Db(e)) if lost_a_race(&e) => {
                return Err(StoreError::Unavailable(format!(
                    "ingestion lost {MAX_ATTEMPTS} races with concurrent batches: {}",
                    super::error::describe(&e)
                )))
            }
            Err(Failure::Db(e)) => return Err(e.into()),
            Err(Failure::Store(e)) => return Err(e),
        }
    }
}

/// One statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// A driver result.
type PgResult<T> = Result<T, tokio_postgres::Error>;

/// A store result.
type StoreResult<T> = Result<T, StoreError>;

/// Read, decide, write; everything but commit.
async fn run(tx: &Transaction<'_>, events: &[Event]) -> Result<IngestOutcome, Failure> {
    // Erased users first, under the lock that keeps erasures out until commit.
    let events = &*super::privacy::pseudonymize(tx, events).await?;
    let attempt = Attempt::new(tx).await?;
    let mut keys = Keys::default();
    attempt.organizations(events, &mut keys.orgs).await?;
    let new = |e| Ok(Fingerprinted::of(e, org_key(&keys.orgs, &e.organization)?));
    let events = events.iter().map(new).collect::<StoreResult<Vec<_>>>()?;
    let wanted = Lookups::of(events.iter().copied());
    let snapshot = attempt.read(&wanted, &mut keys).await?;
    let plan = decide([events], snapshot);
    attempt.write(&plan, &mut keys).await?;
    Ok(plan.outcomes.into_iter().next().unwrap_or_default())
}

/// The array parameters of a set-based statement: `columns!(rows => a, b.c)`
/// is `[&[r.a for r in rows], &[r.b.c for r in rows]]`, one array per field.
/// `rows` (a reference or an iterator expression) is evaluated once per
/// field. Bind the result with `let`, which keeps the arrays alive.
macro_rules! columns {
    ($rows:expr => $($($field:ident).+),+) => {
        [$(&IntoIterator::into_iter($rows).map(|r| r.$($field).+).collect::<Vec<_>>() as Param<'_>),+]
    };
}

/// The natural key of an `(org_key, natural key, surrogate key, …)` row.
fn natural(row: &Row) -> PgResult<Key<'_>> {
    let org = row.try_get(0)?;
    let id = row.try_get(1)?;
    Ok(Key { org, id })
}

/// Records the keys of such rows.
fn collect(rows: &[Row], keys: &mut ByOrg<i64>) -> PgResult<()> {
    for row in rows {
        keys.insert(natural(row)?, row.try_get(2)?);
    }
    Ok(())
}

/// The stored versions of such rows, as `version` reads them.
fn stored<V>(rows: &[Row], version: fn(&Row) -> PgResult<V>) -> PgResult<ByOrg<V>> {
    let mut out = ByOrg::default();
    for row in rows {
        out.insert(natural(row)?, version(row)?);
    }
    Ok(out)
}

fn stored_component(row: &Row) -> PgResult<StoredComponent> {
    Ok(StoredComponent {
        name: row.try_get(3)?,
        category: row.try_get(4)?,
        manufacturer: row.try_get(5)?,
        catalog_ids: row.try_get(6)?,
        name_ts: Timestamp::from_millis(row.try_get(7)?),
    })
}

fn stored_name(row: &Row) -> PgResult<StoredName> {
    Ok(StoredName {
        name: row.try_get(3)?,
        name_ts: Timestamp::from_millis(row.try_get(4)?),
    })
}

/// A catalog membership row.
struct Member {
    component: InOrg<i64>,
    catalog: i64,
}

impl Attempt<'_> {
    /// Sends a statement and collects the rows it returns (none for most),
    /// owning its parameter list so that several can be pipelined with
    /// `try_join!`; it is sent when first polled.
    async fn send<const N: usize>(
        &self,
        stmt: &Statement,
        params: [Param<'_>; N],
    ) -> PgResult<Vec<Row>> {
        self.tx.query(stmt, &params).await
    }

    // ---- read ---------------------------------------------------------------

    /// Records the keys of the organizations `events` name, created where
    /// missing (an organization row alone shows nothing).
    async fn organizations(&self, events: &[Event], orgs: &mut Orgs) -> Result<(), Failure> {
        let org_ids = BTreeSet::from_iter(events.iter().map(|e| e.organization.as_str()));
        let org_ids = Vec::from_iter(org_ids);
        let (_, org_rows) = tokio::try_join!(
            self.send(&self.org_insert, [&org_ids]),
            self.send(&self.org_select, [&org_ids]),
        )?;
        for row in &org_rows {
            let id = OrgId::parse(row.try_get::<_, String>(0)?)
                .map_err(|e| StoreError::Corrupt(format!("stored organization id: {e}")))?;
            orgs.insert(id, row.try_get(1)?);
        }
        Ok(())
    }

    /// What the database holds for the `wanted` ids, components, catalogs
    /// and users, with the ids claimed; the rows' keys go to `keys`.
    async fn read(&self, wanted: &Lookups<'_>, keys: &mut Keys) -> Result<Snapshot, Failure> {
        let claims = &wanted.claims;
        let facts = Vec::from_iter(claims.iter().map(|c| &c.facts.as_bytes()[..]));
        let [ids, orgs] = columns!(claims => id, org);
        let claim: [Param<'_>; 3] = [ids, orgs, &facts];
        let catalogs = columns!(&wanted.catalogs => org, id);
        let components = columns!(&wanted.components => org, id);
        let users = columns!(&wanted.users => org, id);
        let (catalogs, components, users, savepoint, claimed) = tokio::join!(
            self.send(&self.catalogs.lock, catalogs),
            self.send(&self.components.lock, components),
            self.send(&self.users.lock, users),
            self.send(&self.savepoint, []),
            self.send(&self.event_ids_claim, claim),
        );
        let (catalogs, components, users, _) = (catalogs?, components?, users?, savepoint?);
        collect(&components, &mut keys.components)?;
        collect(&catalogs, &mut keys.catalogs)?;
        collect(&users, &mut keys.users)?;
        Ok(Snapshot {
            events: self.stored_events(claims, claim, claimed).await?,
            components: stored(&components, stored_component)?,
            catalogs: stored(&catalogs, stored_name)?,
            users: stored(&users, stored_name)?,
        })
    }

    /// The facts of the batch's ids that were stored before this
    /// transaction claimed the rest: none when the plain claim succeeded,
    /// else those that `ON CONFLICT DO NOTHING` could not claim.
    async fn stored_events(
        &self,
        claims: &[Claim],
        claim: [Param<'_>; 3],
        claimed: PgResult<Vec<Row>>,
    ) -> Result<StoredEvents, Failure> {
        match claimed {
            Ok(_) => return Ok(StoredEvents::new()),
            Err(e) if e.code() != Some(&SqlState::UNIQUE_VIOLATION) => return Err(e.into()),
            Err(_) => {}
        }
        let (_, fresh) = tokio::try_join!(
            self.send(&self.rollback_to_savepoint, []),
            self.send(&self.event_ids_insert, claim),
        )?;
        let fresh = fresh.iter().map(|r| r.try_get(0));
        let fresh: HashSet<Uuid> = fresh.collect::<PgResult<_>>()?;
        let taken = Vec::from_iter(claims.iter().map(|c| c.id).filter(|id| !fresh.contains(id)));
        let mut stored = StoredEvents::with_capacity(taken.len());
        for row in self.tx.query(&self.event_ids_select, &[&taken]).await? {
            let facts: Option<Vec<u8>> = row.try_get(1)?;
            let facts = facts.as_deref().and_then(Fingerprint::from_bytes);
            stored.insert(EventId::from_uuid(row.try_get(0)?), facts);
        }
        if stored.len() != taken.len() {
            return Err(StoreError::Corrupt("a claimed event id vanished".into()).into());
        }
        Ok(stored)
    }

    // ---- write --------------------------------------------------------------

    /// Get-or-create of one name-only dimension's wanted values.
    async fn resolve(
        &self,
        s: &NameStatements,
        wanted: &BTreeSet<Key<'_>>,
    ) -> Result<Vec<Row>, Failure> {
        let values = columns!(wanted => org, id);
        let (_, found) =
            tokio::try_join!(self.send(&s.insert, values), self.send(&s.select, values))?;
        Ok(found)
    }

    /// Inserts the new rows of one versioned dimension and updates the
    /// stored ones, from the same columns (see `sql::Versioned`); returns
    /// the keys of those created.
    async fn upsert<const N: usize>(
        &self,
        statements: &Versioned,
        rows: [Param<'_>; N],
    ) -> Result<Vec<Row>, Failure> {
        let Versioned { insert, update, .. } = statements;
        let (created, _) = tokio::try_join!(self.send(insert, rows), self.send(update, rows))?;
        Ok(created)
    }

    /// Carries out `plan` in three pipelined waves: name-only dimensions,
    /// catalogs and users; components; membership, labels and events.
    async fn write(&self, plan: &Plan<'_>, keys: &mut Keys) -> Result<(), Failure> {
        if plan.new_events.is_empty() {
            return Ok(());
        }
        let catalogs = keys.catalogs.names(&plan.catalogs);
        let users = keys.users.names(&plan.users);
        let catalog_rows = columns!(&catalogs => natural.org, stored, natural.id, name, ts);
        let user_rows = columns!(&users => natural.org, stored, natural.id, name, ts);
        let (c, m, a, p, new_catalogs, new_users) = tokio::try_join!(
            self.resolve(&self.categories, &plan.categories),
            self.resolve(&self.manufacturers, &plan.manufacturers),
            self.resolve(&self.applications, &plan.applications),
            self.resolve(&self.projects, &plan.projects),
            self.upsert(&self.catalogs, catalog_rows),
            self.upsert(&self.users, user_rows),
        )?;
        collect(&c, &mut keys.categories)?;
        collect(&m, &mut keys.manufacturers)?;
        collect(&a, &mut keys.applications)?;
        collect(&p, &mut keys.projects)?;
        collect(&new_catalogs, &mut keys.catalogs)?;
        collect(&new_users, &mut keys.users)?;

        let components = keys.components(&plan.components)?;
        let rows = columns!(&components =>
            natural.org, stored, natural.id, name, category, manufacturer, catalog_ids, ts);
        let created = self.upsert(&self.components, rows).await?;
        collect(&created, &mut keys.components)?;

        let mut changed = Vec::new();
        let mut members = Vec::new();
        for r in &components {
            let Some(ids) = &r.membership else { continue };
            let id = keys.components.key(r.natural)?;
            let component = InOrg {
                org: r.natural.org,
                id,
            };
            members.extend(ids.iter().map(|&catalog| Member { component, catalog }));
            changed.push(component);
        }
        let members = columns!(&members => component.org, component.id, catalog);
        let [changed_orgs, changed_keys] = columns!(&changed => org, id);
        let [renamed_orgs, renamed_keys] =
            columns!(catalogs.iter().filter(|r| r.renamed) => natural.org, stored);
        let relabel = [changed_orgs, changed_keys, renamed_orgs, renamed_keys];
        let events = keys.events(&plan.new_events)?;
        let events = columns!(&events => org, ts, id, kind, component, user, application, project);
        tokio::try_join!(
            self.send(&self.membership_delete, [changed_orgs, changed_keys]),
            self.send(&self.membership_insert, members),
            self.send(&self.relabel_lock, relabel),
            self.send(&self.relabel, relabel),
            self.send(&self.events_insert, events),
        )?;
        Ok(())
    }
}
