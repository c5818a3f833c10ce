//! The statements of the ingestion transaction. Every one takes whole
//! columns as arrays and works through `UNNEST`, so a batch costs a fixed
//! number of round trips whatever its size.
//!
//! Locking order is what keeps concurrent replicas from deadlocking: every
//! statement that inserts or locks dimension rows visits them sorted by
//! (org_key, natural key in byte order), and the transaction always runs
//! the statements in the same order.
//!
//! The read statements lock what exists (`FOR UPDATE`); rows that do not
//! exist yet are created by plain `INSERT`s, so a concurrent transaction
//! that created one first makes this one fail with a unique violation and
//! start again from its read, never write over a decision it did not see.

use crate::store::keys::Dimension;
use crate::store::keys::{APPLICATIONS, CATALOGS, CATEGORIES, MANUFACTURERS, PROJECTS, USERS};
use deadpool_postgres::Transaction;
use tokio_postgres::{Error, Statement};

const ORG_INSERT: &str = "INSERT INTO organizations (org_id)
SELECT v FROM UNNEST($1::text[]) AS u(v) ORDER BY v COLLATE \"C\"
ON CONFLICT DO NOTHING";

const ORG_SELECT: &str = "SELECT org_id, org_key FROM organizations WHERE org_id = ANY($1::text[])";

// Set-based statements for the dimension tables named in `keys`.
impl Dimension {
    /// A name-only dimension's statements.
    async fn name_only(&self, tx: &Transaction<'_>) -> Result<NameStatements, Error> {
        let Self { table, key, column } = self;
        let insert = format!(
            "INSERT INTO {table} (org_key, {column})
             SELECT o, v FROM UNNEST($1::bigint[], $2::text[]) AS u(o, v) ORDER BY o, v COLLATE \"C\"
             ON CONFLICT DO NOTHING"
        );
        let select = format!(
            "SELECT t.org_key, t.{column}, t.{key}
             FROM {table} t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, v)
               ON t.org_key = u.o AND t.{column} = u.v"
        );
        Ok(NameStatements {
            insert: tx.prepare_cached(&insert).await?,
            select: tx.prepare_cached(&select).await?,
        })
    }

    /// A catalog's or user's statements: its rows are read and locked
    /// before the decision, inserted or renamed after it.
    async fn renamable(&self, tx: &Transaction<'_>) -> Result<Versioned, Error> {
        let Self { table, key, column } = self;
        // Locked so that, for catalogs, a rename and a membership change
        // touching one catalog never interleave.
        let lock = format!(
            "SELECT t.org_key, t.external_id, t.{key}, t.{column}, t.name_ts
             FROM {table} t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, x)
               ON t.org_key = u.o AND t.external_id = u.x
             ORDER BY t.org_key, t.external_id COLLATE \"C\"
             FOR UPDATE OF t"
        );
        let rows = "UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
                    AS u(o, k, x, n, ts)";
        let insert = format!(
            "INSERT INTO {table} (org_key, external_id, {column}, name_ts)
             SELECT o, x, n, ts FROM {rows} WHERE k IS NULL ORDER BY o, x COLLATE \"C\"
             RETURNING org_key, external_id, {key}"
        );
        let update = format!(
            "UPDATE {table} t SET {column} = u.n, name_ts = u.ts
             FROM {rows} WHERE t.org_key = u.o AND t.{key} = u.k"
        );
        Versioned::prepare(tx, &insert, &lock, &update).await
    }
}

/// Creates components, in the layout of [`Versioned`].
const COMPONENT_INSERT: &str = "INSERT INTO components
    (org_key, external_id, display_name, category_key, manufacturer_key, catalog_ids, name_ts)
SELECT o, x, n, c, m, ids, ts FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
    $5::bigint[], $6::bigint[], $7::text[], $8::bigint[]) AS u(o, k, x, n, c, m, ids, ts)
WHERE k IS NULL ORDER BY o, x COLLATE \"C\"
RETURNING org_key, external_id, component_key";

/// Reads and locks components: `(org_key, external id, key, name, category
/// name, manufacturer name, catalog_ids, name_ts)`.
const COMPONENT_LOCK: &str = "
SELECT t.org_key, t.external_id, t.component_key, t.display_name, cat.name, man.name, t.catalog_ids, t.name_ts
FROM components t JOIN UNNEST($1::bigint[], $2::text[]) AS u(o, x)
  ON t.org_key = u.o AND t.external_id = u.x
LEFT JOIN categories cat ON cat.org_key = t.org_key AND cat.category_key = t.category_key
LEFT JOIN manufacturers man ON man.org_key = t.org_key AND man.manufacturer_key = t.manufacturer_key
ORDER BY t.org_key, t.external_id COLLATE \"C\"
FOR UPDATE OF t";

/// Writes winning component versions, in the layout of [`Versioned`].
const COMPONENT_UPDATE: &str = "UPDATE components t
SET display_name = u.n, category_key = u.c, manufacturer_key = u.m, catalog_ids = u.ids, name_ts = u.ts
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
    $7::text[], $8::bigint[]) AS u(o, k, x, n, c, m, ids, ts)
WHERE t.org_key = u.o AND t.component_key = u.k";

const MEMBERSHIP_DELETE: &str = "DELETE FROM component_catalogs t
USING UNNEST($1::bigint[], $2::bigint[]) AS u(o, k)
WHERE t.org_key = u.o AND t.component_key = u.k";

const MEMBERSHIP_INSERT: &str = "
INSERT INTO component_catalogs (org_key, component_key, catalog_key)
SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(o, k, c)
ORDER BY o, k, c
ON CONFLICT DO NOTHING";

/// The components whose label must be rebuilt: those whose membership
/// changed ($1, $2) and those in a renamed catalog ($3, $4).
const RELABEL_TARGETS: &str = "SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) AS m(o, k)
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

/// Claims the batch's event ids, all assumed new, with their facts: how
/// the read step learns which ids are stored, and the lock that keeps a
/// concurrent batch from storing one of them too. A plain insert costs
/// about half of `ON CONFLICT DO NOTHING`, and batches are nearly always
/// all new; if one id is not, this fails with a unique violation, the
/// transaction rolls back to `SAVEPOINT` and uses `event_ids_insert`.
const EVENT_IDS_CLAIM: &str = "INSERT INTO event_ids (id, org_key, facts)
SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[]) AS u(id, o, f)
ORDER BY id";

/// The facts of stored events.
const EVENT_IDS_SELECT: &str = "SELECT id, facts FROM event_ids WHERE id = ANY($1::uuid[])";

/// Stores the new events (only those whose id was claimed).
const EVENTS_INSERT: &str = "
INSERT INTO events (org_key, ts, id, kind, component_key, user_key, application_key, project_key)
SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::smallint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::bigint[])";

/// Get-or-create of one name-only dimension.
pub struct NameStatements {
    /// Creates the missing values.
    pub insert: Statement,
    /// Resolves values to `(org_key, value, key)` rows.
    pub select: Statement,
}

/// Insert, read-and-lock and update of one versioned dimension (catalogs,
/// users, components). Insert
/// and update take the same columns, one element per version to write:
/// organization key, the stored row's key (`NULL` for a new row), external
/// id, then the version. The insert creates the rows that have no stored
/// key, returning `(org_key, external id, key)`; the update writes over
/// the others, by key.
pub struct Versioned {
    /// Creates new rows.
    pub insert: Statement,
    /// Reads and locks stored rows: `(org_key, external id, key, version…)`.
    pub lock: Statement,
    /// Writes winning versions over stored rows.
    pub update: Statement,
}

impl Versioned {
    /// Prepares (or takes from the cache) the three statements.
    async fn prepare(
        tx: &Transaction<'_>,
        insert: &str,
        lock: &str,
        update: &str,
    ) -> Result<Self, Error> {
        Ok(Self {
            insert: tx.prepare_cached(insert).await?,
            lock: tx.prepare_cached(lock).await?,
            update: tx.prepare_cached(update).await?,
        })
    }
}

/// Declares [`Attempt`]: each statement field with the expression that
/// prepares it on the transaction `$tx`.
macro_rules! prepared {
    ($tx:ident; $($(#[doc = $doc:literal])+ $field:ident: $ty:ty = $prepare:expr,)+) => {
        /// One attempt at the ingestion transaction: the transaction and
        /// every statement, prepared (from the connection's cache) before
        /// any is sent, so that pipelined statements go out in a fixed
        /// order.
        pub struct Attempt<'t> {
            /// The transaction.
            pub tx: &'t Transaction<'t>,
            $($(#[doc = $doc])+ pub $field: $ty,)+
        }

        impl<'t> Attempt<'t> {
            /// Prepares (or takes from the cache) every statement.
            pub async fn new($tx: &'t Transaction<'t>) -> Result<Self, Error> {
                Ok(Self { $($field: $prepare.await?,)+ tx: $tx })
            }
        }
    };
}

prepared! { tx;
    /// Creates missing organizations.
    org_insert: Statement = tx.prepare_cached(ORG_INSERT),
    /// Resolves organization ids to keys.
    org_select: Statement = tx.prepare_cached(ORG_SELECT),
    /// Categories.
    categories: NameStatements = CATEGORIES.name_only(tx),
    /// Manufacturers.
    manufacturers: NameStatements = MANUFACTURERS.name_only(tx),
    /// Applications.
    applications: NameStatements = APPLICATIONS.name_only(tx),
    /// Projects.
    projects: NameStatements = PROJECTS.name_only(tx),
    /// Catalogs.
    catalogs: Versioned = CATALOGS.renamable(tx),
    /// Users.
    users: Versioned = USERS.renamable(tx),
    /// Components.
    components: Versioned =
        Versioned::prepare(tx, COMPONENT_INSERT, COMPONENT_LOCK, COMPONENT_UPDATE),
    /// Clears the catalog membership of components whose membership changed.
    membership_delete: Statement = tx.prepare_cached(MEMBERSHIP_DELETE),
    /// Writes their new membership.
    membership_insert: Statement = tx.prepare_cached(MEMBERSHIP_INSERT),
    /// Locks the components whose catalogs label is rebuilt.
    relabel_lock: Statement = tx.prepare_cached(&relabel_lock()),
    /// Rebuilds catalogs labels.
    relabel: Statement = tx.prepare_cached(&relabel()),
    /// Marks where to return if claiming event ids fails.
    savepoint: Statement = tx.prepare_cached("SAVEPOINT event_ids"),
    /// Records event ids, failing if any was already stored.
    event_ids_claim: Statement = tx.prepare_cached(EVENT_IDS_CLAIM),
    /// Returns to the savepoint after a failed claim.
    rollback_to_savepoint: Statement = tx.prepare_cached("ROLLBACK TO SAVEPOINT event_ids"),
    /// Records event ids, returning the new ones; waits for a concurrent
    /// transaction that claimed one first, then skips it.
    event_ids_insert: Statement =
        tx.prepare_cached(&format!("{EVENT_IDS_CLAIM} ON CONFLICT DO NOTHING RETURNING id")),
    /// Reads the facts of stored event ids.
    event_ids_select: Statement = tx.prepare_cached(EVENT_IDS_SELECT),
    /// Stores the new events.
    events_insert: Statement = tx.prepare_cached(EVENTS_INSERT),
}
