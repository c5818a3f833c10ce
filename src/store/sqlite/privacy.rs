//! Erasure, the audit trail and retention on SQLite. An erasure and an
//! ingestion each run in an immediate transaction (SQLite's write lock,
//! which also excludes other processes such as `catalytics erase` or
//! `import`), and ingestion looks up erased users inside its transaction:
//! a batch is pseudonymized against the erased users as they are when it
//! commits.

use super::ingest::Batch;
use crate::domain::{AuditRecord, OrgId, Timestamp, UserId};
use crate::privacy::pseudonym::{self, new_secret, Pseudonymizer};
use crate::store::privacy::{decode_audit, erasure_record, PSEUDONYM_SECRET};
use crate::store::{ErasureOutcome, Purged, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::borrow::Cow;

/// The deployment's pseudonym key. Created by the first erasure (in its
/// transaction); read back, never created, by ingestion.
fn pseudonymizer(conn: &Connection, create: bool) -> Result<Pseudonymizer, StoreError> {
    let read = |conn: &Connection| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT value FROM deployment_secrets WHERE name = ?1")?
            .query_row(params![PSEUDONYM_SECRET], |r| r.get(0))
            .optional()?)
    };
    let secret = match read(conn)? {
        Some(secret) => secret,
        None if create => {
            conn.execute(
                "INSERT INTO deployment_secrets (name, value) VALUES (?1, ?2)",
                params![PSEUDONYM_SECRET, new_secret().to_vec()],
            )?;
            read(conn)?.ok_or_else(|| StoreError::Corrupt("pseudonym key vanished".into()))?
        }
        None => {
            return Err(StoreError::Corrupt(
                "users were erased but the pseudonym key is missing".into(),
            ))
        }
    };
    Ok(Pseudonymizer::new(&secret))
}

/// Replaces erased users in `batches` by their pseudonyms (and
/// fingerprints those batches anew); called inside
/// the ingestion's immediate transaction, so no erasure (from this process
/// or another, such as `catalytics erase`) can commit in between. Costs one
/// indexed probe when nobody was ever erased.
pub fn pseudonymize<'a>(
    conn: &Connection,
    batches: &'a [Batch],
) -> Result<Cow<'a, [Batch]>, StoreError> {
    let any: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM erased_users)")?
        .query_row([], |r| r.get(0))?;
    if !any {
        return Ok(Cow::Borrowed(batches));
    }
    let pseudonymizer = pseudonymizer(conn, false)?;
    let mut lookup = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM erased_users WHERE org_id = ?1 AND pseudonym = ?2)",
    )?;
    let mut erased = Vec::new();
    for c in pseudonymizer.candidates(batches.iter().flat_map(|b| &b.events)) {
        if lookup.query_row(params![c.org.as_str(), c.pseudonym.as_str()], |r| {
            r.get::<_, bool>(0)
        })? {
            erased.push(c);
        }
    }
    if erased.is_empty() {
        return Ok(Cow::Borrowed(batches));
    }
    Ok(Cow::Owned(
        batches
            .iter()
            // A pseudonym changes the user id, a fact: fingerprinted anew.
            .map(|batch| Batch::new(pseudonym::apply(&batch.events, &erased).into_owned()))
            .collect(),
    ))
}

/// See [`crate::store::Store::erase_user`]. `secure_delete` is on for the
/// transaction, so the old id and email are overwritten in the database
/// file instead of lingering in free space.
pub fn erase(
    conn: &mut Connection,
    org: &OrgId,
    user: &UserId,
    actor: Option<&UserId>,
) -> Result<ErasureOutcome, StoreError> {
    conn.pragma_update(None, "secure_delete", true)?;
    let outcome = erase_in_transaction(conn, org, user, actor);
    conn.pragma_update(None, "secure_delete", false)?;
    outcome
}

fn erase_in_transaction(
    conn: &mut Connection,
    org: &OrgId,
    user: &UserId,
    actor: Option<&UserId>,
) -> Result<ErasureOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let pseudonym = pseudonymizer(&tx, true)?.pseudonym(org, user);
    tx.execute(
        "INSERT INTO erased_users (org_id, pseudonym, erased_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![org.as_str(), pseudonym.as_str(), Timestamp::now().millis()],
    )?;
    let user_key = |external: &str| -> Result<Option<(i64, i64)>, StoreError> {
        Ok(tx
            .query_row(
                "SELECT u.org_key, u.user_key FROM users u
                 JOIN organizations o ON o.org_key = u.org_key
                 WHERE o.org_id = ?1 AND u.external_id = ?2",
                params![org.as_str(), external],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    };
    let mut events = 0;
    if let Some((org_key, old)) = user_key(user.as_str())? {
        // The facts fingerprints hash the real id: a guessed id could be
        // confirmed against them. Without one, a re-sent event of the user
        // is a duplicate, as for events stored before fingerprints.
        events = tx.execute(
            "UPDATE event_ids SET facts = NULL WHERE id IN (
                 SELECT id FROM events WHERE org_key = ?1 AND user_key = ?2)",
            params![org_key, old],
        )? as u64;
        match user_key(pseudonym.as_str())? {
            // Events for the user arrived under the pseudonym already
            // (an earlier erasure of the same id): merge into that row.
            Some((_, merged)) => {
                tx.execute(
                    "UPDATE events SET user_key = ?3 WHERE org_key = ?1 AND user_key = ?2",
                    params![org_key, old, merged],
                )?;
                tx.execute("DELETE FROM users WHERE user_key = ?1", params![old])?;
            }
            None => {
                tx.execute(
                    "UPDATE users SET external_id = ?2, email = '' WHERE user_key = ?1",
                    params![old, pseudonym.as_str()],
                )?;
            }
        }
    }
    insert_audit(&tx, &erasure_record(org, &pseudonym, events, actor))?;
    tx.commit()?;
    Ok(ErasureOutcome { pseudonym, events })
}

/// Appends `record` (inside the caller's transaction, if any).
pub fn insert_audit(conn: &Connection, record: &AuditRecord) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit_log (org_id, at, record) VALUES (?1, ?2, ?3)")?
        .execute(params![
            record.org.as_str(),
            record.at.millis(),
            record.to_json_string()
        ])?;
    Ok(())
}

/// The organization's records from `since`, oldest first.
pub fn list_audit(
    conn: &Connection,
    org: &OrgId,
    since: Option<Timestamp>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT record FROM audit_log WHERE org_id = ?1 AND at >= ?2 ORDER BY at, seq")?;
    let since = since.map_or(i64::MIN, Timestamp::millis);
    let texts = stmt
        .query_map(params![org.as_str(), since], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(decode_audit(texts.iter().map(String::as_str)))
}

/// Deletes up to `limit` events older than `before`, organization by
/// organization along the primary key, in one short transaction.
pub fn purge_events(
    conn: &mut Connection,
    before: Timestamp,
    limit: u64,
) -> Result<Purged, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let orgs = {
        let mut stmt = tx.prepare_cached("SELECT org_key FROM organizations ORDER BY org_key")?;
        let keys = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        keys
    };
    let mut deleted = 0u64;
    {
        // The same rows twice in one transaction: their idempotency ids
        // first, then the rows themselves.
        let mut forget = tx.prepare_cached(
            "DELETE FROM event_ids WHERE id IN (
                 SELECT id FROM events WHERE org_key = ?1 AND ts < ?2 ORDER BY ts, id LIMIT ?3)",
        )?;
        let mut delete = tx.prepare_cached(
            "DELETE FROM events WHERE (org_key, ts, id) IN (
                 SELECT org_key, ts, id FROM events
                 WHERE org_key = ?1 AND ts < ?2 ORDER BY ts, id LIMIT ?3)",
        )?;
        for org_key in orgs {
            if deleted >= limit {
                break;
            }
            let left = i64::try_from(limit - deleted).unwrap_or(i64::MAX);
            forget.execute(params![org_key, before.millis(), left])?;
            deleted += delete.execute(params![org_key, before.millis(), left])? as u64;
        }
    }
    tx.commit()?;
    Ok(Purged::rows(deleted, limit))
}

/// Deletes up to `limit` audit records older than `before`.
pub fn purge_audit(
    conn: &mut Connection,
    before: Timestamp,
    limit: u64,
) -> Result<Purged, StoreError> {
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let deleted = conn
        .prepare_cached(
            "DELETE FROM audit_log WHERE seq IN (
                 SELECT seq FROM audit_log WHERE at < ?1 ORDER BY at LIMIT ?2)",
        )?
        .execute(params![before.millis(), limit_sql])? as u64;
    Ok(Purged::rows(deleted, limit))
}
