//! The PostgreSQL ingestion transaction: the same semantics as SQLite's
//! (one atomic, durable transaction per batch; idempotent by organization
//! and event id; newest event timestamp wins names), in four pipelined
//! waves of set-based statements instead of one round trip per row:
//!
//! 1. organizations;
//! 2. name-only dimensions, catalogs (read and locked), users;
//! 3. winning catalog names, components (read and locked), event ids
//!    (which of them are new);
//! 4. winning component versions, catalog membership and labels, the new
//!    events.
//!
//! Concurrent batches from several replicas are safe: conflicting inserts
//! wait for each other and then skip (`ON CONFLICT DO NOTHING`), rows are
//! locked in one global order, and a transaction that still loses a
//! deadlock or serialization check is run again from the start.

use super::error::is_retryable;
use super::keys::{ByOrg, OrgKeys};
use super::sql::Prepared;
use crate::domain::{Component, Event, OrgId};
use crate::store::batch::{catalog_signature, BatchPlan};
use crate::store::{IngestOutcome, StoreError};
use deadpool_postgres::{Pool, Transaction};
use std::collections::HashSet;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

/// Attempts per batch before a deadlock or serialization failure is
/// reported; each lost attempt has rolled back completely.
const MAX_ATTEMPTS: u32 = 5;

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

/// Stores `events` in one transaction, retried on deadlock or
/// serialization failure, and returns once it is committed.
pub async fn ingest(pool: &Pool, events: &[Event]) -> Result<IngestOutcome, StoreError> {
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        match run(&tx, events).await {
            Ok(accepted) => {
                tx.commit().await?;
                let total = events.len() as u64;
                return Ok(IngestOutcome {
                    accepted,
                    duplicates: total - accepted,
                });
            }
            Err(Failure::Db(e)) if is_retryable(&e) && attempt < MAX_ATTEMPTS => {
                drop(tx);
                tracing::debug!(attempt, error = %e, "ingestion transaction lost a conflict; retrying");
                let jitter = rand::random_range(0..10 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                attempt += 1;
            }
            // Still losing after every attempt: transient contention, so
            // "try again later" (503) rather than a failure (500).
            Err(Failure::Db(e)) if is_retryable(&e) => {
                return Err(StoreError::Unavailable(format!(
                    "ingestion lost {MAX_ATTEMPTS} conflicts with concurrent batches: {}",
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

/// Everything but commit; returns how many events were new.
async fn run(tx: &Transaction<'_>, events: &[Event]) -> Result<u64, Failure> {
    // Erased users first, under the lock that keeps erasures out until commit.
    let events = &*super::privacy::pseudonymize(tx, events).await?;
    let plan = &BatchPlan::new(events);
    let s = Prepared::new(tx).await?;
    let orgs = organizations(tx, &s, plan).await?;
    let distinct = distinct_events(events, &orgs)?;
    let dims = dimensions(tx, &s, plan, &orgs).await?;
    let comps = components(tx, &s, plan, &orgs, &dims, &distinct).await?;
    finish(tx, &s, &distinct, &dims, &comps).await
}

/// Wave 1: creates missing organizations and resolves every key.
async fn organizations(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &BatchPlan<'_>,
) -> Result<OrgKeys, Failure> {
    let ids: Vec<&str> = plan.orgs.iter().map(|o| o.as_str()).collect();
    let (_, found) = tokio::try_join!(
        exec(tx, &s.org_insert, [&ids]),
        rows(tx, &s.org_select, [&ids]),
    )?;
    Ok(OrgKeys::from_rows(&found)?)
}

/// What wave 2 resolved.
struct Dimensions {
    /// Categories, manufacturers, applications, projects.
    names: [ByOrg<i64>; 4],
    users: ByOrg<i64>,
    catalogs: ByOrg<i64>,
    /// Existing catalogs whose stored name loses to this batch's.
    catalog_updates: NamedUpdates,
    /// Catalogs whose visible name changed: their components need new labels.
    renamed: KeyColumns,
}

/// `(org_key, surrogate key)` pairs as two array parameters.
#[derive(Default)]
struct KeyColumns {
    orgs: Vec<i64>,
    keys: Vec<i64>,
}

impl KeyColumns {
    fn push(&mut self, org: i64, key: i64) {
        self.orgs.push(org);
        self.keys.push(key);
    }
}

/// New names for existing catalogs, as array parameters.
#[derive(Default)]
struct NamedUpdates {
    rows: KeyColumns,
    names: Vec<String>,
    ts: Vec<i64>,
}

/// `(organization, value)` pairs as organization keys and values.
fn org_values<'a>(
    orgs: &OrgKeys,
    pairs: impl Iterator<Item = (&'a OrgId, &'a str)>,
) -> Result<(Vec<i64>, Vec<&'a str>), StoreError> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (org, value) in pairs {
        keys.push(orgs.key(org)?);
        values.push(value);
    }
    Ok((keys, values))
}

/// Wave 2: name-only dimensions, catalogs and users.
async fn dimensions(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &BatchPlan<'_>,
    orgs: &OrgKeys,
) -> Result<Dimensions, Failure> {
    let params = [
        org_values(orgs, plan.categories.iter().map(|&(o, v)| (o, v.as_str())))?,
        org_values(
            orgs,
            plan.manufacturers.iter().map(|&(o, v)| (o, v.as_str())),
        )?,
        org_values(
            orgs,
            plan.applications.iter().map(|&(o, v)| (o, v.as_str())),
        )?,
        org_values(orgs, plan.projects.iter().map(|&(o, v)| (o, v.as_str())))?,
    ];
    let (mut cat_o, mut cat_x, mut cat_n, mut cat_ts) = (vec![], vec![], vec![], vec![]);
    for (&(org, id), &(ts, name)) in &plan.catalogs {
        cat_o.push(orgs.key(org)?);
        cat_x.push(id.as_str());
        cat_n.push(name.as_str());
        cat_ts.push(ts.millis());
    }
    let (mut usr_o, mut usr_x, mut usr_e, mut usr_ts) = (vec![], vec![], vec![], vec![]);
    for (&(org, id), &(ts, email)) in &plan.users {
        usr_o.push(orgs.key(org)?);
        usr_x.push(id.as_str());
        usr_e.push(email.as_str());
        usr_ts.push(ts.millis());
    }
    let [(c, cs), (m, ms), (a, as_), (p, ps)] = &params;
    let [(ci, csel), (mi, msel), (ai, asel), (pi, psel)] = &s.names;
    let (_, c_rows, _, m_rows, _, a_rows, _, p_rows, created, locked, _, u_rows) = tokio::try_join!(
        exec(tx, ci, [c, cs]),
        rows(tx, csel, [c, cs]),
        exec(tx, mi, [m, ms]),
        rows(tx, msel, [m, ms]),
        exec(tx, ai, [a, as_]),
        rows(tx, asel, [a, as_]),
        exec(tx, pi, [p, ps]),
        rows(tx, psel, [p, ps]),
        rows(tx, &s.catalog_insert, [&cat_o, &cat_x, &cat_n, &cat_ts]),
        rows(tx, &s.catalog_lock, [&cat_o, &cat_x]),
        exec(tx, &s.user_upsert, [&usr_o, &usr_x, &usr_e, &usr_ts]),
        rows(tx, &s.user_select, [&usr_o, &usr_x]),
    )?;

    let created = ByOrg::set_from_rows(&created)?;
    let mut stored: ByOrg<(i64, String, i64)> = ByOrg::default();
    let mut catalogs = ByOrg::default();
    for row in &locked {
        let (org, id, key): (i64, String, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        catalogs.insert(org, id.clone(), key);
        stored.insert(org, id, (key, row.try_get(3)?, row.try_get(4)?));
    }
    let mut catalog_updates = NamedUpdates::default();
    let mut renamed = KeyColumns::default();
    for (&(org, id), &(ts, name)) in &plan.catalogs {
        let org = orgs.key(org)?;
        if created.contains(org, id.as_str()) {
            continue;
        }
        let Some((key, stored_name, stored_ts)) = stored.get(org, id.as_str()) else {
            return Err(StoreError::Corrupt(
                "catalog key was not resolved during ingestion".into(),
            )
            .into());
        };
        let name_changed = stored_name != name.as_str();
        if ts.millis() > *stored_ts || (ts.millis() == *stored_ts && name_changed) {
            catalog_updates.rows.push(org, *key);
            catalog_updates.names.push(name.as_str().to_owned());
            catalog_updates.ts.push(ts.millis());
            if name_changed {
                renamed.push(org, *key);
            }
        }
    }
    Ok(Dimensions {
        names: [
            ByOrg::from_rows(&c_rows)?,
            ByOrg::from_rows(&m_rows)?,
            ByOrg::from_rows(&a_rows)?,
            ByOrg::from_rows(&p_rows)?,
        ],
        users: ByOrg::from_rows(&u_rows)?,
        catalogs,
        catalog_updates,
        renamed,
    })
}

/// What wave 3 resolved.
struct Components<'a> {
    keys: ByOrg<i64>,
    /// Existing components whose stored version loses to this batch's.
    updates: ComponentColumns,
    /// Components whose catalog membership must be rewritten.
    membership: Vec<(i64, i64, &'a Component)>,
    /// The (org_key, event id) pairs stored for the first time.
    new_events: HashSet<(i64, Uuid)>,
}

/// Component versions as array parameters.
#[derive(Default)]
struct ComponentColumns {
    orgs: Vec<i64>,
    /// External ids (insert) or surrogate keys (update) go in `ids`/`keys`.
    ids: Vec<String>,
    keys: Vec<i64>,
    names: Vec<String>,
    categories: Vec<Option<i64>>,
    manufacturers: Vec<Option<i64>>,
    signatures: Vec<String>,
    ts: Vec<i64>,
}

/// A component version resolved to dimension keys.
struct Version {
    category: Option<i64>,
    manufacturer: Option<i64>,
    signature: String,
}

fn version(dims: &Dimensions, org: i64, component: &Component) -> Result<Version, StoreError> {
    let category = component
        .category
        .as_ref()
        .map(|c| dims.names[0].key(org, c.as_str(), "category"))
        .transpose()?;
    let manufacturer = component
        .manufacturer
        .as_ref()
        .map(|m| dims.names[1].key(org, m.as_str(), "manufacturer"))
        .transpose()?;
    Ok(Version {
        category,
        manufacturer,
        signature: catalog_signature(component),
    })
}

/// Wave 3: catalog renames, then components created or read and locked,
/// then which versions win.
async fn components<'a>(
    tx: &Transaction<'_>,
    s: &Prepared,
    plan: &BatchPlan<'a>,
    orgs: &OrgKeys,
    dims: &Dimensions,
    distinct: &DistinctEvents<'_>,
) -> Result<Components<'a>, Failure> {
    let mut new = ComponentColumns::default();
    let mut versions = Vec::with_capacity(plan.components.len());
    for (&(org, id), &(ts, component)) in &plan.components {
        let org = orgs.key(org)?;
        let v = version(dims, org, component)?;
        new.orgs.push(org);
        new.ids.push(id.as_str().to_owned());
        new.names.push(component.display_name.as_str().to_owned());
        new.categories.push(v.category);
        new.manufacturers.push(v.manufacturer);
        new.signatures.push(v.signature.clone());
        new.ts.push(ts.millis());
        versions.push((org, id, ts, component, v));
    }
    let u = &dims.catalog_updates;
    let (updated, created, locked, savepoint, claimed) = tokio::join!(
        exec(
            tx,
            &s.catalog_update,
            [&u.rows.orgs, &u.rows.keys, &u.names, &u.ts]
        ),
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
        rows(tx, &s.component_lock, [&new.orgs, &new.ids]),
        exec(tx, &s.savepoint, []),
        exec(tx, &s.event_ids_claim, [&distinct.orgs, &distinct.ids]),
    );
    let (_, created, locked, _) = (updated?, created?, locked?, savepoint?);
    let new_events = new_event_ids(tx, s, distinct, claimed).await?;

    let created = ByOrg::set_from_rows(&created)?;
    type Stored = (i64, String, Option<i64>, Option<i64>, String, i64);
    let mut stored: ByOrg<Stored> = ByOrg::default();
    let mut keys = ByOrg::default();
    for row in &locked {
        let (org, id, key): (i64, String, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        keys.insert(org, id.clone(), key);
        let version = (
            key,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
        );
        stored.insert(org, id, version);
    }
    let mut updates = ComponentColumns::default();
    let mut membership = Vec::new();
    for (org, id, ts, component, v) in versions {
        let key = keys.key(org, id.as_str(), "component")?;
        if created.contains(org, id.as_str()) {
            membership.push((org, key, component));
            continue;
        }
        let Some((_, name, category, manufacturer, signature, stored_ts)) =
            stored.get(org, id.as_str())
        else {
            return Err(StoreError::Corrupt(
                "component key was not resolved during ingestion".into(),
            )
            .into());
        };
        let changed = name != component.display_name.as_str()
            || *category != v.category
            || *manufacturer != v.manufacturer
            || *signature != v.signature;
        let wins = ts.millis() > *stored_ts || (ts.millis() == *stored_ts && changed);
        if !wins {
            continue;
        }
        if *signature != v.signature {
            membership.push((org, key, component));
        }
        updates.orgs.push(org);
        updates.keys.push(key);
        updates
            .names
            .push(component.display_name.as_str().to_owned());
        updates.categories.push(v.category);
        updates.manufacturers.push(v.manufacturer);
        updates.signatures.push(v.signature);
        updates.ts.push(ts.millis());
    }
    Ok(Components {
        keys,
        updates,
        membership,
        new_events,
    })
}

/// The batch's events without repeats (the first occurrence of an id
/// wins, as in SQLite), sorted by (org, id) so that concurrent batches
/// claim ids in the same order.
struct DistinctEvents<'a> {
    orgs: Vec<i64>,
    ids: Vec<Uuid>,
    events: Vec<&'a Event>,
}

fn distinct_events<'a>(
    events: &'a [Event],
    orgs: &OrgKeys,
) -> Result<DistinctEvents<'a>, StoreError> {
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        rows.push((orgs.key(&e.organization)?, *e.id.as_uuid(), e));
    }
    // Stable sort, so `dedup_by` keeps the first occurrence in the batch.
    rows.sort_by_key(|&(org, id, _)| (org, id));
    rows.dedup_by(|b, a| (a.0, a.1) == (b.0, b.1));
    let mut out = DistinctEvents {
        orgs: Vec::with_capacity(rows.len()),
        ids: Vec::with_capacity(rows.len()),
        events: Vec::with_capacity(rows.len()),
    };
    for (org, id, e) in rows {
        out.orgs.push(org);
        out.ids.push(id);
        out.events.push(e);
    }
    Ok(out)
}

/// Which of the batch's events are new: all of them when claiming their
/// ids succeeded, else (some were stored before) those that
/// `ON CONFLICT DO NOTHING` could insert.
async fn new_event_ids(
    tx: &Transaction<'_>,
    s: &Prepared,
    distinct: &DistinctEvents<'_>,
    claimed: Result<u64, tokio_postgres::Error>,
) -> Result<HashSet<(i64, Uuid)>, Failure> {
    match claimed {
        Ok(_) => Ok(distinct
            .orgs
            .iter()
            .copied()
            .zip(distinct.ids.iter().copied())
            .collect()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            let (_, fresh) = tokio::try_join!(
                exec(tx, &s.rollback_to_savepoint, []),
                rows(tx, &s.event_ids_insert, [&distinct.orgs, &distinct.ids]),
            )?;
            let mut new = HashSet::with_capacity(fresh.len());
            for row in &fresh {
                new.insert((row.try_get(0)?, row.try_get(1)?));
            }
            Ok(new)
        }
        Err(e) => Err(e.into()),
    }
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

/// The new events of the batch, resolved to keys.
fn event_columns(
    distinct: &DistinctEvents<'_>,
    dims: &Dimensions,
    comps: &Components<'_>,
) -> Result<EventColumns, StoreError> {
    let mut cols = EventColumns::default();
    let all = distinct
        .orgs
        .iter()
        .zip(&distinct.ids)
        .zip(&distinct.events);
    for ((&org, &id), e) in all {
        if !comps.new_events.contains(&(org, id)) {
            continue;
        }
        cols.orgs.push(org);
        cols.ts.push(e.timestamp.millis());
        cols.ids.push(id);
        cols.kinds.push(e.kind.code());
        cols.components
            .push(comps.keys.key(org, e.component.id.as_str(), "component")?);
        cols.users
            .push(dims.users.key(org, e.user.id.as_str(), "user")?);
        cols.applications.push(
            e.application
                .as_ref()
                .map(|a| dims.names[2].key(org, a.as_str(), "application"))
                .transpose()?,
        );
        cols.projects.push(
            e.project_id
                .as_ref()
                .map(|p| dims.names[3].key(org, p.as_str(), "project"))
                .transpose()?,
        );
    }
    Ok(cols)
}

/// Wave 4: winning component versions, membership, labels and the events
/// themselves; returns how many events were new.
async fn finish(
    tx: &Transaction<'_>,
    s: &Prepared,
    distinct: &DistinctEvents<'_>,
    dims: &Dimensions,
    comps: &Components<'_>,
) -> Result<u64, Failure> {
    let mut changed = KeyColumns::default();
    let (mut mem_o, mut mem_k, mut mem_c) = (vec![], vec![], vec![]);
    for &(org, key, component) in &comps.membership {
        changed.push(org, key);
        for catalog in &component.catalogs {
            mem_o.push(org);
            mem_k.push(key);
            mem_c.push(dims.catalogs.key(org, catalog.id.as_str(), "catalog")?);
        }
    }
    let ev = event_columns(distinct, dims, comps)?;
    let u = &comps.updates;
    let r = &dims.renamed;
    let relabel: [Param<'_>; 4] = [&changed.orgs, &changed.keys, &r.orgs, &r.keys];
    let (_, _, _, _, _, accepted) = tokio::try_join!(
        exec(
            tx,
            &s.component_update,
            [
                &u.orgs,
                &u.keys,
                &u.names,
                &u.categories,
                &u.manufacturers,
                &u.signatures,
                &u.ts
            ]
        ),
        exec(tx, &s.membership_delete, [&changed.orgs, &changed.keys]),
        exec(tx, &s.membership_insert, [&mem_o, &mem_k, &mem_c]),
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
    Ok(accepted)
}
