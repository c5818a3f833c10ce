//! Embedded, versioned migrations for the PostgreSQL schema.
//!
//! Several replicas may start at once against one database, so every
//! migration runs in its own transaction that first takes a
//! transaction-scoped advisory lock: the first replica applies, the others
//! wait, then see the version recorded and skip it.

use crate::store::StoreError;
use deadpool_postgres::Client;

/// Every migration, in order; a version is applied once and recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_event_facts.sql")),
    (3, include_str!("migrations/0003_download_rate.sql")),
    (5, include_str!("migrations/0005_privacy.sql")),
    (6, include_str!("migrations/0006_dictionary_changes.sql")),
    (7, include_str!("migrations/0007_login_codes.sql")),
    (8, include_str!("migrations/0008_dictionary_pruning.sql")),
];

/// The advisory-lock key that serializes migrations ("catalyti" in ASCII),
/// chosen so it will not collide with another application's small keys.
const MIGRATION_LOCK: i64 = 0x6361_7461_6c79_7469;

/// Applies the migrations the database has not seen, then refuses a schema
/// newer than this binary understands.
pub async fn apply(client: &mut Client) -> Result<(), StoreError> {
    for &(version, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // Quiet: "already exists, skipping" would be logged at every start.
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let done: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[&version],
            )
            .await?
            .try_get(0)?;
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        tx.commit().await?;
    }
    let newest: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if newest > known {
        return Err(StoreError::Config(format!(
            "database schema version {newest} is newer than this binary knows ({known}); upgrade catalytics"
        )));
    }
    Ok(())
}
