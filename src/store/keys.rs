//! What the read step looks up ([`Lookups`]), the surrogate keys an
//! ingestion transaction has read or created, by natural key, and the
//! plan's rows resolved to them. Shared by both backends, so a row is
//! looked up and resolved one way; a missing key is a bug in a read or
//! write step, never bad input.
//!
//! The dimension tables those keys come from are named here too, once:
//! each backend builds its own statements from the same table, key column
//! and name column, so the two schemas cannot drift apart in one of them.

use super::decide::{ByOrg, ComponentVersion, FastMap, Fingerprinted, InOrg, Key, NameVersion};
use super::decide::{FastHash, Occurrences, Verdict, Writes};
use super::facts::Fingerprint;
use super::StoreError;
use crate::domain::{Catalog, OrgId};
use std::collections::HashSet;
use uuid::Uuid;

/// A store result.
type StoreResult<T> = Result<T, StoreError>;

/// A dimension table: its surrogate key column and the column of its
/// value. For a name-only dimension that is the natural value, unique per
/// organization and never renamed (categories, manufacturers, applications,
/// projects); for a renamable one, the changing name of a row keyed by
/// `external_id` and versioned by `name_ts` (catalogs, users).
#[derive(Debug, Clone, Copy)]
pub struct Dimension {
    /// Table name.
    pub table: &'static str,
    /// Surrogate key column.
    pub key: &'static str,
    /// The value (name-only) or name (renamable) column.
    pub column: &'static str,
}

impl Dimension {
    const fn new(table: &'static str, key: &'static str, column: &'static str) -> Self {
        Self { table, key, column }
    }
}

/// Component categories.
pub const CATEGORIES: Dimension = Dimension::new("categories", "category_key", "name");
/// Component manufacturers.
pub const MANUFACTURERS: Dimension = Dimension::new("manufacturers", "manufacturer_key", "name");
/// Applications events come from.
pub const APPLICATIONS: Dimension = Dimension::new("applications", "application_key", "name");
/// Projects, by external id.
pub const PROJECTS: Dimension = Dimension::new("projects", "project_key", "external_id");
/// Catalogs, renamed by display name.
pub const CATALOGS: Dimension = Dimension::new("catalogs", "catalog_key", "display_name");
/// Users, renamed by email.
pub const USERS: Dimension = Dimension::new("users", "user_key", "email");

/// Organization keys, by organization id.
pub type Orgs = FastMap<OrgId, i64>;

/// The key of an organization the transaction has read or created.
pub fn org_key(orgs: &Orgs, id: &OrgId) -> StoreResult<i64> {
    let found = orgs.get(id).copied();
    found.ok_or_else(|| StoreError::Corrupt(format!("organization {id:?} unresolved")))
}

impl ByOrg<i64> {
    /// The surrogate key of `key`, read or created by the transaction.
    pub fn key(&self, key: Key<'_>) -> Result<i64, StoreError> {
        let found = self.get(key).copied();
        let why = || format!("the key of {key:?} was not resolved in ingestion");
        found.ok_or_else(|| StoreError::Corrupt(why()))
    }

    /// The rows of the catalog or user versions in `changes`; `self`
    /// holds the keys of the stored rows (`Keys::catalogs` or `users`).
    pub fn names<'a>(&self, changes: &'a Writes<'a, NameVersion<'a>>) -> Vec<NameRow<'a>> {
        let row = |(&natural, v): (&Key<'a>, &'a NameVersion<'a>)| NameRow {
            natural,
            stored: self.get(natural).copied(),
            name: v.name.as_str(),
            ts: v.ts.millis(),
            renamed: v.renamed,
        };
        changes.iter().map(row).collect()
    }

    /// [`ByOrg::key`] of an optional value.
    fn optional(&self, org: i64, id: Option<&impl AsRef<str>>) -> StoreResult<Option<i64>> {
        id.map(|id| self.key(Key::new(org, id))).transpose()
    }
}

/// The first occurrence of an event id in a group, claimed with its facts
/// by the read step: an id that goes in was not stored, so it is new.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The event id.
    pub id: Uuid,
    /// Its organization's key.
    pub org: i64,
    /// Its facts.
    pub facts: Fingerprint,
}

/// A set hashed with [`FastHash`], for the rows the read step looks up
/// (each event visits several; the statements order them where it counts).
pub type Set<K> = HashSet<K, FastHash>;

/// What the read step looks up for a group of events, the same on every
/// backend: the rows its events name and the ids it claims.
#[derive(Debug, Default)]
pub struct Lookups<'a> {
    /// Components named.
    pub components: Set<Key<'a>>,
    /// Catalogs named.
    pub catalogs: Set<Key<'a>>,
    /// Users named.
    pub users: Set<Key<'a>>,
    /// The first occurrence of each id, sorted by id, so that concurrent
    /// transactions claim in one order (and SQLite's inserts descend
    /// through pages just visited).
    pub claims: Vec<Claim>,
}

impl<'a> Lookups<'a> {
    /// What to look up for `events`.
    pub fn of(events: impl IntoIterator<Item = Fingerprinted<'a>>) -> Self {
        let mut first = Occurrences::default();
        let mut out = Self::default();
        for new in events {
            let Fingerprinted { event: e, org, .. } = new;
            let natural = |id| InOrg { org, id };
            out.components.insert(natural(e.component.id.as_str()));
            let catalogs = e.component.catalogs.iter();
            out.catalogs
                .extend(catalogs.map(|c| natural(c.id.as_str())));
            out.users.insert(natural(e.user.id.as_str()));
            if first.classify(e.id, new.facts) == Verdict::New {
                let (id, facts) = (*e.id.as_uuid(), new.facts);
                out.claims.push(Claim { id, org, facts });
            }
        }
        out.claims.sort_unstable_by_key(|c| c.id);
        out
    }
}

/// Every key one ingestion transaction knows.
#[derive(Debug, Default)]
pub struct Keys {
    /// Organizations.
    pub orgs: Orgs,
    /// Components.
    pub components: ByOrg<i64>,
    /// Catalogs.
    pub catalogs: ByOrg<i64>,
    /// Users.
    pub users: ByOrg<i64>,
    /// Categories.
    pub categories: ByOrg<i64>,
    /// Manufacturers.
    pub manufacturers: ByOrg<i64>,
    /// Applications.
    pub applications: ByOrg<i64>,
    /// Projects.
    pub projects: ByOrg<i64>,
}

/// A new event's row, resolved to keys.
#[derive(Debug, Clone, Copy)]
pub struct EventRow {
    /// Organization key.
    pub org: i64,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// The event id.
    pub id: Uuid,
    /// Stored kind code.
    pub kind: i16,
    /// Component key.
    pub component: i64,
    /// User key.
    pub user: i64,
    /// Application key.
    pub application: Option<i64>,
    /// Project key.
    pub project: Option<i64>,
}

/// A catalog or user version to write, resolved to keys.
#[derive(Debug, Clone, Copy)]
pub struct NameRow<'a> {
    /// Its natural key.
    pub natural: Key<'a>,
    /// Surrogate key of the row to update; `None`: a new row.
    pub stored: Option<i64>,
    /// The name (or email).
    pub name: &'a str,
    /// Milliseconds of the event that set it.
    pub ts: i64,
    /// Whether the visible name changed (a renamed catalog's components
    /// need new labels).
    pub renamed: bool,
}

/// A component version to write, resolved to keys.
#[derive(Debug, Clone)]
pub struct ComponentRow<'a> {
    /// Its natural key.
    pub natural: Key<'a>,
    /// Surrogate key of the row to update; `None`: a new row.
    pub stored: Option<i64>,
    /// Display name.
    pub name: &'a str,
    /// Category key.
    pub category: Option<i64>,
    /// Manufacturer key.
    pub manufacturer: Option<i64>,
    /// Catalog signature.
    pub catalog_ids: &'a str,
    /// Milliseconds of the event that set it.
    pub ts: i64,
    /// Its catalogs' keys when its membership is (re)written.
    pub membership: Option<Vec<i64>>,
}

impl Keys {
    /// The rows of the new events.
    pub fn events(&self, new_events: &[Fingerprinted<'_>]) -> StoreResult<Vec<EventRow>> {
        let row = |&Fingerprinted { event: e, org, .. }: &Fingerprinted<'_>| {
            Ok(EventRow {
                org,
                ts: e.timestamp.millis(),
                id: *e.id.as_uuid(),
                kind: e.kind.code(),
                component: self.components.key(Key::new(org, &e.component.id))?,
                user: self.users.key(Key::new(org, &e.user.id))?,
                application: self.applications.optional(org, e.application.as_ref())?,
                project: self.projects.optional(org, e.project_id.as_ref())?,
            })
        };
        new_events.iter().map(row).collect()
    }

    /// The rows of the component versions in `changes`, once their
    /// categories, manufacturers and catalogs have keys.
    pub fn components<'a>(
        &self,
        changes: &'a Writes<'a, ComponentVersion<'a>>,
    ) -> Result<Vec<ComponentRow<'a>>, StoreError> {
        let mut rows = Vec::with_capacity(changes.len());
        for (&natural, v) in changes {
            let org = natural.org;
            let c = v.component;
            let catalog = |k: &'a Catalog| self.catalogs.key(Key::new(org, &k.id));
            let catalogs = || c.catalogs.iter().map(catalog).collect();
            let membership = v.membership_changed.then(catalogs);
            rows.push(ComponentRow {
                natural,
                stored: self.components.get(natural).copied(),
                name: c.display_name.as_str(),
                category: self.categories.optional(org, c.category.as_ref())?,
                manufacturer: self.manufacturers.optional(org, c.manufacturer.as_ref())?,
                catalog_ids: &v.catalog_ids,
                ts: v.ts.millis(),
                membership: membership.transpose()?,
            });
        }
        Ok(rows)
    }
}
