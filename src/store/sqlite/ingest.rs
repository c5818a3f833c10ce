//! The SQLite ingestion transaction: read what the file holds for the
//! group, [`decide`], write the plan. One immediate transaction, so nothing
//! changes between the read and the write.

use crate::domain::{Event, Timestamp};
use crate::store::decide::{decide, ByOrg, Fingerprinted, Key, Plan};
use crate::store::decide::{Snapshot, StoredComponent, StoredName};
use crate::store::facts::Fingerprint;
use crate::store::keys::{org_key, Dimension, Keys, Lookups, NameRow, Orgs, Set};
use crate::store::keys::{APPLICATIONS, CATALOGS, CATEGORIES, MANUFACTURERS, PROJECTS, USERS};
use crate::store::{IngestOutcome, StoreError};
use rusqlite::types::ToSql;
use rusqlite::{params, CachedStatement, OptionalExtension, Row, Transaction, TransactionBehavior};
use std::collections::BTreeSet;

/// One caller's events as the writer queues them, each with the
/// [`Fingerprint`] of its facts, computed by the caller off the writer
/// thread. (`Clone` only so a pseudonymized group can be a `Cow`.)
#[derive(Clone)]
pub struct Batch {
    /// The events, in arrival order.
    pub events: Vec<Event>,
    /// `facts[i]` fingerprints `events[i]`.
    facts: Vec<Fingerprint>,
}

impl Batch {
    /// Fingerprints `events`.
    pub fn new(events: Vec<Event>) -> Self {
        let facts = events.iter().map(Fingerprint::of).collect();
        Self { events, facts }
    }

    /// Each event with its facts, as [`decide`] takes them, once `orgs`
    /// holds their organizations.
    fn fingerprinted<'b>(&'b self, orgs: &Orgs) -> Result<Vec<Fingerprinted<'b>>, StoreError> {
        let new = |(event, &facts): (&'b Event, _)| {
            let org = org_key(orgs, &event.organization)?;
            Ok(Fingerprinted { event, facts, org })
        };
        self.events.iter().zip(&self.facts).map(new).collect()
    }
}

/// Stores `batches` in one immediate transaction and commits it (durably,
/// given `synchronous=FULL`) before returning each batch's outcome. Batches
/// are decided in order, so an id repeated in a later batch is its
/// duplicate or conflict.
pub fn ingest(
    conn: &mut rusqlite::Connection,
    batches: &[Batch],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Erased users first, inside the write lock (see `privacy`).
    let batches = super::privacy::pseudonymize(&tx, batches)?;
    let mut keys = Keys::default();
    organizations(&tx, &batches, &mut keys.orgs)?;
    let groups = batches.iter().map(|b| b.fingerprinted(&keys.orgs));
    let groups = groups.collect::<Result<Vec<_>, _>>()?;
    let wanted = Lookups::of(groups.iter().flatten().copied());
    let snapshot = read(&tx, &wanted, &mut keys)?;
    let plan = decide(groups, snapshot);
    write(&tx, &plan, &mut keys)?;
    tx.commit()?;
    Ok(plan.outcomes)
}

// ---- read -------------------------------------------------------------------

const READ_COMPONENT: &str =
    "SELECT c.component_key, c.display_name, cat.name, man.name, c.catalog_ids, c.name_ts
     FROM components c
     LEFT JOIN categories cat ON cat.category_key = c.category_key
     LEFT JOIN manufacturers man ON man.manufacturer_key = c.manufacturer_key
     WHERE c.org_key = ?1 AND c.external_id = ?2";

/// Records the keys of the organizations `batches` name, created where
/// missing as on PostgreSQL (an organization row alone shows nothing).
fn organizations(
    tx: &Transaction<'_>,
    batches: &[Batch],
    orgs: &mut Orgs,
) -> Result<(), StoreError> {
    let mut select = tx.prepare_cached("SELECT org_key FROM organizations WHERE org_id = ?1")?;
    let mut insert =
        tx.prepare_cached("INSERT INTO organizations (org_id) VALUES (?1) RETURNING org_key")?;
    for e in batches.iter().flat_map(|b| &b.events) {
        let org = &e.organization;
        if !orgs.contains_key(org) {
            let key = get_or_create(&mut select, &mut insert, params![org.as_str()])?;
            orgs.insert(org.clone(), key);
        }
    }
    Ok(())
}

/// What the file holds for the `wanted` ids, components, catalogs and
/// users, with the ids claimed (see `append`); the rows' keys go to `keys`.
fn read(
    tx: &Transaction<'_>,
    wanted: &Lookups<'_>,
    keys: &mut Keys,
) -> Result<Snapshot, StoreError> {
    let version = |r: &Row<'_>| {
        Ok(StoredComponent {
            name: r.get(1)?,
            category: r.get(2)?,
            manufacturer: r.get(3)?,
            catalog_ids: r.get(4)?,
            name_ts: Timestamp::from_millis(r.get(5)?),
        })
    };
    let known = &mut keys.components;
    Ok(Snapshot {
        events: super::append::claim(tx, &wanted.claims)?,
        components: stored(tx, READ_COMPONENT, &wanted.components, known, version)?,
        catalogs: CATALOGS.stored(tx, &wanted.catalogs, &mut keys.catalogs)?,
        users: USERS.stored(tx, &wanted.users, &mut keys.users)?,
    })
}

/// The stored versions of `wanted`, as `version` reads them from the rows
/// that `sql` selects by organization key and external id: the key first,
/// then the version. Their keys go to `keys`.
fn stored<V>(
    tx: &Transaction<'_>,
    sql: &str,
    wanted: &Set<Key<'_>>,
    keys: &mut ByOrg<i64>,
    version: impl Fn(&Row<'_>) -> rusqlite::Result<V>,
) -> Result<ByOrg<V>, StoreError> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut out = ByOrg::default();
    for &natural in wanted {
        let mut rows = stmt.query(params![natural.org, natural.id])?;
        if let Some(row) = rows.next()? {
            keys.insert(natural, row.get(0)?);
            out.insert(natural, version(row)?);
        }
    }
    Ok(out)
}

// ---- write ------------------------------------------------------------------

/// Carries out `plan`, creating keys as it goes.
fn write(tx: &Transaction<'_>, plan: &Plan<'_>, keys: &mut Keys) -> Result<(), StoreError> {
    if plan.new_events.is_empty() {
        return Ok(());
    }
    keys.categories = CATEGORIES.resolve(tx, &plan.categories)?;
    keys.manufacturers = MANUFACTURERS.resolve(tx, &plan.manufacturers)?;
    keys.applications = APPLICATIONS.resolve(tx, &plan.applications)?;
    keys.projects = PROJECTS.resolve(tx, &plan.projects)?;
    let mut relabel = BTreeSet::new();
    let mut members =
        tx.prepare_cached("SELECT component_key FROM component_catalogs WHERE catalog_key = ?1")?;
    let catalogs = keys.catalogs.names(&plan.catalogs);
    for catalog in CATALOGS.write(tx, &catalogs, &mut keys.catalogs)? {
        for member in members.query_map(params![catalog], |r| r.get::<_, i64>(0))? {
            relabel.insert(member?);
        }
    }
    let users = keys.users.names(&plan.users);
    USERS.write(tx, &users, &mut keys.users)?;
    write_components(tx, plan, keys, &mut relabel)?;
    let mut label = tx.prepare_cached(
        "UPDATE components SET catalogs_label = (
             SELECT group_concat(c.display_name, '; ' ORDER BY c.display_name)
             FROM component_catalogs cc JOIN catalogs c ON c.catalog_key = cc.catalog_key
             WHERE cc.component_key = ?1)
         WHERE component_key = ?1",
    )?;
    for key in relabel {
        label.execute(params![key])?;
    }
    super::append::append(tx, keys.events(&plan.new_events)?)
}

/// The key `select` finds for `args`, or else the one `insert` creates.
fn get_or_create(
    select: &mut CachedStatement<'_>,
    insert: &mut CachedStatement<'_>,
    args: &[&dyn ToSql],
) -> rusqlite::Result<i64> {
    match select.query_row(args, |r| r.get(0)).optional()? {
        Some(key) => Ok(key),
        None => insert.query_row(args, |r| r.get(0)),
    }
}

// Row-at-a-time statements for the dimension tables named in `keys`.
impl Dimension {
    /// The keys of `wanted`, created where missing.
    fn resolve(
        &self,
        tx: &Transaction<'_>,
        wanted: &BTreeSet<Key<'_>>,
    ) -> Result<ByOrg<i64>, StoreError> {
        let Self { table, key, column } = self;
        let mut select = tx.prepare_cached(&format!(
            "SELECT {key} FROM {table} WHERE org_key = ?1 AND {column} = ?2"
        ))?;
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO {table} (org_key, {column}) VALUES (?1, ?2) RETURNING {key}"
        ))?;
        let mut out = ByOrg::default();
        for &k in wanted {
            let args = params![k.org, k.id];
            out.insert(k, get_or_create(&mut select, &mut insert, args)?);
        }
        Ok(out)
    }

    /// [`stored`] of this renamable dimension.
    fn stored(
        &self,
        tx: &Transaction<'_>,
        wanted: &Set<Key<'_>>,
        keys: &mut ByOrg<i64>,
    ) -> Result<ByOrg<StoredName>, StoreError> {
        let Self { table, key, column } = self;
        let sql = format!(
            "SELECT {key}, {column}, name_ts FROM {table} WHERE org_key = ?1 AND external_id = ?2"
        );
        stored(tx, &sql, wanted, keys, |r| {
            Ok(StoredName {
                name: r.get(1)?,
                name_ts: Timestamp::from_millis(r.get(2)?),
            })
        })
    }

    /// Writes `rows` of this renamable dimension, adding the keys of new
    /// rows to `known`. Returns the keys of renamed rows.
    fn write(
        &self,
        tx: &Transaction<'_>,
        rows: &[NameRow<'_>],
        known: &mut ByOrg<i64>,
    ) -> Result<Vec<i64>, StoreError> {
        let Self { table, key, column } = self;
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO {table} (org_key, external_id, {column}, name_ts) VALUES (?1, ?3, ?4, ?5)
             RETURNING {key}"
        ))?;
        let mut update = tx.prepare_cached(&format!(
            "UPDATE {table} SET {column} = ?4, name_ts = ?5 WHERE {key} = ?2"
        ))?;
        let mut renamed = Vec::new();
        for r in rows {
            let args = params![r.natural.org, r.stored, r.natural.id, r.name, r.ts];
            let key = put([&mut insert, &mut update], r.natural, r.stored, args, known)?;
            renamed.extend(r.renamed.then_some(key));
        }
        Ok(renamed)
    }
}

/// Writes one version of a renamable dimension's row: over the `stored`
/// row, else as a new row whose key goes to `known`; returns the row's key.
/// `args` serve both statements: `?1` organization key, `?2` the stored
/// row's key (`NULL` for a new row), `?3` external id, then the version.
fn put(
    [insert, update]: [&mut CachedStatement<'_>; 2],
    natural: Key<'_>,
    stored: Option<i64>,
    args: &[&dyn ToSql],
    known: &mut ByOrg<i64>,
) -> rusqlite::Result<i64> {
    if let Some(key) = stored {
        return update.execute(args).map(|_| key);
    }
    let key = insert.query_row(args, |r| r.get(0))?;
    known.insert(natural, key);
    Ok(key)
}

/// Writes the plan's component versions and, where it changed, their
/// membership.
fn write_components(
    tx: &Transaction<'_>,
    plan: &Plan<'_>,
    keys: &mut Keys,
    relabel: &mut BTreeSet<i64>,
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO components (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
         VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING component_key",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE components SET display_name = ?4, category_key = ?5, manufacturer_key = ?6, catalog_ids = ?7, name_ts = ?8
         WHERE component_key = ?2",
    )?;
    let mut clear = tx.prepare_cached("DELETE FROM component_catalogs WHERE component_key = ?1")?;
    let mut join = tx.prepare_cached(
        "INSERT INTO component_catalogs (component_key, catalog_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for r in keys.components(&plan.components)? {
        let (org, stored, id, name) = (r.natural.org, r.stored, r.natural.id, r.name);
        let (category, manufacturer, ids, ts) = (r.category, r.manufacturer, r.catalog_ids, r.ts);
        let args = params![org, stored, id, name, category, manufacturer, ids, ts];
        let statements = [&mut insert, &mut update];
        let key = put(statements, r.natural, stored, args, &mut keys.components)?;
        if let Some(catalogs) = &r.membership {
            clear.execute(params![key])?;
            for catalog in catalogs {
                join.execute(params![key, catalog])?;
            }
            relabel.insert(key);
        }
    }
    Ok(())
}
