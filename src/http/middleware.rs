//! The middleware stack, in one place: request ids (a client's own only
//! when it is short, visible ASCII), a tracing span per request, request
//! metrics, panics turned into the 500 envelope, and axum's bare 405s
//! turned into the JSON envelope.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::any::Any;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Header carrying the request id, taken from the client or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id echoed back and logged.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Wraps `router` with the service's middleware.
pub fn apply(router: Router) -> Router {
    router
        .layer(axum::middleware::map_response(method_not_allowed_envelope))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(
            ServiceBuilder::new()
                .map_request(drop_unusable_request_id)
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_span)
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

/// A client's request id is kept only when it is one value of at most
/// [`MAX_REQUEST_ID_LEN`] visible ASCII characters; otherwise it is removed
/// and a generated one takes its place (it would be echoed and logged).
fn drop_unusable_request_id(mut request: Request<Body>) -> Request<Body> {
    let ids = request.headers().get_all(REQUEST_ID);
    let mut values = ids.iter();
    let usable = matches!((values.next(), values.next()), (Some(v), None) if usable_request_id(v));
    if !usable {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

fn usable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// One span per request. `org` and `user` are recorded by the auth
/// extractor; tokens and emails are never recorded.
fn make_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = route(request);
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        org = tracing::field::Empty,
        user = tracing::field::Empty,
    )
}

/// The matched route template, for spans and metrics alike (never the raw
/// path, so labels stay few and carry no ids).
fn route(request: &Request<Body>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
}

/// Counts the request by route template and status and records its time
/// to the response head (a download's body streams on afterwards).
async fn record_metrics(request: Request<Body>, next: axum::middleware::Next) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = route(&request).to_owned();
    let response = next.run(request).await;
    crate::metrics::request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// axum answers a known path with a wrong method by an empty 405 carrying
/// `Allow`; give it the contract's body, keeping the header.
async fn method_not_allowed_envelope(response: Response<Body>) -> Response<Body> {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    ApiError::MethodNotAllowed(response.headers().get(header::ALLOW).cloned()).into_response()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::usable_request_id;
    use axum::http::HeaderValue;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        let ok = |s: &str| usable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("abc-123"));
        assert!(ok(&"a".repeat(128)));
        assert!(!ok(&"a".repeat(129)));
        assert!(!ok("has space"));
        assert!(!ok(""));
        assert!(!usable_request_id(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));
    }
}
