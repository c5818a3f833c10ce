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
use super::sql::{NameStatements, Prepared};
use crate::domain::{Event, EventId, OrgId, Timestamp};
use crate::store::decide::{decide, ByOrg, Fingerprinted, Key, Occurrences, Plan, Snapshot};
use crate::store::decide::{StoredComponent, StoredEvents, StoredName, Verdict};
use crate::store::facts::Fingerprint;
use crate::store::keys::{name_rows, Keys, NameRow, Orgs};
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

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Db(e) => e.into(),
            Failure::Store(e) => e,
        }
    }
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
            Err(failure) => return Err(failure.into()),
        }
    }
}

/// One statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// Runs a statement, owning its parameter list so that several can be
/// pipelined with `try_join!`; it is sent when first polled.
async fn exec<const N: usize>(
    tx: &Transaction<'_>,
    stmt: &Statement,
    params: [Param<'_>; N],
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(stmt, &params).await
}

/// [`exec`] for statements that return rows.
async fn rows<const N: usize>(
    tx: &Transaction<'_>,
    stmt: &Statement,
    params: [Param<'_>; N],
) -> Result<Vec<Row>, tokio_postgres::Error> {
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

/// The array parameters of a set-based statement: `columns!(rows, |r|
/// ($1, $2, …))` gives one array per listed expression, evaluated for each
/// row `r` of `rows` (iterated once per array). Bind it with `let`, which
/// keeps the arrays alive.
macro_rules! columns {
    ($rows:expr, |$r:ident| ($($column:expr),+ $(,)?)) => {
        [$(&$rows.into_iter().map(|$r| $column).collect::<Vec<_>>() as Param<'_>),+]
    };
}

/// A dimension row's `(org_key, natural key)`, sorted in locking order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Natural<'a> {
    org: i64,
    id: &'a str,
}

/// The natural key of an `(org_key, natural key, surrogate key, …)` row.
fn natural<'r>(orgs: &'r Orgs, row: &'r Row) -> Result<Key<'r>, StoreError> {
    let org = orgs.id(row.try_get(0)?)?;
    Ok(Key {
        org,
        id: row.try_get(1)?,
    })
}

/// Records the keys of `(org_key, natural key, surrogate key, …)` rows.
fn collect(orgs: &Orgs, rows: &[Row], keys: &mut ByOrg<i64>) -> Result<(), StoreError> {
    for row in rows {
        keys.insert(natural(orgs, row)?, row.try_get(2)?);
    }
    Ok(())
}

/// [`collect`], and the stored version `version` reads from each row.
fn record<V>(
    orgs: &Orgs,
    rows: &[Row],
    keys: &mut ByOrg<i64>,
    stored: &mut ByOrg<V>,
    version: fn(&Row) -> Result<V, tokio_postgres::Error>,
) -> Result<(), StoreError> {
    collect(orgs, rows, keys)?;
    for row in rows {
        stored.insert(natural(orgs, row)?, version(row)?);
    }
    Ok(())
}

fn stored_name(row: &Row) -> Result<StoredName, tokio_postgres::Error> {
    Ok(StoredName {
        name: row.try_get(3)?,
        name_ts: Timestamp::from_millis(row.try_get(4)?),
    })
}

// ---- read -------------------------------------------------------------------

/// The first occurrence of one of the batch's ids, claimed with its facts.
struct Claim {
    id: Uuid,
    org: i64,
    facts: Fingerprint,
}

/// What the database holds for `events`, with their ids claimed; the
/// rows' keys go to `keys`.
async fn read(
    tx: &Transaction<'_>,
    s: &Prepared,
    events: &[Fingerprinted<'_>],
    keys: &mut Keys,
) -> Result<Snapshot, Failure> {
    let org_ids: BTreeSet<&str> = events
        .iter()
        .map(|n| n.event.organization.as_str())
        .collect();
    let org_ids = Vec::from_iter(org_ids);
    let (_, org_rows) = tokio::try_join!(
        exec(tx, &s.org_insert, [&org_ids]),
        rows(tx, &s.org_select, [&org_ids]),
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
    for &Fingerprinted { event: e, facts } in events {
        let org = keys.orgs.key(&e.organization)?;
        components.insert(Natural {
            org,
            id: e.component.id.as_str(),
        });
        catalogs.extend(e.component.catalogs.iter().map(|c| Natural {
            org,
            id: c.id.as_str(),
        }));
        users.insert(Natural {
            org,
            id: e.user.id.as_str(),
        });
        if first.classify(e.id, facts) == Verdict::New {
            claims.push(Claim {
                id: *e.id.as_uuid(),
                org,
                facts,
            });
        }
    }
    // Sorted by id, so concurrent batches claim in one order.
    claims.sort_unstable_by_key(|c| c.id);
    let claim = columns!(&claims, |c| (c.id, c.org, c.facts.as_bytes()));
    let catalogs = columns!(&catalogs, |n| (n.org, n.id));
    let components = columns!(&components, |n| (n.org, n.id));
    let users = columns!(&users, |n| (n.org, n.id));
    let (catalog_rows, component_rows, user_rows, savepoint, claimed) = tokio::join!(
        rows(tx, &s.catalogs.lock, catalogs),
        rows(tx, &s.component_lock, components),
        rows(tx, &s.users.lock, users),
        exec(tx, &s.savepoint, []),
        exec(tx, &s.event_ids_claim, claim),
    );
    let (catalog_rows, component_rows, user_rows, _) =
        (catalog_rows?, component_rows?, user_rows?, savepoint?);
    let mut snapshot = Snapshot {
        events: stored_events(tx, s, &claims, claim, claimed).await?,
        ..Snapshot::default()
    };
    let orgs = &keys.orgs;
    record(
        orgs,
        &component_rows,
        &mut keys.components,
        &mut snapshot.components,
        |row| {
            Ok(StoredComponent {
                name: row.try_get(3)?,
                category: row.try_get(4)?,
                manufacturer: row.try_get(5)?,
                catalog_ids: row.try_get(6)?,
                name_ts: Timestamp::from_millis(row.try_get(7)?),
            })
        },
    )?;
    record(
        orgs,
        &catalog_rows,
        &mut keys.catalogs,
        &mut snapshot.catalogs,
        stored_name,
    )?;
    record(
        orgs,
        &user_rows,
        &mut keys.users,
        &mut snapshot.users,
        stored_name,
    )?;
    Ok(snapshot)
}

/// The facts of the batch's ids that were stored before this transaction
/// claimed the rest: none when the plain claim succeeded, else those that
/// `ON CONFLICT DO NOTHING` could not claim.
async fn stored_events(
    tx: &Transaction<'_>,
    s: &Prepared,
    claims: &[Claim],
    claim: [Param<'_>; 3],
    claimed: Result<u64, tokio_postgres::Error>,
) -> Result<StoredEvents, Failure> {
    match claimed {
        Ok(_) => return Ok(StoredEvents::new()),
        Err(e) if e.code() != Some(&SqlState::UNIQUE_VIOLATION) => return Err(e.into()),
        Err(_) => {}
    }
    let (_, fresh) = tokio::try_join!(
        exec(tx, &s.rollback_to_savepoint, []),
        rows(tx, &s.event_ids_insert, claim),
    )?;
    let fresh: HashSet<Uuid> = fresh
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
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
    let orgs: Vec<i64> = wanted
        .iter()
        .map(|k| orgs.key(k.org))
        .collect::<Result<_, _>>()?;
    let values = Vec::from_iter(wanted.iter().map(|k| k.id));
    let (_, found) = tokio::try_join!(
        exec(tx, &s.insert, [&orgs, &values]),
        rows(tx, &s.select, [&orgs, &values]),
    )?;
    Ok(found)
}

/// A component's catalog membership row.
struct Member {
    org: i64,
    component: i64,
    catalog: i64,
}

/// A row by organization key and surrogate key.
struct Surrogate {
    org: i64,
    key: i64,
}

/// Carries out `plan` in three pipelined waves: name-only dimensions,
/// catalogs and users; components; membership, labels and events. Rows to
/// update are named by their keys (`stored`, never null there).
async fn write(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &Plan<'_>,
    keys: &mut Keys,
) -> Result<(), Failure> {
    if plan.is_empty() {
        return Ok(());
    }
    let catalogs = name_rows(&keys.orgs, &plan.catalogs, &keys.catalogs)?;
    let users = name_rows(&keys.orgs, &plan.users, &keys.users)?;
    let new = |r: &&NameRow<'_>| r.stored.is_none();
    let stored = |r: &&NameRow<'_>| r.stored.is_some();
    let new_catalogs = columns!(catalogs.iter().filter(new), |r| (
        r.org,
        r.natural.id,
        r.name,
        r.ts
    ));
    let catalog_updates = columns!(catalogs.iter().filter(stored), |r| (
        r.org, r.stored, r.name, r.ts
    ));
    let new_users = columns!(users.iter().filter(new), |r| (
        r.org,
        r.natural.id,
        r.name,
        r.ts
    ));
    let user_updates = columns!(users.iter().filter(stored), |r| (
        r.org, r.stored, r.name, r.ts
    ));
    let (c, m, a, p, catalog_rows, _, user_rows, _) = tokio::try_join!(
        resolve_names(tx, &s.categories, &keys.orgs, &plan.categories),
        resolve_names(tx, &s.manufacturers, &keys.orgs, &plan.manufacturers),
        resolve_names(tx, &s.applications, &keys.orgs, &plan.applications),
        resolve_names(tx, &s.projects, &keys.orgs, &plan.projects),
        async { Ok(rows(tx, &s.catalogs.insert, new_catalogs).await?) },
        async { Ok(exec(tx, &s.catalogs.update, catalog_updates).await?) },
        async { Ok(rows(tx, &s.users.insert, new_users).await?) },
        async { Ok(exec(tx, &s.users.update, user_updates).await?) },
    )?;
    let orgs = &keys.orgs;
    collect(orgs, &c, &mut keys.categories)?;
    collect(orgs, &m, &mut keys.manufacturers)?;
    collect(orgs, &a, &mut keys.applications)?;
    collect(orgs, &p, &mut keys.projects)?;
    collect(orgs, &catalog_rows, &mut keys.catalogs)?;
    collect(orgs, &user_rows, &mut keys.users)?;

    let components = keys.components(&plan.components)?;
    let new = columns!(components.iter().filter(|r| r.stored.is_none()), |r| (
        r.org,
        r.natural.id,
        r.name,
        r.category,
        r.manufacturer,
        r.catalog_ids,
        r.ts
    ));
    let updated = columns!(components.iter().filter(|r| r.stored.is_some()), |r| (
        r.org,
        r.stored,
        r.name,
        r.category,
        r.manufacturer,
        r.catalog_ids,
        r.ts
    ));
    let (component_rows, _) = tokio::try_join!(
        rows(tx, &s.component_insert, new),
        exec(tx, &s.component_update, updated),
    )?;
    collect(&keys.orgs, &component_rows, &mut keys.components)?;

    let mut changed = Vec::new();
    let mut members = Vec::new();
    for r in &components {
        let Some(catalogs) = &r.membership else {
            continue;
        };
        let component = keys.components.key(r.natural)?;
        changed.push(Surrogate {
            org: r.org,
            key: component,
        });
        let member = |&catalog| Member {
            org: r.org,
            component,
            catalog,
        };
        members.extend(catalogs.iter().map(member));
    }
    let [changed_orgs, changed_keys] = columns!(&changed, |c| (c.org, c.key));
    let renamed = columns!(catalogs.iter().filter(|r| r.renamed), |r| (r.org, r.stored));
    let [renamed_orgs, renamed_keys] = renamed;
    let relabel = [changed_orgs, changed_keys, renamed_orgs, renamed_keys];
    let members = columns!(&members, |m| (m.org, m.component, m.catalog));
    let events: Vec<_> = plan
        .new_events
        .iter()
        .map(|n| keys.event(n.event))
        .collect::<Result<_, _>>()?;
    let events = columns!(&events, |r| (
        r.org,
        r.ts,
        r.id,
        r.kind,
        r.component,
        r.user,
        r.application,
        r.project
    ));
    tokio::try_join!(
        exec(tx, &s.membership_delete, [changed_orgs, changed_keys]),
        exec(tx, &s.membership_insert, members),
        exec(tx, &s.relabel_lock, relabel),
        exec(tx, &s.relabel, relabel),
        exec(tx, &s.events_insert, events),
    )?;
    Ok(())
}
