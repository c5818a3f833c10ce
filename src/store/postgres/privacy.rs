//! Erasure, the audit trail and retention on PostgreSQL.
//!
//! Several replicas may ingest while another erases, so an erasure and the
//! ingestion of the same organization exclude each other through a
//! transaction-scoped advisory lock on the organization: ingestion holds
//! it shared from its first statement to its commit, an erasure holds it
//! exclusively. A batch therefore either commits before the erasure starts
//! (and the erasure pseudonymizes its events) or reads the erased users
//! after the erasure committed (and pseudonymizes them itself); a user's
//! real id can never be stored again after the erasure.

use crate::domain::{AuditRecord, Event, OrgId, Timestamp, UserId};
use crate::privacy::pseudonym::{self, new_secret, Pseudonymizer};
use crate::store::privacy::{decode_audit, erasure_record, PSEUDONYM_SECRET};
use crate::store::{ErasureOutcome, Purged, StoreError};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Pool, Transaction};
use std::borrow::Cow;
use std::collections::HashSet;
use tokio_postgres::types::ToSql;

/// First key of the per-organization erasure lock ("eras"); the second is
/// `hashtext(org_id)`. A hash collision only serializes two organizations.
const ERASURE_LOCK_CLASS: i32 = 0x6572_6173;

/// Takes the shared erasure locks of the organizations `$2`, sorted, so
/// two batches always take their locks in the same order.
const INGEST_LOCK: &str = "SELECT pg_advisory_xact_lock_shared($1, hashtext(o))
     FROM UNNEST($2::text[]) AS u(o) ORDER BY o COLLATE \"C\"";

/// The erased users of the organizations `$1`.
const ERASED_USERS: &str =
    "SELECT org_id, pseudonym FROM erased_users WHERE org_id = ANY($1::text[])";

/// The deployment's pseudonym key. Created by the first erasure (in its
/// transaction, by whichever replica gets there first); read back, never
/// created, by ingestion.
async fn pseudonymizer(
    client: &impl GenericClient,
    create: bool,
) -> Result<Pseudonymizer, StoreError> {
    if create {
        client
            .execute(
                "INSERT INTO deployment_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&PSEUDONYM_SECRET, &new_secret().to_vec()],
            )
            .await?;
    }
    let row = client
        .query_opt(
            "SELECT value FROM deployment_secrets WHERE name = $1",
            &[&PSEUDONYM_SECRET],
        )
        .await?
        .ok_or_else(|| {
            StoreError::Corrupt("users were erased but the pseudonym key is missing".into())
        })?;
    Ok(Pseudonymizer::new(&row.try_get::<_, Vec<u8>>(0)?))
}

/// The first step of an ingestion transaction: takes the batch's
/// organizations' erasure locks (shared) and replaces erased users by
/// their pseudonyms. Pseudonyms are computed only for organizations that
/// have erased users at all.
pub async fn pseudonymize<'a>(
    tx: &Transaction<'_>,
    events: &'a [Event],
) -> Result<Cow<'a, [Event]>, StoreError> {
    let orgs: Vec<&str> = events
        .iter()
        .map(|e| e.organization.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // On every ingestion: prepared once per connection, and the read is
    // pipelined behind the lock (the server runs it, with a snapshot of its
    // own, only once the lock is held).
    let (lock, erased_users) = tokio::try_join!(
        tx.prepare_cached(INGEST_LOCK),
        tx.prepare_cached(ERASED_USERS)
    )?;
    let lock_params: [&(dyn ToSql + Sync); 2] = [&ERASURE_LOCK_CLASS, &orgs];
    let read_params: [&(dyn ToSql + Sync); 1] = [&orgs];
    let (_, rows) = tokio::try_join!(
        tx.execute(&lock, &lock_params),
        tx.query(&erased_users, &read_params),
    )?;
    if rows.is_empty() {
        return Ok(Cow::Borrowed(events));
    }
    let mut known = HashSet::with_capacity(rows.len());
    for row in &rows {
        known.insert((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?));
    }
    let erased: Vec<_> = pseudonymizer(tx, false)
        .await?
        .candidates(events)
        .into_iter()
        .filter(|c| known.contains(&(c.org.to_string(), c.pseudonym.to_string())))
        .collect();
    Ok(pseudonym::apply(events, &erased))
}

/// See [`crate::store::Store::erase_user`].
pub async fn erase(
    pool: &Pool,
    org: &OrgId,
    user: &UserId,
    actor: Option<&UserId>,
) -> Result<ErasureOutcome, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&ERASURE_LOCK_CLASS, &org.as_str()],
    )
    .await?;
    let pseudonym = pseudonymizer(&tx, true).await?.pseudonym(org, user);
    tx.execute(
        "INSERT INTO erased_users (org_id, pseudonym, erased_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[
            &org.as_str(),
            &pseudonym.as_str(),
            &Timestamp::now().millis(),
        ],
    )
    .await?;
    let user_key = async |external: &str| -> Result<Option<(i64, i64)>, StoreError> {
        let row = tx
            .query_opt(
                "SELECT u.org_key, u.user_key FROM users u
                 JOIN organizations o ON o.org_key = u.org_key
                 WHERE o.org_id = $1 AND u.external_id = $2
                 FOR UPDATE OF u",
                &[&org.as_str(), &external],
            )
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    };
    let mut events = 0;
    if let Some((org_key, old)) = user_key(user.as_str()).await? {
        let merged = user_key(pseudonym.as_str()).await?;
        events = match merged {
            // Events for the user arrived under the pseudonym already:
            // merge into that row.
            Some((_, merged)) => {
                let n = tx
                    .execute(
                        "UPDATE events SET user_key = $3 WHERE org_key = $1 AND user_key = $2",
                        &[&org_key, &old, &merged],
                    )
                    .await?;
                tx.execute(
                    "DELETE FROM users WHERE org_key = $1 AND user_key = $2",
                    &[&org_key, &old],
                )
                .await?;
                n
            }
            None => {
                tx.execute(
                    "UPDATE users SET external_id = $3, email = '' WHERE org_key = $1 AND user_key = $2",
                    &[&org_key, &old, &pseudonym.as_str()],
                )
                .await?;
                let count: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM events WHERE org_key = $1 AND user_key = $2",
                        &[&org_key, &old],
                    )
                    .await?
                    .try_get(0)?;
                count as u64
            }
        };
        // The facts fingerprints hash the real id: a guessed id could be
        // confirmed against them. Without one, a re-sent event of the user
        // is a duplicate, as for events stored before fingerprints.
        let user_now = merged.map_or(old, |(_, merged)| merged);
        tx.execute(
            "UPDATE event_ids SET facts = NULL WHERE id IN (
                 SELECT id FROM events WHERE org_key = $1 AND user_key = $2)",
            &[&org_key, &user_now],
        )
        .await?;
    }
    insert_audit(&tx, &erasure_record(org, &pseudonym, events, actor)).await?;
    tx.commit().await?;
    Ok(ErasureOutcome { pseudonym, events })
}

/// Appends `record` through `client` (a transaction or a connection).
pub async fn insert_audit(
    client: &impl GenericClient,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    // Prepared once per connection: one round trip per record.
    let insert = client
        .prepare_cached("INSERT INTO audit_log (org_id, at, record) VALUES ($1, $2, $3)")
        .await?;
    client
        .execute(
            &insert,
            &[
                &record.org.as_str(),
                &record.at.millis(),
                &record.to_json_string(),
            ],
        )
        .await?;
    Ok(())
}

/// The organization's records from `since`, oldest first.
pub async fn list_audit(
    pool: &Pool,
    org: &OrgId,
    since: Option<Timestamp>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT record FROM audit_log WHERE org_id = $1 AND at >= $2 ORDER BY at, seq",
            &[&org.as_str(), &since.map_or(i64::MIN, Timestamp::millis)],
        )
        .await?;
    let texts = rows
        .iter()
        .map(|r| r.try_get::<_, &str>(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(decode_audit(texts))
}

/// Deletes up to `limit` events older than `before` (and their
/// idempotency rows, as SQLite's index goes with its rows), organization
/// by organization along the primary key, in one short transaction.
pub async fn purge_events(
    pool: &Pool,
    before: Timestamp,
    limit: u64,
) -> Result<Purged, StoreError> {
    let mut client = pool.get().await?;
    let orgs: Vec<i64> = client
        .query("SELECT org_key FROM organizations ORDER BY org_key", &[])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let tx = client.transaction().await?;
    let delete = tx
        .prepare_cached(
            "WITH doomed AS (
                 DELETE FROM events WHERE (org_key, ts, id) IN (
                     SELECT org_key, ts, id FROM events
                     WHERE org_key = $1 AND ts < $2 ORDER BY ts LIMIT $3)
                 RETURNING org_key, id)
             DELETE FROM event_ids i USING doomed d WHERE i.org_key = d.org_key AND i.id = d.id",
        )
        .await?;
    let mut deleted = 0u64;
    for org_key in orgs {
        if deleted >= limit {
            break;
        }
        let left = i64::try_from(limit - deleted).unwrap_or(i64::MAX);
        deleted += tx
            .execute(&delete, &[&org_key, &before.millis(), &left])
            .await?;
    }
    tx.commit().await?;
    Ok(Purged::rows(deleted, limit))
}

/// Deletes up to `limit` audit records older than `before`.
pub async fn purge_audit(pool: &Pool, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
    let client = pool.get().await?;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let deleted = client
        .execute(
            "DELETE FROM audit_log WHERE seq IN (
                 SELECT seq FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
            &[&before.millis(), &limit_sql],
        )
        .await?;
    Ok(Purged::rows(deleted, limit))
}
