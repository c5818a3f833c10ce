//! The SQLite ingestion transaction: read what the file holds for the
//! group, [`decide`], write the plan. One immediate transaction, so nothing
//! changes between the read and the write.

use crate::domain::{Event, OrgId};
use crate::store::decide::{
    decide, ByOrg, Change, ComponentVersion, Key, NameKeys, NameVersion, Plan, Snapshot,
    StoredComponent, StoredName,
};
use crate::store::facts::Fingerprint;
use crate::store::{IngestOutcome, StoreError};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Stores `batches` in one immediate transaction and commits it (durably,
/// given `synchronous=FULL`) before returning each batch's outcome. Batches
/// are decided in order, so an id repeated in a later batch is its
/// duplicate or conflict.
pub fn ingest(
    conn: &mut rusqlite::Connection,
    batches: &[Vec<Event>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (snapshot, mut keys) = read(&tx, batches.iter().flatten())?;
    let plan = decide(batches.iter().map(Vec::as_slice), &snapshot);
    write(&tx, &plan, &mut keys)?;
    tx.commit()?;
    Ok(plan.outcomes)
}

/// Surrogate keys of the rows the transaction has read or created.
#[derive(Default)]
struct Keys {
    orgs: HashMap<OrgId, i64>,
    components: ByOrg<i64>,
    catalogs: ByOrg<i64>,
    users: ByOrg<i64>,
}

impl Keys {
    fn org(&self, org: &OrgId) -> Result<i64, StoreError> {
        self.orgs
            .get(org)
            .copied()
            .ok_or_else(|| missing("organization"))
    }
}

/// A key the plan needs was neither read nor created: a bug, not bad input.
fn missing(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} key was not resolved during ingestion"))
}

fn key_of<T: AsRef<str>>(map: &ByOrg<i64>, key: Key<'_, T>, what: &str) -> Result<i64, StoreError> {
    map.get(key.org, key.id.as_ref())
        .copied()
        .ok_or_else(|| missing(what))
}

// ---- read -------------------------------------------------------------------

/// What the file holds for `events`' ids, components, catalogs and users.
fn read<'a>(
    tx: &Transaction<'_>,
    events: impl Iterator<Item = &'a Event> + Clone,
) -> Result<(Snapshot, Keys), StoreError> {
    let mut snapshot = Snapshot::default();
    let mut keys = Keys::default();
    let mut org_stmt = tx.prepare_cached("SELECT org_key FROM organizations WHERE org_id = ?1")?;
    for e in events.clone() {
        if !keys.orgs.contains_key(&e.organization) {
            if let Some(key) = org_stmt
                .query_row(params![e.organization.as_str()], |r| r.get(0))
                .optional()?
            {
                keys.orgs.insert(e.organization.clone(), key);
            }
        }
    }
    let mut id_stmt = tx.prepare_cached("SELECT facts FROM event_ids WHERE id = ?1")?;
    let mut component_stmt = tx.prepare_cached(
        "SELECT c.component_key, c.display_name, cat.name, man.name, c.catalog_ids, c.name_ts
         FROM components c
         LEFT JOIN categories cat ON cat.category_key = c.category_key
         LEFT JOIN manufacturers man ON man.manufacturer_key = c.manufacturer_key
         WHERE c.org_key = ?1 AND c.external_id = ?2",
    )?;
    let mut catalog_stmt = tx.prepare_cached(
        "SELECT catalog_key, display_name, name_ts FROM catalogs WHERE org_key = ?1 AND external_id = ?2",
    )?;
    let mut user_stmt = tx.prepare_cached(
        "SELECT user_key, email, name_ts FROM users WHERE org_key = ?1 AND external_id = ?2",
    )?;
    let stored_name = |stmt: &mut rusqlite::CachedStatement<'_>, org_key: i64, id: &str| {
        stmt.query_row(params![org_key, id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                StoredName {
                    name: r.get(1)?,
                    name_ts: crate::domain::Timestamp::from_millis(r.get(2)?),
                },
            ))
        })
        .optional()
    };
    for e in events {
        let id = e.id.as_uuid().as_bytes().as_slice();
        if let Entry::Vacant(slot) = snapshot.events.entry(e.id) {
            let stored = id_stmt
                .query_row(params![id], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()?;
            if let Some(facts) = stored {
                slot.insert(facts.as_deref().and_then(Fingerprint::from_bytes));
            }
        }
        let org = &e.organization;
        let Some(&org_key) = keys.orgs.get(org) else {
            continue; // a new organization holds nothing yet
        };
        let c = &e.component;
        if keys.components.get(org, c.id.as_str()).is_none() {
            let row = component_stmt
                .query_row(params![org_key, c.id.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        StoredComponent {
                            name: r.get(1)?,
                            category: r.get(2)?,
                            manufacturer: r.get(3)?,
                            catalog_ids: r.get(4)?,
                            name_ts: crate::domain::Timestamp::from_millis(r.get(5)?),
                        },
                    ))
                })
                .optional()?;
            if let Some((key, stored)) = row {
                keys.components.insert(org.clone(), c.id.to_string(), key);
                snapshot
                    .components
                    .insert(org.clone(), c.id.to_string(), stored);
            }
        }
        for catalog in &c.catalogs {
            if keys.catalogs.get(org, catalog.id.as_str()).is_none() {
                if let Some((key, stored)) =
                    stored_name(&mut catalog_stmt, org_key, catalog.id.as_str())?
                {
                    keys.catalogs
                        .insert(org.clone(), catalog.id.to_string(), key);
                    snapshot
                        .catalogs
                        .insert(org.clone(), catalog.id.to_string(), stored);
                }
            }
        }
        if keys.users.get(org, e.user.id.as_str()).is_none() {
            if let Some((key, stored)) = stored_name(&mut user_stmt, org_key, e.user.id.as_str())? {
                keys.users.insert(org.clone(), e.user.id.to_string(), key);
                snapshot
                    .users
                    .insert(org.clone(), e.user.id.to_string(), stored);
            }
        }
    }
    Ok((snapshot, keys))
}

// ---- write ------------------------------------------------------------------

/// Events inserted per statement: multi-row inserts spend far less time in
/// statement overhead than one row at a time (8 values a row, well under
/// SQLite's limit of 32,766 variables).
const ROWS_PER_INSERT: usize = 128;

/// `INSERT INTO events … VALUES (…), (…)` for `rows` rows.
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO events (org_key, ts, id, kind, component_key, user_key, application_key, project_key) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?)");
    }
    sql
}

/// A name-only dimension table: get-or-create by value, never renamed.
struct NameTable {
    table: &'static str,
    key: &'static str,
    value: &'static str,
}

impl NameTable {
    fn resolve<T: AsRef<str>>(
        &self,
        tx: &Transaction<'_>,
        keys: &Keys,
        wanted: &BTreeSet<Key<'_, T>>,
    ) -> Result<ByOrg<i64>, StoreError> {
        let Self { table, key, value } = self;
        let mut select = tx.prepare_cached(&format!(
            "SELECT {key} FROM {table} WHERE org_key = ?1 AND {value} = ?2"
        ))?;
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO {table} (org_key, {value}) VALUES (?1, ?2) RETURNING {key}"
        ))?;
        let mut out = ByOrg::default();
        for k in wanted {
            let args = params![keys.org(k.org)?, k.id.as_ref()];
            let found = select.query_row(args, |r| r.get(0)).optional()?;
            let surrogate = match found {
                Some(found) => found,
                None => insert.query_row(args, |r| r.get(0))?,
            };
            out.insert(k.org.clone(), k.id.as_ref().to_owned(), surrogate);
        }
        Ok(out)
    }
}

/// Carries out `plan`, creating keys as it goes.
fn write(tx: &Transaction<'_>, plan: &Plan<'_>, keys: &mut Keys) -> Result<(), StoreError> {
    if plan.is_empty() {
        return Ok(());
    }
    for org in &plan.orgs {
        if !keys.orgs.contains_key(*org) {
            let key = tx
                .prepare_cached("INSERT INTO organizations (org_id) VALUES (?1) RETURNING org_key")?
                .query_row(params![org.as_str()], |r| r.get(0))?;
            keys.orgs.insert((*org).clone(), key);
        }
    }
    let names = NameKeys {
        categories: NameTable {
            table: "categories",
            key: "category_key",
            value: "name",
        }
        .resolve(tx, keys, &plan.categories)?,
        manufacturers: NameTable {
            table: "manufacturers",
            key: "manufacturer_key",
            value: "name",
        }
        .resolve(tx, keys, &plan.manufacturers)?,
        applications: NameTable {
            table: "applications",
            key: "application_key",
            value: "name",
        }
        .resolve(tx, keys, &plan.applications)?,
        projects: NameTable {
            table: "projects",
            key: "project_key",
            value: "external_id",
        }
        .resolve(tx, keys, &plan.projects)?,
    };
    let mut relabel = BTreeSet::new();
    let mut members =
        tx.prepare_cached("SELECT component_key FROM component_catalogs WHERE catalog_key = ?1")?;
    for catalog in CATALOGS.write(tx, &plan.catalogs, &keys.orgs, &mut keys.catalogs)? {
        for member in members.query_map(params![catalog], |r| r.get::<_, i64>(0))? {
            relabel.insert(member?);
        }
    }
    USERS.write(tx, &plan.users, &keys.orgs, &mut keys.users)?;
    write_components(tx, plan, keys, &names, &mut relabel)?;
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
    write_events(tx, plan, keys, &names)
}

/// A dimension whose name changes: catalogs (display name), users (email).
struct NamedTable {
    table: &'static str,
    key: &'static str,
    name: &'static str,
}

const CATALOGS: NamedTable = NamedTable {
    table: "catalogs",
    key: "catalog_key",
    name: "display_name",
};
const USERS: NamedTable = NamedTable {
    table: "users",
    key: "user_key",
    name: "email",
};

impl NamedTable {
    /// Inserts and updates the rows `changes` asks for; returns the keys
    /// of renamed rows.
    fn write<T: AsRef<str>>(
        &self,
        tx: &Transaction<'_>,
        changes: &BTreeMap<Key<'_, T>, Change<NameVersion<'_>>>,
        orgs: &HashMap<OrgId, i64>,
        keys: &mut ByOrg<i64>,
    ) -> Result<Vec<i64>, StoreError> {
        let Self { table, key, name } = self;
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO {table} (org_key, external_id, {name}, name_ts) VALUES (?1, ?2, ?3, ?4) RETURNING {key}"
        ))?;
        let mut update = tx.prepare_cached(&format!(
            "UPDATE {table} SET {name} = ?2, name_ts = ?3 WHERE {key} = ?1"
        ))?;
        let mut renamed = Vec::new();
        for (k, change) in changes {
            match change {
                Change::Insert(v) => {
                    let org = orgs
                        .get(k.org)
                        .copied()
                        .ok_or_else(|| missing("organization"))?;
                    let args = params![org, k.id.as_ref(), v.name.as_str(), v.ts.millis()];
                    let created = insert.query_row(args, |r| r.get(0))?;
                    keys.insert(k.org.clone(), k.id.as_ref().to_owned(), created);
                }
                Change::Update(v) => {
                    let stored = key_of(keys, *k, table)?;
                    update.execute(params![stored, v.name.as_str(), v.ts.millis()])?;
                    if v.renamed {
                        renamed.push(stored);
                    }
                }
                Change::Keep => {}
            }
        }
        Ok(renamed)
    }
}

fn write_components(
    tx: &Transaction<'_>,
    plan: &Plan<'_>,
    keys: &mut Keys,
    names: &NameKeys,
    relabel: &mut BTreeSet<i64>,
) -> Result<(), StoreError> {
    for (k, change) in &plan.components {
        let Some(v) = change.version() else { continue };
        let ComponentVersion {
            component,
            ts,
            catalog_ids,
            membership_changed,
        } = v;
        let category = component
            .category
            .as_ref()
            .map(|id| key_of(&names.categories, Key { org: k.org, id }, "category"))
            .transpose()?;
        let manufacturer = component
            .manufacturer
            .as_ref()
            .map(|id| key_of(&names.manufacturers, Key { org: k.org, id }, "manufacturer"))
            .transpose()?;
        let key = if let Change::Insert(_) = change {
            let key = tx
                .prepare_cached(
                    "INSERT INTO components (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING component_key",
                )?
                .query_row(
                    params![keys.org(k.org)?, k.id.as_str(), component.display_name.as_str(), category, manufacturer, catalog_ids, ts.millis()],
                    |r| r.get(0),
                )?;
            keys.components.insert(k.org.clone(), k.id.to_string(), key);
            key
        } else {
            let key = key_of(&keys.components, *k, "component")?;
            tx.prepare_cached(
                "UPDATE components SET display_name = ?2, category_key = ?3, manufacturer_key = ?4, catalog_ids = ?5, name_ts = ?6
                 WHERE component_key = ?1",
            )?
            .execute(params![key, component.display_name.as_str(), category, manufacturer, catalog_ids, ts.millis()])?;
            key
        };
        if *membership_changed {
            tx.prepare_cached("DELETE FROM component_catalogs WHERE component_key = ?1")?
                .execute(params![key])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO component_catalogs (component_key, catalog_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for c in &component.catalogs {
                let catalog = key_of(
                    &keys.catalogs,
                    Key {
                        org: k.org,
                        id: &c.id,
                    },
                    "catalog",
                )?;
                insert.execute(params![key, catalog])?;
            }
            relabel.insert(key);
        }
    }
    Ok(())
}

fn write_events(
    tx: &Transaction<'_>,
    plan: &Plan<'_>,
    keys: &Keys,
    names: &NameKeys,
) -> Result<(), StoreError> {
    let mut id_insert =
        tx.prepare_cached("INSERT INTO event_ids (id, org_key, facts) VALUES (?1, ?2, ?3)")?;
    for chunk in plan.new_events.chunks(ROWS_PER_INSERT) {
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 8);
        for new in chunk {
            let e = new.event;
            let org = &e.organization;
            let org_key = keys.org(org)?;
            let id = e.id.as_uuid().as_bytes().to_vec();
            id_insert.execute(params![id, org_key, new.facts.as_bytes()])?;
            let application = e
                .application
                .as_ref()
                .map(|id| key_of(&names.applications, Key { org, id }, "application"))
                .transpose()?;
            let project = e
                .project_id
                .as_ref()
                .map(|id| key_of(&names.projects, Key { org, id }, "project"))
                .transpose()?;
            values.extend([
                org_key.into(),
                e.timestamp.millis().into(),
                id.into(),
                i64::from(e.kind.code()).into(),
                key_of(
                    &keys.components,
                    Key {
                        org,
                        id: &e.component.id,
                    },
                    "component",
                )?
                .into(),
                key_of(
                    &keys.users,
                    Key {
                        org,
                        id: &e.user.id,
                    },
                    "user",
                )?
                .into(),
                application.into(),
                project.into(),
            ]);
        }
        tx.prepare_cached(&insert_events_sql(chunk.len()))?
            .execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}
