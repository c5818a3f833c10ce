//! The retention task: deletes events older than `retention.days` and
//! audit records older than `retention.audit_days`, in bounded steps with
//! a pause between them, so that ingestion and downloads keep going while
//! it works (see `docs/privacy.md`).

use crate::domain::Timestamp;
use crate::store::{Purged, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::AbortOnDropHandle;

/// `[retention]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Events older than this many days are deleted; `None` keeps
    /// everything (the default). Zero is refused when settings load: it
    /// would delete everything at once.
    pub days: Option<NonZeroU32>,
    /// Audit records older than this many days are deleted (default 400);
    /// independent of `days`.
    pub audit_days: Option<NonZeroU32>,
    /// Time between two runs of the task (`"1h"`). This and the two below
    /// are checked against their ranges in `Settings::validate`.
    #[serde(with = "crate::config::duration_text")]
    pub interval: Duration,
    /// Rows deleted per step; each step is one short transaction.
    pub batch_size: u64,
    /// Rest between two steps of one run, leaving the store to other work
    /// (`"50ms"`).
    #[serde(with = "crate::config::duration_text")]
    pub pause: Duration,
}

/// Default audit retention: a little over a year, so a yearly review
/// always finds the previous year complete.
pub const DEFAULT_AUDIT_DAYS: NonZeroU32 = match NonZeroU32::new(400) {
    Some(days) => days,
    None => NonZeroU32::MIN,
};

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            days: None,
            audit_days: Some(DEFAULT_AUDIT_DAYS),
            interval: Duration::from_secs(3600),
            batch_size: 10_000,
            pause: Duration::from_millis(50),
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The instant before which data kept for `days` days has expired at `now`.
pub fn cutoff(now: Timestamp, days: NonZeroU32) -> Timestamp {
    Timestamp::from_millis(now.millis().saturating_sub(i64::from(days.get()) * DAY_MS))
}

/// The running task; dropping it stops it.
pub struct Retention {
    _task: AbortOnDropHandle<()>,
}

impl Retention {
    /// Starts the task when the policy deletes anything; `None` otherwise.
    pub fn spawn(store: Arc<dyn Store>, policy: RetentionPolicy) -> Option<Self> {
        if policy.days.is_none() && policy.audit_days.is_none() {
            return None;
        }
        let task = tokio::spawn(async move {
            // Settings::validate keeps the interval above zero.
            let mut tick = tokio::time::interval(policy.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                run_once(store.as_ref(), &policy).await;
            }
        });
        Some(Self {
            _task: AbortOnDropHandle::new(task),
        })
    }
}

/// One run: events, then audit records. A failure is logged and the run
/// ends; the next one starts over, so nothing is lost by stopping early.
pub async fn run_once(store: &dyn Store, policy: &RetentionPolicy) {
    let now = Timestamp::now();
    if let Some(days) = policy.days {
        let before = cutoff(now, days);
        match drain(policy, |limit| store.purge_events(before, limit)).await {
            Ok(done) if done.rows + done.partitions > 0 => tracing::info!(
                events = done.rows,
                partitions = done.partitions,
                before = %before,
                "retention deleted expired events"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event retention failed; will retry"),
        }
    }
    if let Some(days) = policy.audit_days {
        let before = cutoff(now, days);
        match drain(policy, |limit| store.purge_audit(before, limit)).await {
            Ok(done) if done.rows > 0 => tracing::info!(
                records = done.rows,
                before = %before,
                "retention deleted expired audit records"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
        }
    }
}

/// Repeats a bounded step until it reports nothing more to do.
async fn drain<F, Fut>(policy: &RetentionPolicy, mut step: F) -> Result<Purged, StoreError>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Purged, StoreError>>,
{
    let mut total = Purged::default();
    loop {
        let done = step(policy.batch_size).await?;
        total.rows += done.rows;
        total.partitions += done.partitions;
        if !done.more {
            return Ok(total);
        }
        tokio::time::sleep(policy.pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_counts_whole_days_back() {
        let now = Timestamp::parse("2024-03-01T12:00:00.000Z").unwrap();
        let days = |n| NonZeroU32::new(n).unwrap();
        assert_eq!(cutoff(now, days(1)).to_wire(), "2024-02-29T12:00:00.000Z");
        assert_eq!(cutoff(now, days(30)).to_wire(), "2024-01-31T12:00:00.000Z");
        assert_eq!(
            cutoff(Timestamp::from_millis(i64::MIN + 1), days(1)).millis(),
            i64::MIN
        );
    }

    #[test]
    fn the_default_keeps_events_and_a_year_of_audit() {
        let p = RetentionPolicy::default();
        assert_eq!(
            (p.days, p.audit_days.map(NonZeroU32::get)),
            (None, Some(400))
        );
    }

    #[test]
    fn zero_days_are_refused_when_loading() {
        assert!(toml::from_str::<RetentionPolicy>("days = 0").is_err());
        assert!(toml::from_str::<RetentionPolicy>("audit_days = 0").is_err());
        let p: RetentionPolicy =
            toml::from_str("days = 30\ninterval = \"15m\"\npause = \"5ms\"").unwrap();
        assert_eq!(p.days.map(NonZeroU32::get), Some(30));
        assert_eq!(p.interval, Duration::from_secs(900));
        assert_eq!(p.pause, Duration::from_millis(5));
    }
}
