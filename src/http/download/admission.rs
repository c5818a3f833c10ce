//! Whether a download may start now (DESIGN.md §10 "Admission, not
//! refusal"): the organization's rate limit first (429 at once when it is
//! spent), then a download slot, waited for up to `limits.download_queue_wait`
//! (429 only when the wait is over). Queued and admitted downloads are
//! logged with the queue length and the slots in use.

use crate::domain::OrgId;
use crate::error::ApiError;
use crate::store::{RateDecision, SharedRateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Per-organization download rate limiter in memory (GCRA, `governor`).
pub type OrgRateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Seconds a client is asked to wait after queueing for a slot in vain.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Where the per-organization download rate is counted.
pub enum DownloadRate {
    /// One process serves the store: an in-memory limiter.
    InProcess(OrgRateLimiter),
    /// Replicas share the store: the count lives there.
    Shared {
        /// The store's limiter.
        limiter: Arc<dyn SharedRateLimiter>,
        /// Downloads per minute per organization.
        per_minute: NonZeroU32,
    },
}

impl DownloadRate {
    /// `per_minute` downloads per organization, counted in the store when
    /// it offers a shared limiter, else in memory.
    pub fn new(per_minute: NonZeroU32, shared: Option<Arc<dyn SharedRateLimiter>>) -> Self {
        match shared {
            Some(limiter) => DownloadRate::Shared {
                limiter,
                per_minute,
            },
            None => DownloadRate::InProcess(governor::RateLimiter::keyed(
                governor::Quota::per_minute(per_minute),
            )),
        }
    }

    async fn check(&self, org: &OrgId) -> Result<(), ApiError> {
        let wait = match self {
            DownloadRate::InProcess(limiter) => match limiter.check_key(&org.as_str().to_owned()) {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()))
                }
            },
            DownloadRate::Shared {
                limiter,
                per_minute,
            } => match limiter.take(org.as_str(), *per_minute).await? {
                RateDecision::Allowed => return Ok(()),
                RateDecision::Wait(wait) => wait,
            },
        };
        Err(ApiError::TooManyRequests {
            retry_after_secs: retry_after_secs(wait),
        })
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The download slots, their queue and the rate limit.
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    queue_wait: Duration,
    queued: AtomicUsize,
    rate: Option<DownloadRate>,
}

impl Admission {
    /// `capacity` slots (at least one), waited for up to `queue_wait`.
    pub fn new(capacity: usize, queue_wait: Duration, rate: Option<DownloadRate>) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            queue_wait,
            queued: AtomicUsize::new(0),
            rate,
        }
    }

    /// Downloads streaming now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Downloads waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Admits a download of `org`, or answers 429. The slot is held until
    /// the returned permit is dropped.
    pub async fn admit(&self, org: &OrgId) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Some(rate) = &self.rate {
            rate.check(org).await?;
        }
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = Queued::join(&self.queued);
        tracing::info!(
            queued = waiting.position,
            in_flight = self.in_flight(),
            "download queued: every slot is busy"
        );
        let started = Instant::now();
        let permit =
            tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned()).await;
        drop(waiting);
        match permit {
            Ok(Ok(permit)) => {
                tracing::info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    in_flight = self.in_flight(),
                    queued = self.queued(),
                    "download admitted from the queue"
                );
                Ok(permit)
            }
            _ => Err(ApiError::TooManyRequests {
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            }),
        }
    }
}

/// One download in the queue: counted in `queued` from `join` until
/// dropped, also when the request is dropped while it waits (the client
/// went away).
struct Queued<'a> {
    queued: &'a AtomicUsize,
    /// Downloads waiting, this one included, when it joined.
    position: usize,
}

impl<'a> Queued<'a> {
    fn join(queued: &'a AtomicUsize) -> Self {
        let position = queued.fetch_add(1, Ordering::Relaxed) + 1;
        Self { queued, position }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(11_001)), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_waits_for_a_slot_then_gives_up() {
        let org = OrgId::parse("o").unwrap();
        let admission = Admission::new(1, Duration::from_secs(10), None);
        let first = admission.admit(&org).await.unwrap();
        let (second, ()) = tokio::join!(admission.admit(&org), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(admission.queued(), 1);
            drop(first);
        });
        let second = second.unwrap();
        assert_eq!(admission.in_flight(), 1);
        let started = tokio::time::Instant::now();
        let refused = admission.admit(&org).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(matches!(
            refused,
            ApiError::TooManyRequests {
                retry_after_secs: 1
            }
        ));
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_given_up_while_queued_leaves_the_queue() {
        let org = OrgId::parse("o").unwrap();
        let admission = Admission::new(1, Duration::from_secs(10), None);
        let first = admission.admit(&org).await.unwrap();
        // The client goes away after 1 s: the request's future is dropped.
        let gone = tokio::time::timeout(Duration::from_secs(1), admission.admit(&org)).await;
        assert!(gone.is_err());
        assert_eq!(admission.queued(), 0);
        assert_eq!(admission.in_flight(), 1);
        drop(first);
        assert_eq!(admission.in_flight(), 0);
    }
}
