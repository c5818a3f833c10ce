//! The PostgreSQL ingestion transaction: the same decision as SQLite's
//! ([`decide`]), read and written in pipelined waves of set-based
//! statements instead of one round trip per row:
//!
//! - *read*: organizations (created: an organization row alone shows
//!   nothing), then the batch's catalogs, components and users read and
//!   locked, and its event ids claimed with their facts;
//! - *decide*: [`decide`];
//! - *write*: name-only dimensions, catalogs and users; components; catalog
//!   membership, labels and the new events.
//!
//! Concurrent batches from several replicas are safe: a claimed id makes a
//! concurrent claim of it wait and then see it stored, dimension rows are
//! locked in one global order, and a transaction that loses a deadlock, a
//! serialization check or the race to create a dimension row is run again
//! from its read.

use super::error::is_retryable;
use super::keys::{key_of, OrgKeys};
use super::sql::{NameStatements, Prepared};
use crate::domain::{Event, EventId, Timestamp};
use crate::store::decide::{
    decide, ByOrg, Change, Key, NameKeys, NameVersion, Occurrences, Plan, Snapshot,
    StoredComponent, StoredName, Verdict,
};
use crate::store::facts::Fingerprint;
use crate::store::{IngestOutcome, StoreError};
use deadpool_postgres::{Pool, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};
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
enum Failure {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
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
    let s = Prepared::new(tx).await?;
    let (snapshot, mut keys) = read(tx, &s, events).await?;
    let plan = decide(std::iter::once(events), &snapshot);
    write(tx, &s, &plan, &mut keys).await?;
    Ok(plan.outcomes.into_iter().next().unwrap_or_default())
}

/// Surrogate keys of the rows the transaction has read or created.
struct Keys {
    orgs: OrgKeys,
    components: ByOrg<i64>,
    catalogs: ByOrg<i64>,
    users: ByOrg<i64>,
}

/// `(org_key, natural key)` pairs as two array parameters, deduplicated
/// and in locking order.
#[derive(Default)]
struct Natural<'a> {
    orgs: Vec<i64>,
    ids: Vec<&'a str>,
}

impl<'a> Natural<'a> {
    fn from_set(set: BTreeSet<(i64, &'a str)>) -> Self {
        let mut out = Self::default();
        for (org, id) in set {
            out.orgs.push(org);
            out.ids.push(id);
        }
        out
    }
}

// ---- read -------------------------------------------------------------------

/// What the database holds for `events`, with their ids claimed.
async fn read(
    tx: &Transaction<'_>,
    s: &Prepared,
    events: &[Event],
) -> Result<(Snapshot, Keys), Failure> {
    let org_ids: BTreeSet<&str> = events.iter().map(|e| e.organization.as_str()).collect();
    let org_ids: Vec<&str> = org_ids.into_iter().collect();
    let (_, found) = tokio::try_join!(
        exec(tx, &s.org_insert, [&org_ids]),
        rows(tx, &s.org_select, [&org_ids]),
    )?;
    let orgs = OrgKeys::from_rows(&found)?;

    let (mut components, mut catalogs, mut users) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for e in events {
        let org = orgs.key(&e.organization)?;
        components.insert((org, e.component.id.as_str()));
        for c in &e.component.catalogs {
            catalogs.insert((org, c.id.as_str()));
        }
        users.insert((org, e.user.id.as_str()));
    }
    let (components, catalogs, users) = (
        Natural::from_set(components),
        Natural::from_set(catalogs),
        Natural::from_set(users),
    );
    let claims = Claims::of(events, &orgs)?;
    let (catalog_rows, component_rows, user_rows, savepoint, claimed) = tokio::join!(
        rows(tx, &s.catalog_lock, [&catalogs.orgs, &catalogs.ids]),
        rows(tx, &s.component_lock, [&components.orgs, &components.ids]),
        rows(tx, &s.user_lock, [&users.orgs, &users.ids]),
        exec(tx, &s.savepoint, []),
        exec(
            tx,
            &s.event_ids_claim,
            [&claims.ids, &claims.orgs, &claims.facts]
        ),
    );
    let (catalog_rows, component_rows, user_rows, _) =
        (catalog_rows?, component_rows?, user_rows?, savepoint?);

    let mut snapshot = Snapshot {
        events: stored_events(tx, s, &claims, claimed).await?,
        ..Snapshot::default()
    };
    let mut keys = Keys {
        orgs,
        components: ByOrg::default(),
        catalogs: ByOrg::default(),
        users: ByOrg::default(),
    };
    keys.orgs.collect(&component_rows, &mut keys.components)?;
    keys.orgs.collect(&catalog_rows, &mut keys.catalogs)?;
    keys.orgs.collect(&user_rows, &mut keys.users)?;
    for row in &component_rows {
        let stored = StoredComponent {
            name: row.try_get(3)?,
            category: row.try_get(4)?,
            manufacturer: row.try_get(5)?,
            catalog_ids: row.try_get(6)?,
            name_ts: Timestamp::from_millis(row.try_get(7)?),
        };
        let org = keys.orgs.id(row.try_get(0)?)?.clone();
        snapshot.components.insert(org, row.try_get(1)?, stored);
    }
    for (rows, stored) in [
        (&catalog_rows, &mut snapshot.catalogs),
        (&user_rows, &mut snapshot.users),
    ] {
        for row in rows {
            let name = StoredName {
                name: row.try_get(3)?,
                name_ts: Timestamp::from_millis(row.try_get(4)?),
            };
            stored.insert(
                keys.orgs.id(row.try_get(0)?)?.clone(),
                row.try_get(1)?,
                name,
            );
        }
    }
    Ok((snapshot, keys))
}

/// The first occurrence of each of the batch's ids, as claim parameters
/// sorted by id (so concurrent batches claim in one order).
struct Claims {
    ids: Vec<Uuid>,
    orgs: Vec<i64>,
    facts: Vec<Vec<u8>>,
}

impl Claims {
    fn of(events: &[Event], orgs: &OrgKeys) -> Result<Self, StoreError> {
        let nothing_stored = HashMap::new();
        let mut first = Occurrences::after(&nothing_stored);
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let facts = Fingerprint::of(e);
            if first.classify(e.id, facts) == Verdict::New {
                rows.push((*e.id.as_uuid(), orgs.key(&e.organization)?, facts));
            }
        }
        rows.sort_unstable_by_key(|row| row.0);
        let mut out = Self {
            ids: Vec::with_capacity(rows.len()),
            orgs: Vec::with_capacity(rows.len()),
            facts: Vec::with_capacity(rows.len()),
        };
        for (id, org, facts) in rows {
            out.ids.push(id);
            out.orgs.push(org);
            out.facts.push(facts.as_bytes().to_vec());
        }
        Ok(out)
    }
}

/// The facts of the batch's ids that were stored before this transaction
/// claimed the rest: none when the plain claim succeeded, else those that
/// `ON CONFLICT DO NOTHING` could not claim.
async fn stored_events(
    tx: &Transaction<'_>,
    s: &Prepared,
    claims: &Claims,
    claimed: Result<u64, tokio_postgres::Error>,
) -> Result<HashMap<EventId, Option<Fingerprint>>, Failure> {
    match claimed {
        Ok(_) => Ok(HashMap::new()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            let (_, fresh) = tokio::try_join!(
                exec(tx, &s.rollback_to_savepoint, []),
                rows(
                    tx,
                    &s.event_ids_insert,
                    [&claims.ids, &claims.orgs, &claims.facts]
                ),
            )?;
            let mut fresh_ids = HashSet::with_capacity(fresh.len());
            for row in &fresh {
                fresh_ids.insert(row.try_get::<_, Uuid>(0)?);
            }
            let taken: Vec<Uuid> = claims
                .ids
                .iter()
                .filter(|id| !fresh_ids.contains(id))
                .copied()
                .collect();
            let mut stored = HashMap::with_capacity(taken.len());
            for row in tx.query(&s.event_ids_select, &[&taken]).await? {
                let facts: Option<Vec<u8>> = row.try_get(1)?;
                stored.insert(
                    EventId::from_uuid(row.try_get(0)?),
                    facts.as_deref().and_then(Fingerprint::from_bytes),
                );
            }
            if stored.len() != taken.len() {
                return Err(StoreError::Corrupt("a claimed event id vanished".into()).into());
            }
            Ok(stored)
        }
        Err(e) => Err(e.into()),
    }
}

// ---- write ------------------------------------------------------------------

/// New catalogs or users as array parameters.
#[derive(Default)]
struct NewNames<'a> {
    orgs: Vec<i64>,
    ids: Vec<&'a str>,
    names: Vec<&'a str>,
    ts: Vec<i64>,
}

/// Winning names of existing catalogs or users as array parameters.
#[derive(Default)]
struct NameUpdates<'a> {
    orgs: Vec<i64>,
    keys: Vec<i64>,
    names: Vec<&'a str>,
    ts: Vec<i64>,
}

/// `(org_key, surrogate key)` pairs as two array parameters.
#[derive(Default)]
struct KeyColumns {
    orgs: Vec<i64>,
    keys: Vec<i64>,
}

/// Splits a plan's catalog or user changes into inserts and updates; the
/// keys of renamed rows go to `renamed`.
fn name_changes<'a, T: AsRef<str>>(
    changes: &std::collections::BTreeMap<Key<'a, T>, Change<NameVersion<'a>>>,
    keys: &Keys,
    stored: &ByOrg<i64>,
    renamed: &mut KeyColumns,
) -> Result<(NewNames<'a>, NameUpdates<'a>), StoreError> {
    let (mut new, mut updates) = (NewNames::default(), NameUpdates::default());
    for (k, change) in changes {
        let org = keys.orgs.key(k.org)?;
        match change {
            Change::Insert(v) => {
                new.orgs.push(org);
                new.ids.push(k.id.as_ref());
                new.names.push(v.name.as_str());
                new.ts.push(v.ts.millis());
            }
            Change::Update(v) => {
                let key = key_of(stored, *k, "dimension")?;
                updates.orgs.push(org);
                updates.keys.push(key);
                updates.names.push(v.name.as_str());
                updates.ts.push(v.ts.millis());
                if v.renamed {
                    renamed.orgs.push(org);
                    renamed.keys.push(key);
                }
            }
            Change::Keep => {}
        }
    }
    Ok((new, updates))
}

/// A name-only dimension's wanted values as array parameters.
fn name_values<'a, T: AsRef<str>>(
    keys: &Keys,
    wanted: &BTreeSet<Key<'a, T>>,
) -> Result<Natural<'a>, StoreError> {
    let mut out = Natural::default();
    for k in wanted {
        out.orgs.push(keys.orgs.key(k.org)?);
        out.ids.push(k.id.as_ref());
    }
    Ok(out)
}

/// Get-or-create of one name-only dimension, pipelined.
async fn resolve_names(
    tx: &Transaction<'_>,
    s: &NameStatements,
    values: &Natural<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let (_, found) = tokio::try_join!(
        exec(tx, &s.insert, [&values.orgs, &values.ids]),
        rows(tx, &s.select, [&values.orgs, &values.ids]),
    )?;
    Ok(found)
}

/// Component versions as array parameters: external ids for inserts,
/// surrogate keys for updates.
#[derive(Default)]
struct ComponentColumns<'a> {
    orgs: Vec<i64>,
    ids: Vec<&'a str>,
    keys: Vec<i64>,
    names: Vec<&'a str>,
    categories: Vec<Option<i64>>,
    manufacturers: Vec<Option<i64>>,
    signatures: Vec<&'a str>,
    ts: Vec<i64>,
}

/// Event rows as array parameters.
#[derive(Default)]
struct EventColumns {
    orgs: Vec<i64>,
    ts: Vec<i64>,
    ids: Vec<Uuid>,
    kinds: Vec<i16>,
    components: Vec<i64>,
    users: Vec<i64>,
    applications: Vec<Option<i64>>,
    projects: Vec<Option<i64>>,
}

/// Carries out `plan` in three pipelined waves.
async fn write(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &Plan<'_>,
    keys: &mut Keys,
) -> Result<(), Failure> {
    if plan.is_empty() {
        return Ok(());
    }
    // Wave 1: name-only dimensions, catalogs, users.
    let mut renamed = KeyColumns::default();
    let (new_catalogs, catalog_updates) =
        name_changes(&plan.catalogs, keys, &keys.catalogs, &mut renamed)?;
    let (new_users, user_updates) =
        name_changes(&plan.users, keys, &keys.users, &mut KeyColumns::default())?;
    let categories = name_values(keys, &plan.categories)?;
    let manufacturers = name_values(keys, &plan.manufacturers)?;
    let applications = name_values(keys, &plan.applications)?;
    let projects = name_values(keys, &plan.projects)?;
    let (c, m, a, p, catalog_rows, _, user_rows, _) = tokio::try_join!(
        resolve_names(tx, &s.categories, &categories),
        resolve_names(tx, &s.manufacturers, &manufacturers),
        resolve_names(tx, &s.applications, &applications),
        resolve_names(tx, &s.projects, &projects),
        rows(
            tx,
            &s.catalog_insert,
            [
                &new_catalogs.orgs,
                &new_catalogs.ids,
                &new_catalogs.names,
                &new_catalogs.ts
            ]
        ),
        exec(
            tx,
            &s.catalog_update,
            [
                &catalog_updates.orgs,
                &catalog_updates.keys,
                &catalog_updates.names,
                &catalog_updates.ts
            ]
        ),
        rows(
            tx,
            &s.user_insert,
            [
                &new_users.orgs,
                &new_users.ids,
                &new_users.names,
                &new_users.ts
            ]
        ),
        exec(
            tx,
            &s.user_update,
            [
                &user_updates.orgs,
                &user_updates.keys,
                &user_updates.names,
                &user_updates.ts
            ]
        ),
    )?;
    let mut names = NameKeys::default();
    for (rows, map) in [
        (&c, &mut names.categories),
        (&m, &mut names.manufacturers),
        (&a, &mut names.applications),
        (&p, &mut names.projects),
    ] {
        keys.orgs.collect(rows, map)?;
    }
    keys.orgs.collect(&catalog_rows, &mut keys.catalogs)?;
    keys.orgs.collect(&user_rows, &mut keys.users)?;

    // Wave 2: components.
    let (mut new, mut updates) = (ComponentColumns::default(), ComponentColumns::default());
    for (k, change) in &plan.components {
        let Some(v) = change.version() else { continue };
        let org = keys.orgs.key(k.org)?;
        let columns = match change {
            Change::Insert(_) => {
                new.ids.push(k.id.as_str());
                &mut new
            }
            _ => {
                updates
                    .keys
                    .push(key_of(&keys.components, *k, "component")?);
                &mut updates
            }
        };
        columns.orgs.push(org);
        columns.names.push(v.component.display_name.as_str());
        columns.categories.push(
            v.component
                .category
                .as_ref()
                .map(|id| key_of(&names.categories, Key { org: k.org, id }, "category"))
                .transpose()?,
        );
        columns.manufacturers.push(
            v.component
                .manufacturer
                .as_ref()
                .map(|id| key_of(&names.manufacturers, Key { org: k.org, id }, "manufacturer"))
                .transpose()?,
        );
        columns.signatures.push(&v.catalog_ids);
        columns.ts.push(v.ts.millis());
    }
    let (component_rows, _) = tokio::try_join!(
        rows(
            tx,
            &s.component_insert,
            [
                &new.orgs,
                &new.ids,
                &new.names,
                &new.categories,
                &new.manufacturers,
                &new.signatures,
                &new.ts
            ]
        ),
        exec(
            tx,
            &s.component_update,
            [
                &updates.orgs,
                &updates.keys,
                &updates.names,
                &updates.categories,
                &updates.manufacturers,
                &updates.signatures,
                &updates.ts
            ]
        ),
    )?;
    keys.orgs.collect(&component_rows, &mut keys.components)?;

    // Wave 3: membership, labels, events.
    let mut changed = KeyColumns::default();
    let (mut mem_orgs, mut mem_components, mut mem_catalogs) = (vec![], vec![], vec![]);
    for (k, change) in &plan.components {
        let Some(v) = change.version().filter(|v| v.membership_changed) else {
            continue;
        };
        let org = keys.orgs.key(k.org)?;
        let key = key_of(&keys.components, *k, "component")?;
        changed.orgs.push(org);
        changed.keys.push(key);
        for catalog in &v.component.catalogs {
            mem_orgs.push(org);
            mem_components.push(key);
            mem_catalogs.push(key_of(
                &keys.catalogs,
                Key {
                    org: k.org,
                    id: &catalog.id,
                },
                "catalog",
            )?);
        }
    }
    let ev = event_columns(plan, keys, &names)?;
    let relabel: [Param<'_>; 4] = [&changed.orgs, &changed.keys, &renamed.orgs, &renamed.keys];
    tokio::try_join!(
        exec(tx, &s.membership_delete, [&changed.orgs, &changed.keys]),
        exec(
            tx,
            &s.membership_insert,
            [&mem_orgs, &mem_components, &mem_catalogs]
        ),
        exec(tx, &s.relabel_lock, relabel),
        exec(tx, &s.relabel, relabel),
        exec(
            tx,
            &s.events_insert,
            [
                &ev.orgs,
                &ev.ts,
                &ev.ids,
                &ev.kinds,
                &ev.components,
                &ev.users,
                &ev.applications,
                &ev.projects
            ]
        ),
    )?;
    Ok(())
}

/// The plan's new events, resolved to keys.
fn event_columns(
    plan: &Plan<'_>,
    keys: &Keys,
    names: &NameKeys,
) -> Result<EventColumns, StoreError> {
    let mut cols = EventColumns::default();
    for new in &plan.new_events {
        let e = new.event;
        let org = &e.organization;
        cols.orgs.push(keys.orgs.key(org)?);
        cols.ts.push(e.timestamp.millis());
        cols.ids.push(*e.id.as_uuid());
        cols.kinds.push(e.kind.code());
        cols.components.push(key_of(
            &keys.components,
            Key {
                org,
                id: &e.component.id,
            },
            "component",
        )?);
        cols.users.push(key_of(
            &keys.users,
            Key {
                org,
                id: &e.user.id,
            },
            "user",
        )?);
        cols.applications.push(
            e.application
                .as_ref()
                .map(|id| key_of(&names.applications, Key { org, id }, "application"))
                .transpose()?,
        );
        cols.projects.push(
            e.project_id
                .as_ref()
                .map(|id| key_of(&names.projects, Key { org, id }, "project"))
                .transpose()?,
        );
    }
    Ok(cols)
}
