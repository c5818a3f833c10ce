//! Request-level limits of DESIGN.md §10, answered by the service with its
//! JSON errors: a request target over [`MAX_TARGET_BYTES`] → 414, a head
//! over [`MAX_HEAD_BYTES`] → 431, two `Authorization` headers → 400, and a
//! body that stalls longer than `limits.body_stall_timeout` → 408.
//!
//! These limits sit below the HTTP library's own (see `listener`), so that
//! it is the service that answers, inside the request's span.

use super::AppState;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Longest request target (path and query, or the absolute URL).
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// Longest request head: request line and every header line.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The middleware: checks the head, guards the body, answers 408 when the
/// body stalled (whatever the handler made of the cut-off body).
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = check_head(request.method().as_str(), request.uri(), request.headers()) {
        return e.into_response();
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let request = if request.body().is_end_stream() {
        request
    } else {
        let (timeout, flag) = (state.body_stall_timeout, Arc::clone(&stalled));
        request.map(|body| Body::new(StallGuard::new(body, timeout, flag)))
    };
    let response = next.run(request).await;
    if stalled.load(Ordering::Relaxed) {
        return ApiError::RequestTimeout.into_response();
    }
    response
}

/// The head rules, in the order they answer.
fn check_head(method: &str, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(ApiError::UriTooLong);
    }
    // "METHOD target HTTP/1.1\r\n", then "name: value\r\n" per header.
    let head = method.len()
        + target
        + 12
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head > MAX_HEAD_BYTES {
        return Err(ApiError::RequestHeaderFieldsTooLarge);
    }
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(ApiError::BadRequest("two Authorization headers".into()));
    }
    Ok(())
}

/// Why a guarded body ended early.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled")]
struct Stalled;

/// A request body that fails (and raises its flag) when no data arrives
/// for `timeout`; every frame restarts the timer.
struct StallGuard {
    body: Body,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    stalled: Arc<AtomicBool>,
}

impl StallGuard {
    fn new(body: Body, timeout: Duration, stalled: Arc<AtomicBool>) -> Self {
        Self {
            body,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            stalled,
        }
    }
}

impl HttpBody for StallGuard {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.timeout;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.stalled.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new(Stalled))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
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
    use axum::http::{HeaderValue, StatusCode};

    fn status(target: &str, headers: &[(&str, &str)]) -> Option<StatusCode> {
        let uri: Uri = target.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        check_head("GET", &uri, &map).err().map(|e| e.status())
    }

    #[test]
    fn head_rules() {
        let long = |n: usize| format!("/x?q={}", "a".repeat(n - 5));
        assert_eq!(status(&long(MAX_TARGET_BYTES), &[]), None);
        assert_eq!(
            status(&long(MAX_TARGET_BYTES + 1), &[]),
            Some(StatusCode::URI_TOO_LONG)
        );
        let big = "v".repeat(MAX_HEAD_BYTES);
        assert_eq!(
            status("/", &[("x-big", &big)]),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let fits = "v".repeat(MAX_HEAD_BYTES - 100);
        assert_eq!(status("/", &[("x-big", &fits)]), None);
        assert_eq!(
            status(
                "/",
                &[("authorization", "Bearer a"), ("authorization", "Bearer b")]
            ),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(status("/", &[("authorization", "Bearer a")]), None);
    }
}
