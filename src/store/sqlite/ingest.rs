//! The SQLite ingestion transaction: read what the file holds for the
//! group, [`decide`], write the plan. One immediate transaction, so nothing
//! changes between the read and the write.

use crate::domain::{Event, EventId, Timestamp};
use crate::store::decide::{
    decide, decide_fingerprinted, ByOrg, Change, Key, NameVersion, Plan, Snapshot,
};
use crate::store::decide::{StoredComponent, StoredName};
use crate::store::facts::Fingerprint;
use crate::store::keys::{key_of, Keys, NameDimension, NamedDimension};
use crate::store::keys::{APPLICATIONS, CATALOGS, CATEGORIES, MANUFACTURERS, PROJECTS, USERS};
use crate::store::{IngestOutcome, StoreError};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Stores `batches` in one immediate transaction and commits it (durably,
/// given `synchronous=FULL`) before returning each batch's outcome. Batches
/// are decided in order, so an id repeated in a later batch is its
/// duplicate or conflict. `facts` holds each event's [`Fingerprint`],
/// computed by the caller off the writer thread.
pub fn ingest(
    conn: &mut rusqlite::Connection,
    batches: &[Vec<Event>],
    facts: &[Vec<Fingerprint>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Erased users first, inside the write lock (see `privacy`).
    let pseudonymized = super::privacy::pseudonymize(&tx, batches)?;
    let (snapshot, mut keys) = read(&tx, pseudonymized.iter().flatten())?;
    let plan = match &pseudonymized {
        // Pseudonyms change user ids, a fact: those batches are hashed anew.
        Cow::Owned(batches) => decide(batches.iter().map(Vec::as_slice), &snapshot),
        Cow::Borrowed(batches) => decide_fingerprinted(
            batches
                .iter()
                .zip(facts)
                .map(|(batch, facts)| batch.iter().zip(facts.iter().copied())),
            &snapshot,
        ),
    };
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

/// What the file holds for `events`' ids, components, catalogs and users.
fn read<'a>(
    tx: &Transaction<'_>,
    events: impl Iterator<Item = &'a Event> + Clone,
) -> Result<(Snapshot, Keys), StoreError> {
    let mut snapshot = Snapshot {
        events: stored_facts(tx, events.clone())?,
        ..Snapshot::default()
    };
    let mut keys = Keys::default();
    let mut org_stmt = tx.prepare_cached("SELECT org_key FROM organizations WHERE org_id = ?1")?;
    let mut component_stmt = tx.prepare_cached(READ_COMPONENT)?;
    let mut named = [CATALOGS.read_statement(tx)?, USERS.read_statement(tx)?];
    for e in events {
        let org = &e.organization;
        if keys.find_org(org).is_none() {
            let Some(key) = org_stmt
                .query_row(params![org.as_str()], |r| r.get(0))
                .optional()?
            else {
                continue; // a new organization holds nothing yet
            };
            keys.add_org(org.clone(), key);
        }
        let org_key = keys.org(org)?;
        let c = &e.component;
        if keys.components.get(org, c.id.as_str()).is_none() {
            let row = component_stmt
                .query_row(params![org_key, c.id.as_str()], |r| {
                    let stored = StoredComponent {
                        name: r.get(1)?,
                        category: r.get(2)?,
                        manufacturer: r.get(3)?,
                        catalog_ids: r.get(4)?,
                        name_ts: Timestamp::from_millis(r.get(5)?),
                    };
                    Ok((r.get::<_, i64>(0)?, stored))
                })
                .optional()?;
            if let Some((key, stored)) = row {
                keys.components.insert(org.clone(), c.id.to_string(), key);
                snapshot
                    .components
                    .insert(org.clone(), c.id.to_string(), stored);
            }
        }
        let [catalogs, users] = &mut named;
        for catalog in &c.catalogs {
            let (map, stored) = (&mut keys.catalogs, &mut snapshot.catalogs);
            read_named(
                catalogs,
                org_key,
                Key {
                    org,
                    id: &catalog.id,
                },
                map,
                stored,
            )?;
        }
        let (map, stored) = (&mut keys.users, &mut snapshot.users);
        read_named(
            users,
            org_key,
            Key {
                org,
                id: &e.user.id,
            },
            map,
            stored,
        )?;
    }
    Ok((snapshot, keys))
}

/// The stored facts of those of `events`' ids that are stored: one indexed
/// probe per distinct id, in id order so that consecutive probes descend
/// through pages just visited.
fn stored_facts<'a>(
    tx: &Transaction<'_>,
    events: impl Iterator<Item = &'a Event>,
) -> Result<HashMap<EventId, Option<Fingerprint>>, StoreError> {
    let mut ids: Vec<EventId> = events.map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut stmt = tx.prepare_cached("SELECT facts FROM event_ids WHERE id = ?1")?;
    let mut stored = HashMap::new();
    for id in ids {
        let facts = stmt
            .query_row([&id.as_uuid().as_bytes()[..]], |r| {
                Ok(r.get_ref(0)?
                    .as_blob_or_null()?
                    .and_then(Fingerprint::from_bytes))
            })
            .optional()?;
        if let Some(facts) = facts {
            stored.insert(id, facts);
        }
    }
    Ok(stored)
}

/// Reads one catalog or user, unless it was read before.
fn read_named<T: AsRef<str>>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    org_key: i64,
    key: Key<'_, T>,
    keys: &mut ByOrg<i64>,
    snapshot: &mut ByOrg<StoredName>,
) -> Result<(), StoreError> {
    let id = key.id.as_ref();
    if keys.get(key.org, id).is_some() {
        return Ok(());
    }
    let row = stmt
        .query_row(params![org_key, id], |r| {
            let stored = StoredName {
                name: r.get(1)?,
                name_ts: Timestamp::from_millis(r.get(2)?),
            };
            Ok((r.get::<_, i64>(0)?, stored))
        })
        .optional()?;
    if let Some((surrogate, stored)) = row {
        keys.insert(key.org.clone(), id.to_owned(), surrogate);
        snapshot.insert(key.org.clone(), id.to_owned(), stored);
    }
    Ok(())
}

// ---- write ------------------------------------------------------------------

/// Carries out `plan`, creating keys as it goes.
fn write(tx: &Transaction<'_>, plan: &Plan<'_>, keys: &mut Keys) -> Result<(), StoreError> {
    if plan.is_empty() {
        return Ok(());
    }
    for org in &plan.orgs {
        if keys.find_org(org).is_none() {
            let key = tx
                .prepare_cached("INSERT INTO organizations (org_id) VALUES (?1) RETURNING org_key")?
                .query_row(params![org.as_str()], |r| r.get(0))?;
            keys.add_org((*org).clone(), key);
        }
    }
    keys.categories = CATEGORIES.resolve(tx, keys, &plan.categories)?;
    keys.manufacturers = MANUFACTURERS.resolve(tx, keys, &plan.manufacturers)?;
    keys.applications = APPLICATIONS.resolve(tx, keys, &plan.applications)?;
    keys.projects = PROJECTS.resolve(tx, keys, &plan.projects)?;
    let mut relabel = BTreeSet::new();
    let mut members =
        tx.prepare_cached("SELECT component_key FROM component_catalogs WHERE catalog_key = ?1")?;
    let mut catalogs = std::mem::take(&mut keys.catalogs);
    for catalog in CATALOGS.write(tx, &plan.catalogs, keys, &mut catalogs)? {
        for member in members.query_map(params![catalog], |r| r.get::<_, i64>(0))? {
            relabel.insert(member?);
        }
    }
    keys.catalogs = catalogs;
    let mut users = std::mem::take(&mut keys.users);
    USERS.write(tx, &plan.users, keys, &mut users)?;
    keys.users = users;
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
    super::append::append(tx, &plan.new_events, keys)
}

// Row-at-a-time statements for the dimension tables named in `keys`.
impl NameDimension {
    /// The keys of `wanted`, created where missing.
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

impl NamedDimension {
    /// Reads `(key, name, name_ts)` by organization key and external id.
    fn read_statement<'c>(
        &self,
        tx: &'c Transaction<'_>,
    ) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
        let Self { table, key, name } = self;
        Ok(tx.prepare_cached(&format!(
            "SELECT {key}, {name}, name_ts FROM {table} WHERE org_key = ?1 AND external_id = ?2"
        ))?)
    }

    /// Inserts and updates the rows `changes` asks for; `known` holds the
    /// keys read and gains those created. Returns the keys of renamed rows.
    fn write<T: AsRef<str>>(
        &self,
        tx: &Transaction<'_>,
        changes: &BTreeMap<Key<'_, T>, Change<NameVersion<'_>>>,
        keys: &Keys,
        known: &mut ByOrg<i64>,
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
                    let args = params![
                        keys.org(k.org)?,
                        k.id.as_ref(),
                        v.name.as_str(),
                        v.ts.millis()
                    ];
                    let new_key = insert.query_row(args, |r| r.get(0))?;
                    known.insert(k.org.clone(), k.id.as_ref().to_owned(), new_key);
                }
                Change::Update(v) => {
                    let stored = key_of(known, *k, table)?;
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
    relabel: &mut BTreeSet<i64>,
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO components (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING component_key",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE components SET display_name = ?2, category_key = ?3, manufacturer_key = ?4, catalog_ids = ?5, name_ts = ?6
         WHERE component_key = ?1",
    )?;
    let mut clear = tx.prepare_cached("DELETE FROM component_catalogs WHERE component_key = ?1")?;
    let mut join = tx.prepare_cached(
        "INSERT INTO component_catalogs (component_key, catalog_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for (k, change) in &plan.components {
        let Some(v) = change.version() else { continue };
        let r = keys.component(*k, v)?;
        let key = if let Change::Insert(_) = change {
            let args = params![
                r.org,
                k.id.as_str(),
                r.name,
                r.category,
                r.manufacturer,
                r.catalog_ids,
                r.ts
            ];
            let key = insert.query_row(args, |row| row.get(0))?;
            keys.components.insert(k.org.clone(), k.id.to_string(), key);
            key
        } else {
            let key = key_of(&keys.components, *k, "component")?;
            update.execute(params![
                key,
                r.name,
                r.category,
                r.manufacturer,
                r.catalog_ids,
                r.ts
            ])?;
            key
        };
        if v.membership_changed {
            clear.execute(params![key])?;
            for catalog in keys.membership(*k, v)? {
                join.execute(params![key, catalog])?;
            }
            relabel.insert(key);
        }
    }
    Ok(())
}
