//! Accepting and serving connections, with the connection hygiene of the
//! contract (DESIGN.md §10): at most `limits.max_connections` served at once
//! (more wait in the listen backlog), a request head must arrive within
//! `limits.header_read_timeout`, an idle keep-alive connection is closed
//! after `limits.idle_timeout`, one whose client takes none of its answer
//! for `limits.send_stall_timeout` is closed (freeing a download's slot),
//! and the HTTP library's own bare answers to unparseable requests are
//! replaced by the service's JSON errors.
//!
//! Written on hyper's connection API rather than `axum::serve` because the
//! head and idle timers must be separate: hyper's `header_read_timeout`
//! also runs while a keep-alive connection waits for its next request, so
//! it cannot give a 10 s head limit and a 60 s idle limit at once.

mod files;
mod io;
mod watchdog;

pub use files::{raise_open_file_limit, OpenFiles};

use crate::config::Limits;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;
use watchdog::{Activity, Tracked};

/// The largest request head the HTTP library buffers. Twice the service's
/// own head limit, so that heads between the two get the service's 431
/// from the middleware; anything larger is cut off by the library and its
/// bare answer replaced (see `io`).
const MAX_BUFFERED_HEAD: usize = 64 * 1024;

/// How long to pause accepting after the process ran out of file
/// descriptors, so the loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connection settings the accept loop needs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to receive a whole request head.
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
    /// Time an answer may wait for the client to take more bytes.
    pub send_stall_timeout: Duration,
}

impl From<&Limits> for ConnectionLimits {
    fn from(limits: &Limits) -> Self {
        Self {
            max_connections: limits.max_connections.max(1),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            send_stall_timeout: limits.send_stall_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, asks every connection to finish its current request, and
/// cuts whatever is still running after `grace` (an unfinished download
/// then ends without its terminating chunk, so clients see the cut).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    // Each connection is a descriptor: the soft limit is raised first (the
    // failure, logged there, leaves the limit as it was).
    let _ = raise_open_file_limit();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed; stop rather than spin
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down; letting in-flight requests finish"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("grace period over; cutting remaining connections");
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves one connection until it ends, its watchdog fires (slow head,
/// idle too long or a client that stopped reading: the socket is simply
/// closed, and an answer being sent is dropped with it), or shutdown has let its
/// last request finish.
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(io::GuardedIo::new(stream, Arc::clone(&activity)));
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // The connection counts as busy until the last byte of the answer
        // is written (or the answer is dropped), not just until the
        // handler returns.
        let in_flight = requests.request_started();
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked::new(body, in_flight))))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(MAX_BUFFERED_HEAD)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            expired = activity.expired(&limits) => {
                tracing::debug!(reason = expired.as_str(), "closing connection");
                return;
            }
            changed = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
