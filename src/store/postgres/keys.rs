//! Lookup tables built from the rows the ingestion statements return,
//! keyed the way those rows come back: organization key, then the
//! dimension's natural key (name or external id).

use crate::domain::OrgId;
use crate::store::StoreError;
use std::collections::HashMap;
use tokio_postgres::Row;

/// Values per organization key and natural key.
pub struct ByOrg<V>(HashMap<i64, HashMap<String, V>>);

impl<V> Default for ByOrg<V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<V> ByOrg<V> {
    /// Records `value` for (`org`, `natural`).
    pub fn insert(&mut self, org: i64, natural: String, value: V) {
        self.0.entry(org).or_default().insert(natural, value);
    }

    /// The value of (`org`, `natural`), if present.
    pub fn get(&self, org: i64, natural: &str) -> Option<&V> {
        self.0.get(&org)?.get(natural)
    }
}

impl ByOrg<i64> {
    /// Builds a key map from `(org_key, natural key, surrogate key)` rows.
    pub fn from_rows(rows: &[Row]) -> Result<Self, tokio_postgres::Error> {
        let mut map = Self::default();
        for row in rows {
            map.insert(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        }
        Ok(map)
    }

    /// The surrogate key of a row the transaction has created or read;
    /// missing means a bug in the statements, not bad input.
    pub fn key(&self, org: i64, natural: &str, what: &str) -> Result<i64, StoreError> {
        self.get(org, natural).copied().ok_or_else(|| missing(what))
    }
}

impl ByOrg<()> {
    /// A set of `(org_key, natural key)` rows, as `RETURNING` gives them.
    pub fn set_from_rows(rows: &[Row]) -> Result<Self, tokio_postgres::Error> {
        let mut set = Self::default();
        for row in rows {
            set.insert(row.try_get(0)?, row.try_get(1)?, ());
        }
        Ok(set)
    }

    /// Whether (`org`, `natural`) is in the set.
    pub fn contains(&self, org: i64, natural: &str) -> bool {
        self.get(org, natural).is_some()
    }
}

/// Organization keys by organization id.
pub struct OrgKeys(HashMap<String, i64>);

impl OrgKeys {
    /// Builds the map from `(org_id, org_key)` rows.
    pub fn from_rows(rows: &[Row]) -> Result<Self, tokio_postgres::Error> {
        let mut map = HashMap::with_capacity(rows.len());
        for row in rows {
            map.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(Self(map))
    }

    /// The key of an organization the transaction has created or read.
    pub fn key(&self, org: &OrgId) -> Result<i64, StoreError> {
        self.0
            .get(org.as_str())
            .copied()
            .ok_or_else(|| missing("organization"))
    }
}

fn missing(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} key was not resolved during ingestion"))
}
