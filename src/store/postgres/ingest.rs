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
use super::sql::{NameStatements, NamedStatements, Prepared};
use crate::domain::{Event, EventId, OrgId, Timestamp};
use crate::store::decide::{decide, ByOrg, Fingerprinted, Key, NameVersion, Occurrences, Plan};
use crate::store::decide::{Snapshot, Writes};
use crate::store::decide::{StoredComponent, StoredEvents, StoredName, Verdict};
use crate::store::facts::Fingerprint;
use crate::store::keys::{Keys, Orgs};
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

/// Sends a statement and collects the rows it returns (none for most),
/// owning its parameter list so that several can be pipelined with
/// `try_join!`; it is sent when first polled.
async fn send<const N: usize>(
    tx: &Transaction<'_>,
    stmt: &Statement,
    params: [Param<'_>; N],
) -> PgResult<Vec<Row>> {
    tx.query(stmt, &params).await
}

/// Read, decide, write; everything but commit.
async fn run(tx: &Transaction<'_>, events: &[Event]) -> Result<IngestOutcome, Failure> {
    // Erased users first, under the lock that keeps erasures out until commit.
    let events = &*super::privacy::pseudonymize(tx, events).await?;
    let s = Prepared::new(tx).await?;
    let events: Vec<Fingerprinted<'_>> = events.iter().map(Fingerprinted::of).collect();
    let mut keys = Keys::default();
    let snapshot = read(tx, &s, &events, &mut keys).await?;
    let plan = decide([events], snapshot);
    write(tx, &s, &plan, &mut keys).await?;
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

/// A row of one organization as set-based statements take it: its
/// `org_key` and its natural id (`&str`) or surrogate key (`i64`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct InOrg<Id> {
    org: i64,
    id: Id,
}

/// The natural key of an `(org_key, natural key, surrogate key, …)` row.
fn natural<'r>(orgs: &'r Orgs, row: &'r Row) -> Result<Key<'r>, StoreError> {
    let org = orgs.id(row.try_get(0)?)?;
    let id = row.try_get(1)?;
    Ok(Key { org, id })
}

/// Records the keys of `(org_key, natural key, surrogate key, …)` rows.
fn collect(orgs: &Orgs, rows: &[Row], keys: &mut ByOrg<i64>) -> Result<(), StoreError> {
    for row in rows {
        keys.insert(natural(orgs, row)?, row.try_get(2)?);
    }
    Ok(())
}

/// The stored versions of such rows, as `version` reads them.
fn stored<V>(orgs: &Orgs, rows: &[Row], version: fn(&Row) -> PgResult<V>) -> StoreResult<ByOrg<V>> {
    let mut out = ByOrg::default();
    for row in rows {
        out.insert(natural(orgs, row)?, version(row)?);
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

// ---- read -------------------------------------------------------------------

/// The first occurrence of one of the batch's ids, claimed with its facts.
struct Claim<'a> {
    id: Uuid,
    org: i64,
    facts: &'a [u8],
}

/// What the database holds for `events`, with their ids claimed; the
/// rows' keys go to `keys`.
async fn read(
    tx: &Transaction<'_>,
    s: &Prepared,
    events: &[Fingerprinted<'_>],
    keys: &mut Keys,
) -> Result<Snapshot, Failure> {
    let org_ids = BTreeSet::from_iter(events.iter().map(|n| n.event.organization.as_str()));
    let org_ids = Vec::from_iter(org_ids);
    let (_, org_rows) = tokio::try_join!(
        send(tx, &s.org_insert, [&org_ids]),
        send(tx, &s.org_select, [&org_ids]),
    )?;
    for row in &org_rows {
        let id = OrgId::parse(row.try_get::<_, String>(0)?)
            .map_err(|e| StoreError::Corrupt(format!("stored organization id: {e}")))?;
        keys.orgs.add(id, row.try_get(1)?);
    }
    let mut components = BTreeSet::new();
    let mut catalogs = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut first = Occurrences::default();
    let mut claims = Vec::with_capacity(events.len());
    for new in events {
        let e = new.event;
        let org = keys.orgs.key(&e.organization)?;
        let natural = |id| InOrg { org, id };
        components.insert(natural(e.component.id.as_str()));
        catalogs.extend(e.component.catalogs.iter().map(|c| natural(c.id.as_str())));
        users.insert(natural(e.user.id.as_str()));
        if first.classify(e.id, new.facts) == Verdict::New {
            let (id, facts) = (*e.id.as_uuid(), new.facts.as_bytes());
            claims.push(Claim { id, org, facts });
        }
    }
    // Sorted by id, so concurrent batches claim in one order.
    claims.sort_unstable_by_key(|c| c.id);
    let claim = columns!(&claims => id, org, facts);
    let catalogs = columns!(&catalogs => org, id);
    let components = columns!(&components => org, id);
    let users = columns!(&users => org, id);
    let (catalogs, components, users, savepoint, claimed) = tokio::join!(
        send(tx, &s.catalogs.lock, catalogs),
        send(tx, &s.component_lock, components),
        send(tx, &s.users.lock, users),
        send(tx, &s.savepoint, []),
        send(tx, &s.event_ids_claim, claim),
    );
    let (catalogs, components, users, _) = (catalogs?, components?, users?, savepoint?);
    let orgs = &keys.orgs;
    collect(orgs, &components, &mut keys.components)?;
    collect(orgs, &catalogs, &mut keys.catalogs)?;
    collect(orgs, &users, &mut keys.users)?;
    Ok(Snapshot {
        events: stored_events(tx, s, &claims, claim, claimed).await?,
        components: stored(orgs, &components, stored_component)?,
        catalogs: stored(orgs, &catalogs, stored_name)?,
        users: stored(orgs, &users, stored_name)?,
    })
}

/// The facts of the batch's ids that were stored before this transaction
/// claimed the rest: none when the plain claim succeeded, else those that
/// `ON CONFLICT DO NOTHING` could not claim.
async fn stored_events(
    tx: &Transaction<'_>,
    s: &Prepared,
    claims: &[Claim<'_>],
    claim: [Param<'_>; 3],
    claimed: PgResult<Vec<Row>>,
) -> Result<StoredEvents, Failure> {
    match claimed {
        Ok(_) => return Ok(StoredEvents::new()),
        Err(e) if e.code() != Some(&SqlState::UNIQUE_VIOLATION) => return Err(e.into()),
        Err(_) => {}
    }
    let (_, fresh) = tokio::try_join!(
        send(tx, &s.rollback_to_savepoint, []),
        send(tx, &s.event_ids_insert, claim),
    )?;
    let fresh = fresh.iter().map(|r| r.try_get(0));
    let fresh: HashSet<Uuid> = fresh.collect::<PgResult<_>>()?;
    let taken = Vec::from_iter(claims.iter().map(|c| c.id).filter(|id| !fresh.contains(id)));
    let mut stored = StoredEvents::with_capacity(taken.len());
    for row in tx.query(&s.event_ids_select, &[&taken]).await? {
        let facts: Option<Vec<u8>> = row.try_get(1)?;
        let facts = facts.as_deref().and_then(Fingerprint::from_bytes);
        stored.insert(EventId::from_uuid(row.try_get(0)?), facts);
    }
    if stored.len() != taken.len() {
        return Err(StoreError::Corrupt("a claimed event id vanished".into()).into());
    }
    Ok(stored)
}

// ---- write ------------------------------------------------------------------

/// Get-or-create of one name-only dimension's wanted values.
async fn resolve_names(
    tx: &Transaction<'_>,
    s: &NameStatements,
    orgs: &Orgs,
    wanted: &BTreeSet<Key<'_>>,
) -> Result<Vec<Row>, Failure> {
    let mut naturals = Vec::with_capacity(wanted.len());
    for k in wanted {
        let org = orgs.key(k.org)?;
        naturals.push(InOrg { org, id: k.id });
    }
    let values = columns!(&naturals => org, id);
    let (_, found) = tokio::try_join!(send(tx, &s.insert, values), send(tx, &s.select, values))?;
    Ok(found)
}

/// Inserts and updates one renamable dimension's rows, returning the keys
/// of those created. Rows to update are named by their `stored` key.
async fn write_names(
    tx: &Transaction<'_>,
    s: &NamedStatements,
    names: &[NameRow<'_>],
) -> Result<Vec<Row>, Failure> {
    let new = columns!(names.iter().filter(|r| r.stored.is_none()) => org, natural.id, name, ts);
    let stored = columns!(names.iter().filter(|r| r.stored.is_some()) => org, stored, name, ts);
    let (created, _) = tokio::try_join!(send(tx, &s.insert, new), send(tx, &s.update, stored))?;
    Ok(created)
}

/// A catalog or user version to write, resolved to keys.
#[derive(Debug, Clone, Copy)]
struct NameRow<'a> {
    /// Its natural key.
    natural: Key<'a>,
    /// Organization key.
    org: i64,
    /// Surrogate key of the row to update; `None`: a new row.
    stored: Option<i64>,
    /// The name.
    name: &'a str,
    /// Milliseconds of the event that set it.
    ts: i64,
    /// Whether the visible name changed.
    renamed: bool,
}

/// The rows of the catalog or user versions in `changes`; `known`
/// holds the keys of the stored rows.
fn name_rows<'a>(
    orgs: &Orgs,
    changes: &'a Writes<'a, NameVersion<'a>>,
    known: &ByOrg<i64>,
) -> Result<Vec<NameRow<'a>>, StoreError> {
    let mut rows = Vec::with_capacity(changes.len());
    for (&natural, v) in changes {
        rows.push(NameRow {
            natural,
            org: orgs.key(natural.org)?,
            stored: known.get(natural).copied(),
            name: v.name.as_str(),
            ts: v.ts.millis(),
            renamed: v.renamed,
        });
    }
    Ok(rows)
}

/// A catalog membership row.
struct Member {
    component: InOrg<i64>,
    catalog: i64,
}

/// Carries out `plan` in three pipelined waves: name-only dimensions,
/// catalogs and users; components; membership, labels and events.
async fn write(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &Plan<'_>,
    keys: &mut Keys,
) -> Result<(), Failure> {
    if plan.new_events.is_empty() {
        return Ok(());
    }
    let catalogs = name_rows(&keys.orgs, &plan.catalogs, &keys.catalogs)?;
    let users = name_rows(&keys.orgs, &plan.users, &keys.users)?;
    let orgs = &keys.orgs;
    let (c, m, a, p, new_catalogs, new_users) = tokio::try_join!(
        resolve_names(tx, &s.categories, orgs, &plan.categories),
        resolve_names(tx, &s.manufacturers, orgs, &plan.manufacturers),
        resolve_names(tx, &s.applications, orgs, &plan.applications),
        resolve_names(tx, &s.projects, orgs, &plan.projects),
        write_names(tx, &s.catalogs, &catalogs),
        write_names(tx, &s.users, &users),
    )?;
    collect(orgs, &c, &mut keys.categories)?;
    collect(orgs, &m, &mut keys.manufacturers)?;
    collect(orgs, &a, &mut keys.applications)?;
    collect(orgs, &p, &mut keys.projects)?;
    collect(orgs, &new_catalogs, &mut keys.catalogs)?;
    collect(orgs, &new_users, &mut keys.users)?;

    let components = keys.components(&plan.components)?;
    let new = columns!(components.iter().filter(|r| r.stored.is_none()) =>
        org, natural.id, name, category, manufacturer, catalog_ids, ts);
    let stored = columns!(components.iter().filter(|r| r.stored.is_some()) =>
        org, stored, name, category, manufacturer, catalog_ids, ts);
    let (created, _) = tokio::try_join!(
        send(tx, &s.component_insert, new),
        send(tx, &s.component_update, stored),
    )?;
    collect(&keys.orgs, &created, &mut keys.components)?;

    let mut changed = Vec::new();
    let mut members = Vec::new();
    for r in &components {
        let Some(ids) = &r.membership else { continue };
        let id = keys.components.key(r.natural)?;
        let component = InOrg { org: r.org, id };
        members.extend(ids.iter().map(|&catalog| Member { component, catalog }));
        changed.push(component);
    }
    let members = columns!(&members => component.org, component.id, catalog);
    let [changed_orgs, changed_keys] = columns!(&changed => org, id);
    let [renamed_orgs, renamed_keys] =
        columns!(catalogs.iter().filter(|r| r.renamed) => org, stored);
    let relabel = [changed_orgs, changed_keys, renamed_orgs, renamed_keys];
    let events = plan.new_events.iter().map(|new| keys.event(new.event));
    let events = events.collect::<StoreResult<Vec<_>>>()?;
    let events = columns!(&events => org, ts, id, kind, component, user, application, project);
    tokio::try_join!(
        send(tx, &s.membership_delete, [changed_orgs, changed_keys]),
        send(tx, &s.membership_insert, members),
        send(tx, &s.relabel_lock, relabel),
        send(tx, &s.relabel, relabel),
        send(tx, &s.events_insert, events),
    )?;
    Ok(())
}
