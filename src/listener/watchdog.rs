//! Per-connection timers: how long a connection may take to send a request
//! head, and how long it may sit idle between requests.
//!
//! The connection's reads and requests update an [`Activity`]; the
//! connection task races its HTTP work against [`Activity::expired`], which
//! completes when the deadline of the current phase has passed:
//! - waiting for the first head of a new connection, or a head whose first
//!   byte has arrived: `header_read_timeout` from the accept or that byte;
//! - idle after a finished request: `idle_timeout` from its end;
//! - a request in flight: no deadline while its answer flows (the request
//!   body has its own stall timer, see `http::limits`), but once a write
//!   to the socket could not proceed (the client reads nothing),
//!   `send_stall_timeout` from that moment unless a write proceeds again.

use super::ConnectionLimits;
use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection was closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The request head did not arrive in time.
    SlowHead,
    /// The connection stayed idle too long.
    Idle,
    /// The client took none of the answer for too long.
    StalledSend,
}

impl Expired {
    /// For log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::SlowHead => "request head not received in time",
            Expired::Idle => "idle keep-alive connection timed out",
            Expired::StalledSend => "client stopped reading the answer",
        }
    }
}

/// What the connection is doing, as far as the timers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted or idle, and the first byte of a head arrived at `since`
    /// (for a fresh connection: accepted at `since`).
    AwaitingHead { since: Instant },
    /// Between requests since `since`, no byte of the next head yet.
    Idle { since: Instant },
    /// `n` requests being answered.
    Busy { n: usize },
}

impl Phase {
    /// When the phase's time is up, and what that means.
    fn deadline(self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        match self {
            Phase::AwaitingHead { since } => {
                Some((since + limits.header_read_timeout, Expired::SlowHead))
            }
            Phase::Idle { since } => Some((since + limits.idle_timeout, Expired::Idle)),
            Phase::Busy { .. } => None,
        }
    }
}

/// Shared between a connection's IO, its requests and its watchdog.
pub struct Activity {
    phase: Mutex<Phase>,
    /// Since when a write to the socket has been waiting for room, if one
    /// is.
    send_blocked: Mutex<Option<Instant>>,
    changed: Notify,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            phase: Mutex::new(Phase::AwaitingHead {
                since: Instant::now(),
            }),
            send_blocked: Mutex::new(None),
            changed: Notify::new(),
        }
    }
}

impl Activity {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A poisoned lock only means another thread panicked mid-update of
        // a plain `Copy` value; the value is still usable.
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send_blocked(&self) -> MutexGuard<'_, Option<Instant>> {
        self.send_blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A write found the socket full (the client is not reading): starts
    /// the send-stall timer unless it runs already.
    pub fn send_waiting(&self) {
        let mut blocked = self.send_blocked();
        if blocked.is_none() {
            *blocked = Some(Instant::now());
            drop(blocked);
            self.changed.notify_one();
        }
    }

    /// A write went through: the client reads again.
    pub fn sent(&self) {
        self.send_blocked().take();
    }

    /// When the current phase's time is up, and what that means: a write
    /// waiting for the client counts while a request is answered.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        let phase = *self.phase();
        match (phase, *self.send_blocked()) {
            (Phase::Busy { .. }, Some(since)) => {
                Some((since + limits.send_stall_timeout, Expired::StalledSend))
            }
            _ => phase.deadline(limits),
        }
    }

    /// Bytes arrived from the client: on an idle connection they start the
    /// next head, whose timer starts now.
    pub fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::AwaitingHead {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A whole head arrived and its request is being answered; the
    /// returned mark ends the request when dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy { n } => Phase::Busy { n: n + 1 },
            _ => Phase::Busy { n: 1 },
        };
        drop(phase);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    fn request_finished(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy { n } if n > 1 => Phase::Busy { n: n - 1 },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        };
        drop(phase);
        self.changed.notify_one();
    }

    /// Completes once the current phase's deadline has passed.
    pub async fn expired(&self, limits: &ConnectionLimits) -> Expired {
        loop {
            let deadline = self.deadline(limits);
            match deadline {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// A request being answered; dropping it marks the request finished.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl Tracked {
    /// Ties `body` to `in_flight`.
    pub fn new(body: Body, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 10,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_stall_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn each_phase_has_its_deadline() {
        let t = Instant::now();
        let l = limits();
        assert_eq!(
            Phase::AwaitingHead { since: t }.deadline(&l),
            Some((t + Duration::from_secs(10), Expired::SlowHead))
        );
        assert_eq!(
            Phase::Idle { since: t }.deadline(&l),
            Some((t + Duration::from_secs(60), Expired::Idle))
        );
        assert_eq!(Phase::Busy { n: 1 }.deadline(&l), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_move_the_connection_between_phases() {
        let activity = Arc::new(Activity::default());
        let first = activity.request_started();
        let second = activity.request_started();
        drop(first);
        assert_eq!(*activity.phase(), Phase::Busy { n: 1 });
        activity.bytes_read(); // body bytes while busy change nothing
        assert_eq!(*activity.phase(), Phase::Busy { n: 1 });
        drop(second);
        assert!(matches!(*activity.phase(), Phase::Idle { .. }));
        activity.bytes_read();
        assert!(matches!(*activity.phase(), Phase::AwaitingHead { .. }));
        let started = Instant::now();
        assert_eq!(activity.expired(&limits()).await, Expired::SlowHead);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_the_client_does_not_take_expires_unless_it_moves_again() {
        let activity = Arc::new(Activity::default());
        let request = activity.request_started();
        activity.send_waiting();
        tokio::time::sleep(Duration::from_secs(20)).await;
        activity.sent(); // the client read a little
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(activity.deadline(&limits()), None, "flowing: no deadline");
        let started = Instant::now();
        activity.send_waiting();
        assert_eq!(activity.expired(&limits()).await, Expired::StalledSend);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        drop(request);
        // Between requests the idle timer applies, not the send timer.
        assert!(matches!(
            activity.deadline(&limits()),
            Some((_, Expired::Idle))
        ));
    }
}
