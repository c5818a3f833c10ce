//! Request-level limits of DESIGN.md §10, answered by the service with its
//! JSON errors: a request target over [`MAX_TARGET_BYTES`] → 414, a head
//! over [`MAX_HEAD_BYTES`] → 431, two `Authorization` headers → 400, and a
//! body that stalls longer than `limits.body_stall_timeout` → 408.
//!
//! These limits sit below the HTTP library's own (see `listener`), so that
//! it is the service that answers, inside the request's span.

use super::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tower_http::timeout::{TimeoutBody, TimeoutError};

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
        let flag = Arc::clone(&stalled);
        request.map(|body| {
            // Each read may wait `body_stall_timeout` for its next frame;
            // a stall fails the read and raises the flag.
            let guarded = TimeoutBody::new(state.body_stall_timeout, body).map_err(move |e| {
                if e.is::<TimeoutError>() {
                    flag.store(true, Ordering::Relaxed);
                }
                e
            });
            Body::new(guarded)
        })
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
