//! The SQLite ingestion transaction: dimensions first, then the narrow rows.

use crate::domain::{Event, Name, OpaqueId, OrgId, Timestamp, UserId};
use crate::store::batch::{catalog_signature, BatchPlan};
use crate::store::{IngestOutcome, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;

/// A component row as stored: key, name, category, manufacturer, catalog
/// signature, name timestamp.
type StoredComponent = (i64, String, Option<i64>, Option<i64>, String, i64);

/// Surrogate keys resolved for one batch.
#[derive(Default)]
struct Keys<'a> {
    orgs: HashMap<&'a OrgId, i64>,
    components: HashMap<(&'a OrgId, &'a OpaqueId), i64>,
    catalogs: HashMap<(&'a OrgId, &'a OpaqueId), i64>,
    users: HashMap<(&'a OrgId, &'a UserId), i64>,
    categories: HashMap<(&'a OrgId, &'a Name), i64>,
    manufacturers: HashMap<(&'a OrgId, &'a Name), i64>,
    applications: HashMap<(&'a OrgId, &'a Name), i64>,
    projects: HashMap<(&'a OrgId, &'a OpaqueId), i64>,
}

impl Keys<'_> {
    fn org(&self, org: &OrgId) -> Result<i64, StoreError> {
        self.orgs
            .get(org)
            .copied()
            .ok_or_else(|| missing("organization"))
    }
}

fn missing(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} key was not resolved during ingestion"))
}

/// Events inserted per statement: multi-row inserts spend far less time in
/// statement overhead than one row at a time (8 values a row, well under
/// SQLite's limit of 32,766 variables).
const ROWS_PER_INSERT: usize = 128;

/// `INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING` for `rows` rows; rows
/// whose id is already stored (or repeated earlier in the statement) are
/// skipped, so the statement's change count is the number accepted.
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
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// Stores `batches` in one immediate transaction and commits it (durably,
/// given `synchronous=FULL`) before returning each batch's outcome. Batches
/// are applied in order, so an id repeated in a later batch is its duplicate.
pub fn ingest(
    conn: &mut Connection,
    batches: &[Vec<Event>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Erased users first, inside the write lock (see `privacy`).
    let batches = &*super::privacy::pseudonymize(&tx, batches)?;
    let plan = BatchPlan::new(batches.iter().flatten());
    let mut keys = Keys::default();

    for org in &plan.orgs {
        keys.orgs.insert(org, org_key(&tx, org)?);
    }
    let named = [
        (
            "categories",
            "category_key",
            &plan.categories,
            &mut keys.categories,
        ),
        (
            "manufacturers",
            "manufacturer_key",
            &plan.manufacturers,
            &mut keys.manufacturers,
        ),
        (
            "applications",
            "application_key",
            &plan.applications,
            &mut keys.applications,
        ),
    ];
    for (table, key_col, wanted, into) in named {
        for &(org, name) in wanted {
            let org_key = *keys.orgs.get(org).ok_or_else(|| missing("organization"))?;
            into.insert(
                (org, name),
                name_key(&tx, table, key_col, "name", org_key, name.as_str())?,
            );
        }
    }
    for &(org, project) in &plan.projects {
        let org_key = keys.org(org)?;
        keys.projects.insert(
            (org, project),
            name_key(
                &tx,
                "projects",
                "project_key",
                "external_id",
                org_key,
                project.as_str(),
            )?,
        );
    }

    let mut relabel: BTreeSet<i64> = BTreeSet::new();
    for (&(org, id), &(ts, name)) in &plan.catalogs {
        let (key, renamed) = upsert_catalog(&tx, keys.org(org)?, id, name, ts)?;
        keys.catalogs.insert((org, id), key);
        if renamed {
            let mut stmt = tx.prepare_cached(
                "SELECT component_key FROM component_catalogs WHERE catalog_key = ?1",
            )?;
            for k in stmt.query_map(params![key], |r| r.get::<_, i64>(0))? {
                relabel.insert(k?);
            }
        }
    }
    for (&(org, id), &(ts, email)) in &plan.users {
        keys.users
            .insert((org, id), upsert_user(&tx, keys.org(org)?, id, email, ts)?);
    }
    for (&(org, id), &(ts, component)) in &plan.components {
        let org_key = keys.org(org)?;
        let category = component
            .category
            .as_ref()
            .map(|c| {
                keys.categories
                    .get(&(org, c))
                    .copied()
                    .ok_or_else(|| missing("category"))
            })
            .transpose()?;
        let manufacturer = component
            .manufacturer
            .as_ref()
            .map(|m| {
                keys.manufacturers
                    .get(&(org, m))
                    .copied()
                    .ok_or_else(|| missing("manufacturer"))
            })
            .transpose()?;
        let signature = catalog_signature(component);
        let stored: Option<StoredComponent> = tx
            .prepare_cached(
                "SELECT component_key, display_name, category_key, manufacturer_key, catalog_ids, name_ts
                 FROM components WHERE org_key = ?1 AND external_id = ?2",
            )?
            .query_row(params![org_key, id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .optional()?;
        let (key, membership_changed) = match stored {
            None => {
                let key: i64 = tx.prepare_cached(
                    "INSERT INTO components (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING component_key",
                )?
                .query_row(params![org_key, id.as_str(), component.display_name.as_str(), category, manufacturer, signature, ts.millis()], |r| r.get(0))?;
                (key, true)
            }
            Some((key, _, _, _, _, stored_ts)) if ts.millis() < stored_ts => (key, false),
            Some((key, name, cat, man, ids, _)) => {
                let changed = name != component.display_name.as_str()
                    || cat != category
                    || man != manufacturer
                    || ids != signature;
                if changed {
                    tx.prepare_cached(
                        "UPDATE components SET display_name = ?2, category_key = ?3, manufacturer_key = ?4, catalog_ids = ?5, name_ts = ?6
                         WHERE component_key = ?1",
                    )?
                    .execute(params![key, component.display_name.as_str(), category, manufacturer, signature, ts.millis()])?;
                } else {
                    tx.prepare_cached(
                        "UPDATE components SET name_ts = ?2 WHERE component_key = ?1",
                    )?
                    .execute(params![key, ts.millis()])?;
                }
                (key, ids != signature)
            }
        };
        if membership_changed {
            tx.prepare_cached("DELETE FROM component_catalogs WHERE component_key = ?1")?
                .execute(params![key])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO component_catalogs (component_key, catalog_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for c in &component.catalogs {
                let catalog_key = keys
                    .catalogs
                    .get(&(org, &c.id))
                    .copied()
                    .ok_or_else(|| missing("catalog"))?;
                insert.execute(params![key, catalog_key])?;
            }
            relabel.insert(key);
        }
        keys.components.insert((org, id), key);
    }
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE components SET catalogs_label = (
                 SELECT group_concat(c.display_name, '; ' ORDER BY c.display_name)
                 FROM component_catalogs cc JOIN catalogs c ON c.catalog_key = cc.catalog_key
                 WHERE cc.component_key = ?1)
             WHERE component_key = ?1",
        )?;
        for key in relabel {
            stmt.execute(params![key])?;
        }
    }

    let mut outcomes = Vec::with_capacity(batches.len());
    for events in batches {
        let mut accepted = 0u64;
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 8);
            for e in chunk {
                let org = &e.organization;
                let component = keys
                    .components
                    .get(&(org, &e.component.id))
                    .copied()
                    .ok_or_else(|| missing("component"))?;
                let user = keys
                    .users
                    .get(&(org, &e.user.id))
                    .copied()
                    .ok_or_else(|| missing("user"))?;
                let application = e
                    .application
                    .as_ref()
                    .and_then(|a| keys.applications.get(&(org, a)).copied());
                let project = e
                    .project_id
                    .as_ref()
                    .and_then(|p| keys.projects.get(&(org, p)).copied());
                values.extend([
                    keys.org(org)?.into(),
                    e.timestamp.millis().into(),
                    e.id.as_uuid().as_bytes().to_vec().into(),
                    i64::from(e.kind.code()).into(),
                    component.into(),
                    user.into(),
                    application.into(),
                    project.into(),
                ]);
            }
            let mut insert = tx.prepare_cached(&insert_events_sql(chunk.len()))?;
            accepted += insert.execute(rusqlite::params_from_iter(values))? as u64;
        }
        outcomes.push(IngestOutcome {
            accepted,
            duplicates: events.len() as u64 - accepted,
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

fn org_key(tx: &Transaction<'_>, org: &OrgId) -> Result<i64, StoreError> {
    name_key_in(
        tx,
        "SELECT org_key FROM organizations WHERE org_id = ?1",
        "INSERT INTO organizations (org_id) VALUES (?1) RETURNING org_key",
        params![org.as_str()],
    )
}

/// Get-or-create for the name-only dimensions.
fn name_key(
    tx: &Transaction<'_>,
    table: &str,
    key_col: &str,
    name_col: &str,
    org_key: i64,
    value: &str,
) -> Result<i64, StoreError> {
    let select = format!("SELECT {key_col} FROM {table} WHERE org_key = ?1 AND {name_col} = ?2");
    let insert =
        format!("INSERT INTO {table} (org_key, {name_col}) VALUES (?1, ?2) RETURNING {key_col}");
    name_key_in(tx, &select, &insert, params![org_key, value])
}

fn name_key_in(
    tx: &Transaction<'_>,
    select: &str,
    insert: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<i64, StoreError> {
    if let Some(key) = tx
        .prepare_cached(select)?
        .query_row(args, |r| r.get(0))
        .optional()?
    {
        return Ok(key);
    }
    Ok(tx.prepare_cached(insert)?.query_row(args, |r| r.get(0))?)
}

/// Inserts or renames a catalog; returns its key and whether its visible
/// name changed (so the labels of its components must be rebuilt).
fn upsert_catalog(
    tx: &Transaction<'_>,
    org_key: i64,
    id: &OpaqueId,
    name: &Name,
    ts: Timestamp,
) -> Result<(i64, bool), StoreError> {
    let stored: Option<(i64, String, i64)> = tx
        .prepare_cached("SELECT catalog_key, display_name, name_ts FROM catalogs WHERE org_key = ?1 AND external_id = ?2")?
        .query_row(params![org_key, id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match stored {
        None => {
            let key = tx
                .prepare_cached("INSERT INTO catalogs (org_key, external_id, display_name, name_ts) VALUES (?1, ?2, ?3, ?4) RETURNING catalog_key")?
                .query_row(params![org_key, id.as_str(), name.as_str(), ts.millis()], |r| r.get(0))?;
            Ok((key, false))
        }
        Some((key, _, stored_ts)) if ts.millis() < stored_ts => Ok((key, false)),
        Some((key, stored_name, _)) => {
            tx.prepare_cached(
                "UPDATE catalogs SET display_name = ?2, name_ts = ?3 WHERE catalog_key = ?1",
            )?
            .execute(params![key, name.as_str(), ts.millis()])?;
            Ok((key, stored_name != name.as_str()))
        }
    }
}

fn upsert_user(
    tx: &Transaction<'_>,
    org_key: i64,
    id: &UserId,
    email: &Name,
    ts: Timestamp,
) -> Result<i64, StoreError> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO users (org_key, external_id, email, name_ts) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (org_key, external_id) DO UPDATE SET email = excluded.email, name_ts = excluded.name_ts
             WHERE excluded.name_ts >= users.name_ts",
        )?
        .execute(params![org_key, id.as_str(), email.as_str(), ts.millis()])
        .and_then(|_| {
            tx.prepare_cached("SELECT user_key FROM users WHERE org_key = ?1 AND external_id = ?2")?
                .query_row(params![org_key, id.as_str()], |r| r.get(0))
        })?)
}
