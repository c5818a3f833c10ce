//! Monthly partitions of `events` (created by migration 5, see
//! `docs/operations.md`): created ahead of time, and dropped whole once
//! they lie entirely before the retention cutoff.
//!
//! Lock discipline, so that ingestion and downloads are never held up for
//! long: a partition is created as a plain table and then *attached*
//! (which locks the parent only against schema changes), and an expired
//! one is *detached* and then dropped as a table of its own. Attach and
//! detach wait at most [`LOCK_TIMEOUT`] for their locks and otherwise try
//! again at the next run. The idempotency ids of a dropped month are
//! deleted from the detached table in bounded steps before the drop. One
//! replica at a time does this work (a transaction-scoped advisory lock);
//! the others skip it.

use crate::domain::Timestamp;
use crate::store::{Purged, StoreError};
use deadpool_postgres::Pool;
use time::{Date, OffsetDateTime};

/// Months created behind the current one when the store opens, so that a
/// year of history imported into a new deployment lands in droppable
/// partitions.
const MONTHS_BACK: i32 = 13;
/// Months created ahead of the current one.
const MONTHS_AHEAD: i32 = 3;
/// Longest wait for the lock an attach or detach needs.
const LOCK_TIMEOUT: &str = "1s";
/// The advisory lock of partition maintenance ("catpart").
const MAINTENANCE_LOCK: i64 = 0x0063_6174_7061_7274;

/// A calendar month in UTC: the unit of partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Month {
    year: i32,
    month: u8,
}

impl Month {
    fn of(t: Timestamp) -> Self {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.millis()) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self {
            year: dt.year(),
            month: u8::from(dt.month()),
        }
    }

    fn plus(self, months: i32) -> Self {
        let index = self.year * 12 + i32::from(self.month) - 1 + months;
        Self {
            year: index.div_euclid(12),
            month: (index.rem_euclid(12) + 1) as u8,
        }
    }

    /// Milliseconds since the epoch at the month's first instant.
    fn start(self) -> i64 {
        time::Month::try_from(self.month)
            .ok()
            .and_then(|m| Date::from_calendar_date(self.year, m, 1).ok())
            .map_or(i64::MIN, |d| {
                d.midnight().assume_utc().unix_timestamp() * 1000
            })
    }

    fn name(self) -> String {
        format!("events_p{:04}_{:02}", self.year, self.month)
    }
}

/// An attached partition and the exclusive upper bound of its range
/// (`None` for the default partition or an open end).
struct Partition {
    name: String,
    end: Option<i64>,
}

/// The upper bound of a partition from `pg_get_expr(relpartbound)`, e.g.
/// `FOR VALUES FROM ('1704067200000') TO ('1706745600000')`.
fn upper_bound(expr: &str) -> Option<i64> {
    let (_, to) = expr.split_once(" TO (")?;
    to.trim_end_matches(')').trim_matches('\'').parse().ok()
}

async fn attached(client: &deadpool_postgres::Client) -> Result<Vec<Partition>, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Partition {
                name: r.try_get(0)?,
                end: upper_bound(r.try_get(1)?),
            })
        })
        .collect()
}

/// Creates the missing monthly partitions from the month of `from` to
/// [`MONTHS_AHEAD`] months after `now` (never overlapping the history
/// partition). A month whose rows already sit in the default partition,
/// or whose lock is not granted in time, is skipped and logged.
pub async fn ensure(pool: &Pool, from: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let existing = attached(&client).await?;
    let history_end = existing
        .iter()
        .find(|p| p.name == "events_history")
        .and_then(|p| p.end)
        .unwrap_or(i64::MIN);
    let mut created = 0;
    let (first, last) = (Month::of(from), Month::of(now).plus(MONTHS_AHEAD));
    let mut month = first;
    while month <= last {
        let (name, start, end) = (month.name(), month.start(), month.plus(1).start());
        month = month.plus(1);
        if start < history_end || existing.iter().any(|p| p.name == name) {
            continue;
        }
        let tx = client.transaction().await?;
        if !try_lock(&tx).await? {
            return Ok(created);
        }
        let attach = tx
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
                 CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
            ))
            .await;
        match attach {
            Ok(()) => {
                tx.commit().await?;
                created += 1;
            }
            Err(e) => {
                tracing::warn!(partition = %name, error = %super::error::describe(&e), "cannot create an events partition; will retry");
            }
        }
    }
    Ok(created)
}

/// The partitions-first part of a retention step: detaches every attached
/// partition that ends at or before `before`, then deletes up to `limit`
/// rows from detached ones (with their idempotency ids) and drops each
/// that is empty.
pub async fn drop_expired(
    pool: &Pool,
    before: Timestamp,
    limit: u64,
) -> Result<Purged, StoreError> {
    let mut client = pool.get().await?;
    for p in attached(&client).await? {
        if p.end.is_none_or(|end| end > before.millis()) {
            continue;
        }
        let tx = client.transaction().await?;
        if !try_lock(&tx).await? {
            return Ok(Purged::default());
        }
        let detach = tx
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
                 ALTER TABLE events DETACH PARTITION {}",
                p.name
            ))
            .await;
        match detach {
            Ok(()) => tx.commit().await?,
            Err(e) => {
                tracing::info!(partition = %p.name, error = %super::error::describe(&e), "cannot detach an expired partition yet; will retry");
                break;
            }
        }
    }
    let detached: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class
             WHERE relkind = 'r' AND NOT relispartition
               AND relnamespace = 'public'::regnamespace
               AND (relname = 'events_history' OR relname ~ '^events_p[0-9]{4}_[0-9]{2}$')
             ORDER BY relname",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut done = Purged::default();
    for name in detached {
        let left = limit.saturating_sub(done.rows);
        if left == 0 {
            done.more = true;
            break;
        }
        let tx = client.transaction().await?;
        if !try_lock(&tx).await? {
            break;
        }
        let left_sql = i64::try_from(left).unwrap_or(i64::MAX);
        let deleted = tx
            .execute(
                &format!(
                    "WITH gone AS (
                         DELETE FROM {name} WHERE ctid IN (SELECT ctid FROM {name} LIMIT $1)
                         RETURNING org_key, id)
                     DELETE FROM event_ids i USING gone g WHERE i.org_key = g.org_key AND i.id = g.id"
                ),
                &[&left_sql],
            )
            .await?;
        done.rows += deleted;
        if deleted < left {
            tx.batch_execute(&format!("DROP TABLE {name}")).await?;
            done.partitions += 1;
            tracing::info!(partition = %name, "dropped an expired events partition");
        }
        tx.commit().await?;
    }
    Ok(done)
}

/// Takes the maintenance lock for the transaction; false when another
/// replica holds it.
pub(super) async fn try_lock(tx: &deadpool_postgres::Transaction<'_>) -> Result<bool, StoreError> {
    Ok(tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MAINTENANCE_LOCK])
        .await?
        .try_get(0)?)
}

/// Months back from `now` that [`ensure`] covers when the store opens.
pub fn opening_horizon(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(Month::of(now).plus(-MONTHS_BACK).start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn months_step_across_years() {
        let m = Month::of(ts("2024-12-31T23:59:59.999Z"));
        assert_eq!(
            m,
            Month {
                year: 2024,
                month: 12
            }
        );
        assert_eq!(
            m.plus(1),
            Month {
                year: 2025,
                month: 1
            }
        );
        assert_eq!(
            m.plus(-12),
            Month {
                year: 2023,
                month: 12
            }
        );
        assert_eq!(m.plus(-13).name(), "events_p2023_11");
        assert_eq!(m.start(), ts("2024-12-01T00:00:00.000Z").millis());
        assert_eq!(m.plus(1).start(), ts("2025-01-01T00:00:00.000Z").millis());
    }

    #[test]
    fn upper_bounds_are_read_from_the_catalog_text() {
        assert_eq!(
            upper_bound("FOR VALUES FROM ('1704067200000') TO ('1706745600000')"),
            Some(1_706_745_600_000)
        );
        assert_eq!(
            upper_bound("FOR VALUES FROM (MINVALUE) TO ('1700000000000')"),
            Some(1_700_000_000_000)
        );
        assert_eq!(upper_bound("FOR VALUES FROM ('1') TO (MAXVALUE)"), None);
        assert_eq!(upper_bound("DEFAULT"), None);
    }

    #[test]
    fn the_opening_horizon_is_thirteen_months_back() {
        assert_eq!(
            opening_horizon(ts("2024-03-15T10:00:00.000Z")),
            ts("2023-02-01T00:00:00.000Z")
        );
    }
}
