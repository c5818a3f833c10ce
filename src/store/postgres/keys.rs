//! Surrogate keys of the rows an ingestion transaction has read or
//! created, by natural key, built from the rows its statements return:
//! `(org_key, natural key, surrogate key, …)`.

use crate::domain::OrgId;
use crate::store::decide::{ByOrg, Key};
use crate::store::StoreError;
use std::collections::HashMap;
use tokio_postgres::Row;

/// Organization keys both ways: rows come back with `org_key`, plans speak
/// of [`OrgId`]s.
#[derive(Default)]
pub struct OrgKeys {
    keys: HashMap<OrgId, i64>,
    ids: HashMap<i64, OrgId>,
}

impl OrgKeys {
    /// Builds the map from `(org_id, org_key)` rows.
    pub fn from_rows(rows: &[Row]) -> Result<Self, StoreError> {
        let mut out = Self::default();
        for row in rows {
            let id = OrgId::parse(row.try_get::<_, String>(0)?)
                .map_err(|e| StoreError::Corrupt(format!("stored organization id: {e}")))?;
            let key: i64 = row.try_get(1)?;
            out.ids.insert(key, id.clone());
            out.keys.insert(id, key);
        }
        Ok(out)
    }

    /// The key of an organization the transaction has created or read.
    pub fn key(&self, org: &OrgId) -> Result<i64, StoreError> {
        self.keys
            .get(org)
            .copied()
            .ok_or_else(|| missing("organization"))
    }

    /// The organization of a key the transaction has read.
    pub fn id(&self, key: i64) -> Result<&OrgId, StoreError> {
        self.ids.get(&key).ok_or_else(|| missing("organization"))
    }

    /// Records `(org_key, natural key, surrogate key)` rows into `map`.
    pub fn collect(&self, rows: &[Row], map: &mut ByOrg<i64>) -> Result<(), StoreError> {
        for row in rows {
            map.insert(
                self.id(row.try_get(0)?)?.clone(),
                row.try_get(1)?,
                row.try_get(2)?,
            );
        }
        Ok(())
    }
}

/// The surrogate key of `key` in `map`; missing means a bug in the
/// statements, not bad input.
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
