//! The PostgreSQL ingestion transaction: the same decision as SQLite's,
//! read and written in pipelined waves of set-based statements instead of
//! one round trip per row:
//!
//! - *read*: organizations (created: an organization row alone shows
//!   nothing), then the batch's catalogs, components and users read and
//!   locked, and its event ids claimed with their facts;
//! - *decide*: [`decide_fingerprinted`], on the facts hashed once for the
//!   claim;
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
use crate::store::decide::Plan;
use crate::store::decide::{decide_fingerprinted, ByOrg, Change, Key, NameVersion, Occurrences};
use crate::store::decide::{Snapshot, StoredComponent, StoredName, Verdict};
use crate::store::facts::Fingerprint;
use crate::store::keys::{key_of, Keys};
use crate::store::{IngestOutcome, StoreError};
use deadpool_postgres::{Pool, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    // Erased users first, under the lock that keeps erasures out until commit.
    let events = &*super::privacy::pseudonymize(tx, events).await?;
    let s = Prepared::new(tx).await?;
    let facts: Vec<Fingerprint> = events.iter().map(Fingerprint::of).collect();
    let (snapshot, mut keys) = read(tx, &s, events, &facts).await?;
    let fingerprinted = events.iter().zip(facts.iter().copied());
    let plan = decide_fingerprinted(std::iter::once(fingerprinted), &snapshot);
    write(tx, &s, &plan, &mut keys).await?;
    Ok(plan.outcomes.into_iter().next().unwrap_or_default())
}

/// `(org_key, natural key)` pairs as two array parameters, in locking order.
#[derive(Default)]
struct Natural<'a> {
    orgs: Vec<i64>,
    ids: Vec<&'a str>,
}

impl<'a> FromIterator<(i64, &'a str)> for Natural<'a> {
    fn from_iter<I: IntoIterator<Item = (i64, &'a str)>>(pairs: I) -> Self {
        let sorted: BTreeSet<(i64, &'a str)> = pairs.into_iter().collect();
        let (orgs, ids) = sorted.into_iter().unzip();
        Self { orgs, ids }
    }
}

/// Records `(org_key, natural key, surrogate key, …)` rows in the map
/// `pick` chooses.
fn collect(
    keys: &mut Keys,
    rows: &[Row],
    pick: fn(&mut Keys) -> &mut ByOrg<i64>,
) -> Result<(), StoreError> {
    for row in rows {
        let org = keys.org_id(row.try_get(0)?)?.clone();
        pick(keys).insert(org, row.try_get(1)?, row.try_get(2)?);
    }
    Ok(())
}

// ---- read -------------------------------------------------------------------

/// What the database holds for `events` (whose facts are `facts`), with
/// their ids claimed.
async fn read(
    tx: &Transaction<'_>,
    s: &Prepared,
    events: &[Event],
    facts: &[Fingerprint],
) -> Result<(Snapshot, Keys), Failure> {
    let org_ids: BTreeSet<&str> = events.iter().map(|e| e.organization.as_str()).collect();
    let org_ids: Vec<&str> = org_ids.into_iter().collect();
    let (_, org_rows) = tokio::try_join!(
        exec(tx, &s.org_insert, [&org_ids]),
        rows(tx, &s.org_select, [&org_ids]),
    )?;
    let mut keys = Keys::default();
    for row in &org_rows {
        let id = OrgId::parse(row.try_get::<_, String>(0)?)
            .map_err(|e| StoreError::Corrupt(format!("stored organization id: {e}")))?;
        keys.add_org(id, row.try_get(1)?);
    }
    let mut components = Vec::new();
    let mut catalogs = Vec::new();
    let mut users = Vec::new();
    for e in events {
        let org = keys.org(&e.organization)?;
        components.push((org, e.component.id.as_str()));
        catalogs.extend(e.component.catalogs.iter().map(|c| (org, c.id.as_str())));
        users.push((org, e.user.id.as_str()));
    }
    let components: Natural<'_> = components.into_iter().collect();
    let catalogs: Natural<'_> = catalogs.into_iter().collect();
    let users: Natural<'_> = users.into_iter().collect();
    let claims = Claims::of(events, facts, &keys)?;
    let (catalog_rows, component_rows, user_rows, savepoint, claimed) = tokio::join!(
        rows(tx, &s.catalogs.lock, [&catalogs.orgs, &catalogs.ids]),
        rows(tx, &s.component_lock, [&components.orgs, &components.ids]),
        rows(tx, &s.users.lock, [&users.orgs, &users.ids]),
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
    collect(&mut keys, &component_rows, |k| &mut k.components)?;
    collect(&mut keys, &catalog_rows, |k| &mut k.catalogs)?;
    collect(&mut keys, &user_rows, |k| &mut k.users)?;
    for row in &component_rows {
        let stored = StoredComponent {
            name: row.try_get(3)?,
            category: row.try_get(4)?,
            manufacturer: row.try_get(5)?,
            catalog_ids: row.try_get(6)?,
            name_ts: Timestamp::from_millis(row.try_get(7)?),
        };
        let org = keys.org_id(row.try_get(0)?)?.clone();
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
            stored.insert(keys.org_id(row.try_get(0)?)?.clone(), row.try_get(1)?, name);
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
    fn of(events: &[Event], facts: &[Fingerprint], keys: &Keys) -> Result<Self, StoreError> {
        let nothing_stored = HashMap::new();
        let mut first = Occurrences::after(&nothing_stored);
        let mut rows = BTreeMap::new();
        for (e, &facts) in events.iter().zip(facts) {
            if first.classify(e.id, facts) == Verdict::New {
                rows.insert(*e.id.as_uuid(), (keys.org(&e.organization)?, facts));
            }
        }
        let mut out = Self {
            ids: Vec::with_capacity(rows.len()),
            orgs: Vec::with_capacity(rows.len()),
            facts: Vec::with_capacity(rows.len()),
        };
        for (id, (org, facts)) in rows {
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

/// Catalog or user rows as array parameters: external ids for inserts,
/// surrogate keys for updates.
#[derive(Default)]
struct NameColumns<'a> {
    orgs: Vec<i64>,
    ids: Vec<&'a str>,
    keys: Vec<i64>,
    names: Vec<&'a str>,
    ts: Vec<i64>,
}

/// Splits a plan's catalog or user changes into inserts and updates; the
/// keys of renamed rows go to `renamed`.
fn name_changes<'a, T: AsRef<str>>(
    changes: &'a BTreeMap<Key<'a, T>, Change<NameVersion<'a>>>,
    keys: &Keys,
    known: &ByOrg<i64>,
    renamed: &mut KeyColumns,
) -> Result<[NameColumns<'a>; 2], StoreError> {
    let [mut new, mut updates] = [NameColumns::default(), NameColumns::default()];
    for (k, change) in changes {
        let org = keys.org(k.org)?;
        let (columns, v) = match change {
            Change::Insert(v) => {
                new.ids.push(k.id.as_ref());
                (&mut new, v)
            }
            Change::Update(v) => {
                let key = key_of(known, *k, "dimension")?;
                updates.keys.push(key);
                if v.renamed {
                    renamed.orgs.push(org);
                    renamed.keys.push(key);
                }
                (&mut updates, v)
            }
            Change::Keep => continue,
        };
        columns.orgs.push(org);
        columns.names.push(v.name.as_str());
        columns.ts.push(v.ts.millis());
    }
    Ok([new, updates])
}

/// `(org_key, surrogate key)` pairs as two array parameters.
#[derive(Default)]
struct KeyColumns {
    orgs: Vec<i64>,
    keys: Vec<i64>,
}

/// Get-or-create of one name-only dimension's wanted values.
async fn resolve_names<T: AsRef<str>>(
    tx: &Transaction<'_>,
    s: &NameStatements,
    keys: &Keys,
    wanted: &BTreeSet<Key<'_, T>>,
) -> Result<Vec<Row>, Failure> {
    let mut orgs = Vec::with_capacity(wanted.len());
    for k in wanted {
        orgs.push(keys.org(k.org)?);
    }
    let values: Vec<&str> = wanted.iter().map(|k| k.id.as_ref()).collect();
    let (_, found) = tokio::try_join!(
        exec(tx, &s.insert, [&orgs, &values]),
        rows(tx, &s.select, [&orgs, &values]),
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

/// Carries out `plan` in three pipelined waves: name-only dimensions,
/// catalogs and users; components; membership, labels and events.
async fn write(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &Plan<'_>,
    keys: &mut Keys,
) -> Result<(), Failure> {
    if plan.is_empty() {
        return Ok(());
    }
    let mut renamed = KeyColumns::default();
    let [new_catalogs, catalog_updates] =
        name_changes(&plan.catalogs, keys, &keys.catalogs, &mut renamed)?;
    let [new_users, user_updates] =
        name_changes(&plan.users, keys, &keys.users, &mut KeyColumns::default())?;
    let (c, m, a, p, catalog_rows, _, user_rows, _) = tokio::try_join!(
        resolve_names(tx, &s.categories, keys, &plan.categories),
        resolve_names(tx, &s.manufacturers, keys, &plan.manufacturers),
        resolve_names(tx, &s.applications, keys, &plan.applications),
        resolve_names(tx, &s.projects, keys, &plan.projects),
        async { Ok(rows(tx, &s.catalogs.insert, new_catalogs.inserts()).await?) },
        async { Ok(exec(tx, &s.catalogs.update, catalog_updates.updates()).await?) },
        async { Ok(rows(tx, &s.users.insert, new_users.inserts()).await?) },
        async { Ok(exec(tx, &s.users.update, user_updates.updates()).await?) },
    )?;
    collect(keys, &c, |k| &mut k.categories)?;
    collect(keys, &m, |k| &mut k.manufacturers)?;
    collect(keys, &a, |k| &mut k.applications)?;
    collect(keys, &p, |k| &mut k.projects)?;
    collect(keys, &catalog_rows, |k| &mut k.catalogs)?;
    collect(keys, &user_rows, |k| &mut k.users)?;

    let [mut new, mut updates] = [ComponentColumns::default(), ComponentColumns::default()];
    for (k, change) in &plan.components {
        let Some(v) = change.version() else { continue };
        let r = keys.component(*k, v)?;
        let columns = if let Change::Insert(_) = change {
            new.ids.push(k.id.as_str());
            &mut new
        } else {
            updates
                .keys
                .push(key_of(&keys.components, *k, "component")?);
            &mut updates
        };
        columns.orgs.push(r.org);
        columns.names.push(r.name);
        columns.categories.push(r.category);
        columns.manufacturers.push(r.manufacturer);
        columns.signatures.push(r.catalog_ids);
        columns.ts.push(r.ts);
    }
    let (component_rows, _) = tokio::try_join!(
        rows(tx, &s.component_insert, new.row_params(&new.ids)),
        exec(tx, &s.component_update, updates.row_params(&updates.keys)),
    )?;
    collect(keys, &component_rows, |k| &mut k.components)?;

    let mut changed = KeyColumns::default();
    let (mut mem_orgs, mut mem_components, mut mem_catalogs) = (vec![], vec![], vec![]);
    for (k, change) in &plan.components {
        let Some(v) = change.version().filter(|v| v.membership_changed) else {
            continue;
        };
        let org = keys.org(k.org)?;
        let key = key_of(&keys.components, *k, "component")?;
        changed.orgs.push(org);
        changed.keys.push(key);
        for catalog in keys.membership(*k, v)? {
            mem_orgs.push(org);
            mem_components.push(key);
            mem_catalogs.push(catalog);
        }
    }
    let mut ev = EventColumns::default();
    for new in &plan.new_events {
        let r = keys.event(new.event)?;
        ev.orgs.push(r.org);
        ev.ts.push(r.ts);
        ev.ids.push(r.id);
        ev.kinds.push(r.kind);
        ev.components.push(r.component);
        ev.users.push(r.user);
        ev.applications.push(r.application);
        ev.projects.push(r.project);
    }
    let relabel: [Param<'_>; 4] = [&changed.orgs, &changed.keys, &renamed.orgs, &renamed.keys];
    let events: [Param<'_>; 8] = [
        &ev.orgs,
        &ev.ts,
        &ev.ids,
        &ev.kinds,
        &ev.components,
        &ev.users,
        &ev.applications,
        &ev.projects,
    ];
    tokio::try_join!(
        exec(tx, &s.membership_delete, [&changed.orgs, &changed.keys]),
        exec(
            tx,
            &s.membership_insert,
            [&mem_orgs, &mem_components, &mem_catalogs]
        ),
        exec(tx, &s.relabel_lock, relabel),
        exec(tx, &s.relabel, relabel),
        exec(tx, &s.events_insert, events),
    )?;
    Ok(())
}

impl NameColumns<'_> {
    /// Parameters of a renamable dimension's insert.
    fn inserts(&self) -> [Param<'_>; 4] {
        [&self.orgs, &self.ids, &self.names, &self.ts]
    }

    /// Parameters of a renamable dimension's update.
    fn updates(&self) -> [Param<'_>; 4] {
        [&self.orgs, &self.keys, &self.names, &self.ts]
    }
}

impl ComponentColumns<'_> {
    /// Parameters of `COMPONENT_INSERT` (`which` = ids) or
    /// `COMPONENT_UPDATE` (`which` = keys).
    fn row_params<'p>(&'p self, which: Param<'p>) -> [Param<'p>; 7] {
        [
            &self.orgs,
            which,
            &self.names,
            &self.categories,
            &self.manufacturers,
            &self.signatures,
            &self.ts,
        ]
    }
}
