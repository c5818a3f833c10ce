//! The per-organization download rate limit, counted in the database so
//! that every replica enforces one limit (DESIGN.md §10).
//!
//! GCRA, the rule `governor` applies in memory: each key has a theoretical
//! arrival time `tat`; a unit is allowed when `max(tat, now) + T` stays
//! within `n·T` of now (T = one minute / n), and then becomes the new
//! `tat`. One upsert decides and records atomically (the row lock
//! serializes replicas), on the database's clock, so replicas with skewed
//! clocks still agree. A refusal reads how long until a unit frees up.

use super::PgStore;
use crate::store::{RateDecision, SharedRateLimiter, StoreError};
use async_trait::async_trait;
use std::num::NonZeroU32;
use std::time::Duration;

/// Takes a unit when the allowance has one; returns nothing otherwise.
/// When it takes one, its commit does not wait for the WAL to reach the
/// disk (`synchronous_commit` off for this statement's transaction only):
/// a crash of the database server may forget the units of its last
/// fraction of a second, letting as many downloads more through, while no
/// download waits for a disk flush before it starts.
const TAKE_SQL: &str = "
INSERT INTO download_rate AS r (org_id, tat)
VALUES ($1, now() + $2::float8 * interval '1 second')
ON CONFLICT (org_id) DO UPDATE
   SET tat = GREATEST(r.tat, now()) + $2::float8 * interval '1 second'
 WHERE GREATEST(r.tat, now()) + $2::float8 * interval '1 second'
       <= now() + $3::float8 * interval '1 second'
RETURNING tat, set_config('synchronous_commit', 'off', true)";

/// Seconds until the next unit frees up, for a refused key.
const WAIT_SQL: &str = "
SELECT GREATEST(EXTRACT(EPOCH FROM (tat - now()))::float8 - $2::float8, 0)
FROM download_rate WHERE org_id = $1";

#[async_trait]
impl SharedRateLimiter for PgStore {
    async fn take(&self, key: &str, per_minute: NonZeroU32) -> Result<RateDecision, StoreError> {
        let n = f64::from(per_minute.get());
        let interval = 60.0 / n;
        let client = self.pool.get().await?;
        let taken = client
            .query_opt(TAKE_SQL, &[&key, &interval, &(n * interval)])
            .await?;
        if taken.is_some() {
            return Ok(RateDecision::Allowed);
        }
        let wait: f64 = client
            .query_opt(WAIT_SQL, &[&key, &((n - 1.0) * interval)])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0.0);
        Ok(RateDecision::Wait(Duration::from_secs_f64(wait.max(0.0))))
    }
}
