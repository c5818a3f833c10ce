//! Embedded, versioned migrations for the SQLite schema.

use crate::store::StoreError;
use rusqlite::{params, Connection, TransactionBehavior};

/// Every migration, in order; a version is applied once and recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_event_facts.sql")),
    (3, include_str!("migrations/0003_store_probe.sql")),
    (4, include_str!("migrations/0004_dictionary_versions.sql")),
    (5, include_str!("migrations/0005_privacy.sql")),
    (7, include_str!("migrations/0007_login_codes.sql")),
];

/// Applies the migrations the database has not seen, each in its own
/// immediate transaction so two processes starting together cannot race.
pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )?;
    for &(version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            params![version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, crate::domain::Timestamp::now().millis()],
            )?;
            tracing::info!(version, "applied SQLite migration");
        }
        tx.commit()?;
    }
    let newest: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if newest > known {
        return Err(StoreError::Config(format!(
            "database schema version {newest} is newer than this binary knows ({known}); upgrade catalytics"
        )));
    }
    Ok(())
}
