//! Surrogate keys an ingestion transaction has read or created, by natural
//! key, and the plan's rows resolved to them. Shared by both backends, so
//! a row is resolved one way; a missing key is a bug in a read or write
//! step, never bad input.
//!
//! The dimension tables those keys come from are named here too, once:
//! each backend builds its own statements from the same table, key column
//! and name column, so the two schemas cannot drift apart in one of them.

use super::decide::{ByOrg, ComponentVersion, Key};
use super::StoreError;
use crate::domain::{Event, OpaqueId, OrgId};
use std::collections::HashMap;
use uuid::Uuid;

/// A dimension that is nothing but a name (or an external id) per
/// organization: get-or-create by value, never renamed.
#[derive(Debug, Clone, Copy)]
pub struct NameDimension {
    /// Table name.
    pub table: &'static str,
    /// Surrogate key column.
    pub key: &'static str,
    /// The natural value column, unique per organization.
    pub value: &'static str,
}

/// Component categories.
pub const CATEGORIES: NameDimension = NameDimension {
    table: "categories",
    key: "category_key",
    value: "name",
};
/// Component manufacturers.
pub const MANUFACTURERS: NameDimension = NameDimension {
    table: "manufacturers",
    key: "manufacturer_key",
    value: "name",
};
/// Applications events come from.
pub const APPLICATIONS: NameDimension = NameDimension {
    table: "applications",
    key: "application_key",
    value: "name",
};
/// Projects, by external id.
pub const PROJECTS: NameDimension = NameDimension {
    table: "projects",
    key: "project_key",
    value: "external_id",
};

/// A dimension whose name changes (catalogs: display name; users: email):
/// keyed by external id, its name versioned by `name_ts`.
#[derive(Debug, Clone, Copy)]
pub struct NamedDimension {
    /// Table name.
    pub table: &'static str,
    /// Surrogate key column.
    pub key: &'static str,
    /// The changing name column.
    pub name: &'static str,
}

/// Catalogs, renamed by display name.
pub const CATALOGS: NamedDimension = NamedDimension {
    table: "catalogs",
    key: "catalog_key",
    name: "display_name",
};
/// Users, renamed by email.
pub const USERS: NamedDimension = NamedDimension {
    table: "users",
    key: "user_key",
    name: "email",
};

/// Every key one ingestion transaction knows.
#[derive(Debug, Default)]
pub struct Keys {
    orgs: HashMap<OrgId, i64>,
    org_ids: HashMap<i64, OrgId>,
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

/// A component version's row, resolved to keys.
#[derive(Debug, Clone, Copy)]
pub struct ComponentRow<'a> {
    /// Organization key.
    pub org: i64,
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
}

/// The key of `key` in `map`.
pub fn key_of<T: AsRef<str>>(
    map: &ByOrg<i64>,
    key: Key<'_, T>,
    what: &str,
) -> Result<i64, StoreError> {
    map.get(key.org, key.id.as_ref())
        .copied()
        .ok_or_else(|| missing(what))
}

fn missing(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} key was not resolved during ingestion"))
}

impl Keys {
    /// Records an organization's key.
    pub fn add_org(&mut self, id: OrgId, key: i64) {
        self.org_ids.insert(key, id.clone());
        self.orgs.insert(id, key);
    }

    /// The key of an organization, if known.
    pub fn find_org(&self, id: &OrgId) -> Option<i64> {
        self.orgs.get(id).copied()
    }

    /// The key of an organization the transaction has read or created.
    pub fn org(&self, id: &OrgId) -> Result<i64, StoreError> {
        self.find_org(id).ok_or_else(|| missing("organization"))
    }

    /// The organization of a key the transaction has read.
    pub fn org_id(&self, key: i64) -> Result<&OrgId, StoreError> {
        self.org_ids
            .get(&key)
            .ok_or_else(|| missing("organization"))
    }

    /// `e`'s row.
    pub fn event(&self, e: &Event) -> Result<EventRow, StoreError> {
        let org = &e.organization;
        Ok(EventRow {
            org: self.org(org)?,
            ts: e.timestamp.millis(),
            id: *e.id.as_uuid(),
            kind: e.kind.code(),
            component: key_of(
                &self.components,
                Key {
                    org,
                    id: &e.component.id,
                },
                "component",
            )?,
            user: key_of(
                &self.users,
                Key {
                    org,
                    id: &e.user.id,
                },
                "user",
            )?,
            application: e
                .application
                .as_ref()
                .map(|id| key_of(&self.applications, Key { org, id }, "application"))
                .transpose()?,
            project: e
                .project_id
                .as_ref()
                .map(|id| key_of(&self.projects, Key { org, id }, "project"))
                .transpose()?,
        })
    }

    /// The row of component `key`'s version `v`.
    pub fn component<'a>(
        &self,
        key: Key<'_, OpaqueId>,
        v: &'a ComponentVersion<'_>,
    ) -> Result<ComponentRow<'a>, StoreError> {
        let org = key.org;
        let c = v.component;
        Ok(ComponentRow {
            org: self.org(org)?,
            name: c.display_name.as_str(),
            category: c
                .category
                .as_ref()
                .map(|id| key_of(&self.categories, Key { org, id }, "category"))
                .transpose()?,
            manufacturer: c
                .manufacturer
                .as_ref()
                .map(|id| key_of(&self.manufacturers, Key { org, id }, "manufacturer"))
                .transpose()?,
            catalog_ids: &v.catalog_ids,
            ts: v.ts.millis(),
        })
    }

    /// The catalog keys of component `key`'s version `v`: its membership.
    pub fn membership(
        &self,
        key: Key<'_, OpaqueId>,
        v: &ComponentVersion<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        v.component
            .catalogs
            .iter()
            .map(|c| {
                key_of(
                    &self.catalogs,
                    Key {
                        org: key.org,
                        id: &c.id,
                    },
                    "catalog",
                )
            })
            .collect()
    }
}
