//! The statements of the ingestion transaction. Every one takes whole
//! columns as arrays and works through `UNNEST`, so a batch costs a fixed
//! number of round trips whatever its size.
//!
//! Locking order is what keeps concurrent replicas from deadlocking: every
//! statement that inserts or locks dimension rows visits them sorted by
//! (org_key, natural key in byte order), and the transaction always runs
//! the statements in the same order.

use deadpool_postgres::Transaction;
use tokio_postgres::{Error, Statement};

const ORG_INSERT: &str = "
INSERT INTO organizations (org_id)
SELECT v FROM UNNEST($1::text[]) AS u(v) ORDER BY v COLLATE \"C\"
ON CONFLICT DO NOTHING";

const ORG_SELECT: &str = "
SELECT org_id, org_key FROM organizations WHERE org_id = ANY($1::text[])";

/// A dimension that is nothing but a name (or an external id) per
/// organization: get-or-create by value, never renamed.
struct NameDimension {
    table: &'static str,
    key: &'static str,
    value: &'static str,
}

const CATEGORIES: NameDimension = NameDimension {
    table: "categories",
    key: "category_key",
    value: "name",
};
const MANUFACTURERS: NameDimension = NameDimension {
    table: "manufacturers",
    key: "manufacturer_key",
    value: "name",
};
const APPLICATIONS: NameDimension = NameDimension {
    table: "applications",
    key: "application_key",
    value: "name",
};
const PROJECTS: NameDimension = NameDimension {
    table: "projects",
    key: "project_key",
    value: "external_id",
};

impl NameDimension {
    fn insert(&self) -> String {
        let Self { table, value, .. } = self;
        format!(
            "INSERT INTO {table} (org_key, {value})
             SELECT o, v FROM UNNEST($1::bigint[], $2::text[]) AS u(o, v) ORDER BY o, v COLLATE \"C\"
             ON CONFLICT DO NOTHING"
        )
    }

    async fn prepare(&self, tx: &Transaction<'_>) -> Result<(Statement, Statement), Error> {
        Ok((
            tx.prepare_cached(&self.insert()).await?,
            tx.prepare_cached(&self.select()).await?,
        ))
    }

    fn select(&self) -> String {
        let Self { table, key, value } = self;
        format!(
            "SELECT t.org_key, t.{value}, t.{key}
             FROM {table} t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, v)
               ON t.org_key = u.o AND t.{value} = u.v"
        )
    }
}

const CATALOG_INSERT: &str = "
INSERT INTO catalogs (org_key, external_id, display_name, name_ts)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS u(o, x, n, ts)
ORDER BY o, x COLLATE \"C\"
ON CONFLICT DO NOTHING
RETURNING org_key, external_id";

/// Reads the current version of the batch's catalogs and locks them, so a
/// rename and a membership change touching one catalog never interleave.
const CATALOG_LOCK: &str = "
SELECT t.org_key, t.external_id, t.catalog_key, t.display_name, t.name_ts
FROM catalogs t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, x)
  ON t.org_key = u.o AND t.external_id = u.x
ORDER BY t.org_key, t.external_id COLLATE \"C\"
FOR UPDATE OF t";

const CATALOG_UPDATE: &str = "
UPDATE catalogs t SET display_name = u.n, name_ts = u.ts
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[]) AS u(o, k, n, ts)
WHERE t.org_key = u.o AND t.catalog_key = u.k";

/// Users have no dependants, so the newest-wins rule fits in the upsert.
const USER_UPSERT: &str = "
INSERT INTO users AS t (org_key, external_id, email, name_ts)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS u(o, x, e, ts)
ORDER BY o, x COLLATE \"C\"
ON CONFLICT (org_key, external_id) DO UPDATE
SET email = EXCLUDED.email, name_ts = EXCLUDED.name_ts
WHERE EXCLUDED.name_ts > t.name_ts
   OR (EXCLUDED.name_ts = t.name_ts AND EXCLUDED.email <> t.email)";

const USER_SELECT: &str = "
SELECT t.org_key, t.external_id, t.user_key
FROM users t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, x)
  ON t.org_key = u.o AND t.external_id = u.x";

const COMPONENT_INSERT: &str = "
INSERT INTO components
    (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[])
    AS u(o, x, n, c, m, ids, ts)
ORDER BY o, x COLLATE \"C\"
ON CONFLICT DO NOTHING
RETURNING org_key, external_id";

const COMPONENT_LOCK: &str = "
SELECT t.org_key, t.external_id, t.component_key, t.display_name, t.category_key,
       t.manufacturer_key, t.catalog_ids, t.name_ts
FROM components t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, x)
  ON t.org_key = u.o AND t.external_id = u.x
ORDER BY t.org_key, t.external_id COLLATE \"C\"
FOR UPDATE OF t";

const COMPONENT_UPDATE: &str = "
UPDATE components t
SET display_name = u.n, category_key = u.c, manufacturer_key = u.m, catalog_ids = u.ids, name_ts = u.ts
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[])
    AS u(o, k, n, c, m, ids, ts)
WHERE t.org_key = u.o AND t.component_key = u.k";

const MEMBERSHIP_DELETE: &str = "
DELETE FROM component_catalogs t
USING UNNEST($1::bigint[], $2::bigint[]) AS u(o, k)
WHERE t.org_key = u.o AND t.component_key = u.k";

const MEMBERSHIP_INSERT: &str = "
INSERT INTO component_catalogs (org_key, component_key, catalog_key)
SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(o, k, c)
ORDER BY o, k, c
ON CONFLICT DO NOTHING";

/// The components whose label must be rebuilt: those whose membership
/// changed ($1, $2) and those in a renamed catalog ($3, $4).
const RELABEL_TARGETS: &str = "
SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) AS m(o, k)
UNION
SELECT cc.org_key, cc.component_key
FROM component_catalogs cc JOIN UNNEST($3::bigint[], $4::bigint[]) AS r(o, c)
  ON cc.org_key = r.o AND cc.catalog_key = r.c";

/// The labels are computed by the next statement, whose snapshot is taken
/// after these locks are held, so it sees any concurrent membership change.
fn relabel_lock() -> String {
    format!(
        "SELECT 1 FROM components t
         WHERE (t.org_key, t.component_key) IN ({RELABEL_TARGETS})
         ORDER BY t.org_key, t.component_key
         FOR UPDATE OF t"
    )
}

fn relabel() -> String {
    format!(
        "WITH targets (o, k) AS ({RELABEL_TARGETS}),
         labels AS (
             SELECT t.o, t.k,
                    (SELECT string_agg(c.display_name, '; ' ORDER BY c.display_name COLLATE \"C\")
                     FROM component_catalogs cc
                     JOIN catalogs c ON c.org_key = cc.org_key AND c.catalog_key = cc.catalog_key
                     WHERE cc.org_key = t.o AND cc.component_key = t.k) AS label
             FROM targets t)
         UPDATE components t SET catalogs_label = l.label
         FROM labels l
         WHERE t.org_key = l.o AND t.component_key = l.k
           AND t.catalogs_label IS DISTINCT FROM l.label"
    )
}

/// Claims the batch's event ids, all assumed new: the idempotency check,
/// kept apart from `events` so that table can be partitioned by time. A
/// plain insert costs about half of `ON CONFLICT DO NOTHING`, and batches
/// are nearly always all new; if one id is not, this fails with a unique
/// violation, the transaction rolls back to `SAVEPOINT` and uses
/// `EVENT_IDS_INSERT` instead.
const EVENT_IDS_CLAIM: &str = "
INSERT INTO event_ids (org_key, id)
SELECT * FROM UNNEST($1::bigint[], $2::uuid[]) AS u(o, id)
ORDER BY o, id";

const SAVEPOINT: &str = "SAVEPOINT event_ids";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT event_ids";

/// Records the batch's event ids, returning those that were new.
const EVENT_IDS_INSERT: &str = "
INSERT INTO event_ids (org_key, id)
SELECT * FROM UNNEST($1::bigint[], $2::uuid[]) AS u(o, id)
ORDER BY o, id
ON CONFLICT DO NOTHING
RETURNING org_key, id";

/// Stores the new events (only those whose id `EVENT_IDS_INSERT` returned).
const EVENTS_INSERT: &str = "
INSERT INTO events (org_key, ts, id, kind, component_key, user_key, application_key, project_key)
SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::smallint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::bigint[])";

/// Every statement of the transaction, prepared (from the connection's
/// cache) before any is sent, so that pipelined statements go out in a
/// fixed order.
pub struct Prepared {
    /// Creates missing organizations.
    pub org_insert: Statement,
    /// Resolves organization ids to keys.
    pub org_select: Statement,
    /// Insert and select of categories, manufacturers, applications and
    /// projects, in that order.
    pub names: [(Statement, Statement); 4],
    /// Creates missing catalogs, returning which it created.
    pub catalog_insert: Statement,
    /// Reads and locks the current version of existing catalogs.
    pub catalog_lock: Statement,
    /// Writes winning catalog names.
    pub catalog_update: Statement,
    /// Creates users or applies a newer email.
    pub user_upsert: Statement,
    /// Resolves user ids to keys.
    pub user_select: Statement,
    /// Creates missing components, returning which it created.
    pub component_insert: Statement,
    /// Reads and locks the current version of existing components.
    pub component_lock: Statement,
    /// Writes winning component versions.
    pub component_update: Statement,
    /// Clears the catalog membership of components whose membership changed.
    pub membership_delete: Statement,
    /// Writes their new membership.
    pub membership_insert: Statement,
    /// Locks the components whose catalogs label is rebuilt.
    pub relabel_lock: Statement,
    /// Rebuilds catalogs labels.
    pub relabel: Statement,
    /// Marks where to return if claiming event ids fails.
    pub savepoint: Statement,
    /// Records event ids, failing if any was already stored.
    pub event_ids_claim: Statement,
    /// Returns to the savepoint after a failed claim.
    pub rollback_to_savepoint: Statement,
    /// Records event ids, returning the new ones.
    pub event_ids_insert: Statement,
    /// Stores the new events.
    pub events_insert: Statement,
}

impl Prepared {
    /// Prepares (or takes from the cache) every statement.
    pub async fn new(tx: &Transaction<'_>) -> Result<Self, Error> {
        Ok(Self {
            org_insert: tx.prepare_cached(ORG_INSERT).await?,
            org_select: tx.prepare_cached(ORG_SELECT).await?,
            names: [
                CATEGORIES.prepare(tx).await?,
                MANUFACTURERS.prepare(tx).await?,
                APPLICATIONS.prepare(tx).await?,
                PROJECTS.prepare(tx).await?,
            ],
            catalog_insert: tx.prepare_cached(CATALOG_INSERT).await?,
            catalog_lock: tx.prepare_cached(CATALOG_LOCK).await?,
            catalog_update: tx.prepare_cached(CATALOG_UPDATE).await?,
            user_upsert: tx.prepare_cached(USER_UPSERT).await?,
            user_select: tx.prepare_cached(USER_SELECT).await?,
            component_insert: tx.prepare_cached(COMPONENT_INSERT).await?,
            component_lock: tx.prepare_cached(COMPONENT_LOCK).await?,
            component_update: tx.prepare_cached(COMPONENT_UPDATE).await?,
            membership_delete: tx.prepare_cached(MEMBERSHIP_DELETE).await?,
            membership_insert: tx.prepare_cached(MEMBERSHIP_INSERT).await?,
            relabel_lock: tx.prepare_cached(&relabel_lock()).await?,
            relabel: tx.prepare_cached(&relabel()).await?,
            savepoint: tx.prepare_cached(SAVEPOINT).await?,
            event_ids_claim: tx.prepare_cached(EVENT_IDS_CLAIM).await?,
            rollback_to_savepoint: tx.prepare_cached(ROLLBACK_TO_SAVEPOINT).await?,
            event_ids_insert: tx.prepare_cached(EVENT_IDS_INSERT).await?,
            events_insert: tx.prepare_cached(EVENTS_INSERT).await?,
        })
    }
}
