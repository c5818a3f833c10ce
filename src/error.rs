//! The API error type and its single mapping to HTTP.
//!
//! Policy: handlers and extractors return [`ApiError`]; this module alone
//! turns it into a status, headers and the contract's JSON envelope, and
//! logs it — once, here. A 5xx body never says anything internal; the log
//! line carries the cause.

use crate::store::StoreError;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The wire envelope: `{"error":{...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// `{"code","message","details"?}` of the contract.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `InvalidToken`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Per-problem details, only where the error has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<Vec<ErrorDetail>>,
}

/// The contract's per-problem detail: the domain's validation problem.
pub use crate::domain::Problem as ErrorDetail;

/// Every error the API can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header at all.
    #[error("authorization header missing")]
    HeaderNotFound,
    /// A token that is not acceptable; the reason is logged, never sent.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A login link's code that is not acceptable: forged, garbled,
    /// expired or already redeemed; the reason is logged, never sent.
    #[error("invalid login link: {0}")]
    InvalidLoginLink(String),
    /// Authenticated but not allowed.
    #[error("insufficient permissions")]
    InsufficientPermissions,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// Known route, wrong method; carries the `Allow` value.
    #[error("method not allowed")]
    MethodNotAllowed(Option<HeaderValue>),
    /// Ingestion body over the limits.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// Ingestion body that is neither JSON nor NDJSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Bad download parameters.
    #[error("invalid download request")]
    InvalidDownload(Vec<ErrorDetail>),
    /// Bad ingestion batch.
    #[error("invalid events request")]
    InvalidEvents(Vec<ErrorDetail>),
    /// Bad erasure request body.
    #[error("invalid erasure request")]
    InvalidErasure(Vec<ErrorDetail>),
    /// Bad login-link redemption body (not `{"code": "…"}`).
    #[error("invalid login link request")]
    InvalidLoginLinkRequest(Vec<ErrorDetail>),
    /// Over a rate or concurrency limit.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds to wait, for `Retry-After`.
        retry_after_secs: u64,
    },
    /// Malformed HTTP (bad framing, conflicting lengths) or two
    /// `Authorization` headers; the reason is logged, never sent.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request body stalled longer than the body timeout.
    #[error("request body not received in time")]
    RequestTimeout,
    /// The request target is over the service's URL limit.
    #[error("request target too long")]
    UriTooLong,
    /// The request head is over the service's header limit.
    #[error("request head too large")]
    RequestHeaderFieldsTooLarge,
    /// A download asked over HTTP/1.0, whose close-delimited body could be
    /// cut without the client noticing.
    #[error("download over HTTP/1.0")]
    HttpVersionNotSupported,
    /// The store cannot be reached, is full or read-only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        crate::metrics::store_error(e.kind());
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Seconds a client is asked to wait after a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    /// Status code of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::HeaderNotFound
            | ApiError::InvalidToken(_)
            | ApiError::InvalidLoginLink(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientPermissions => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidDownload(_)
            | ApiError::InvalidEvents(_)
            | ApiError::InvalidErasure(_)
            | ApiError::InvalidLoginLinkRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::RequestHeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::HttpVersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The contract's code and message for the error.
    pub fn code_and_message(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::HeaderNotFound => (
                "HeaderNotFound",
                "Header Authorization was not found in the request. Access denied.",
            ),
            ApiError::InvalidToken(_) => (
                "InvalidToken",
                "Access token is invalid, expired or lacks the required scope.",
            ),
            ApiError::InvalidLoginLink(_) => (
                "InvalidLoginLink",
                "The sign-in link is invalid, has expired or has already been used. Ask for a new one.",
            ),
            ApiError::InsufficientPermissions => (
                "InsufficientPermissions",
                "The user has insufficient permissions for the requested operation.",
            ),
            ApiError::NotFound => ("NotFound", "The requested resource was not found."),
            ApiError::MethodNotAllowed(_) => (
                "MethodNotAllowed",
                "The HTTP method is not allowed for this resource.",
            ),
            ApiError::PayloadTooLarge(_) => (
                "PayloadTooLarge",
                "The request body is too large: at most 10000 events and 16 MiB per request.",
            ),
            ApiError::UnsupportedMediaType => (
                "UnsupportedMediaType",
                "The request body must be application/json or application/x-ndjson, optionally gzip-compressed.",
            ),
            ApiError::InvalidDownload(_) => (
                "InvalidDownloadAnalyticsRequest",
                "Cannot perform operation.",
            ),
            ApiError::InvalidEvents(_) => {
                ("InvalidAnalyticsEventsRequest", "Cannot perform operation.")
            }
            ApiError::InvalidErasure(_) => ("InvalidErasureRequest", "Cannot perform operation."),
            ApiError::InvalidLoginLinkRequest(_) => {
                ("InvalidLoginLinkRequest", "Cannot perform operation.")
            }
            ApiError::TooManyRequests { .. } => (
                "TooManyRequests",
                "More requests were received than the subscription rate-limit allows.",
            ),
            ApiError::BadRequest(_) => (
                "BadRequest",
                "The request is not valid HTTP or carries conflicting headers.",
            ),
            ApiError::RequestTimeout => (
                "RequestTimeout",
                "The request body was not received in time.",
            ),
            ApiError::UriTooLong => (
                "UriTooLong",
                "The request URL is too long: at most 8192 bytes.",
            ),
            ApiError::RequestHeaderFieldsTooLarge => (
                "RequestHeaderFieldsTooLarge",
                "The request headers are too large: at most 32768 bytes in all.",
            ),
            ApiError::HttpVersionNotSupported => (
                "HttpVersionNotSupported",
                "Downloads need HTTP/1.1 or later, so that a cut download cannot look complete. Use HTTP/1.1 or later.",
            ),
            ApiError::Unavailable(_) => (
                "ServiceUnavailable",
                "The service is temporarily unavailable. Retry later.",
            ),
            ApiError::Internal(_) => (
                "InternalServerError",
                "The server encountered an unexpected error.",
            ),
        }
    }

    /// The wire body of the error.
    pub fn body(&self) -> ErrorBody {
        let (code, message) = self.code_and_message();
        let details = match self {
            ApiError::InvalidDownload(d)
            | ApiError::InvalidEvents(d)
            | ApiError::InvalidErasure(d)
            | ApiError::InvalidLoginLinkRequest(d) => Some(d.clone()),
            _ => None,
        };
        ErrorBody {
            code,
            message: message.to_owned(),
            details,
        }
    }

    fn log(&self) {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "store unavailable"),
            ApiError::InvalidToken(reason) => tracing::info!(%reason, "token refused"),
            ApiError::InvalidLoginLink(reason) => tracing::info!(%reason, "login link refused"),
            ApiError::BadRequest(reason) => tracing::info!(%reason, "bad request"),
            other => tracing::info!(
                status = other.status().as_u16(),
                code = other.code_and_message().0,
                "request refused"
            ),
        }
    }
}

impl ApiError {
    /// Whether the connection must close after this answer: the rest of
    /// what the client sent cannot be trusted to be framed right.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            ApiError::BadRequest(_)
                | ApiError::RequestTimeout
                | ApiError::UriTooLong
                | ApiError::RequestHeaderFieldsTooLarge
        )
    }

    /// The mapping itself: status, headers and the JSON envelope. Both ways
    /// out ([`IntoResponse`] and [`ApiError::http1_answer`]) go through it.
    fn response(&self) -> Response<Vec<u8>> {
        let body = serde_json::to_vec(&ErrorEnvelope { error: self.body() }).unwrap_or_default();
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            ApiError::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::HeaderNotFound => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InvalidLoginLink(_) => {
                // The credential refused is a login link's code, not a
                // bearer token: the challenge names that scheme.
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("LoginLink"),
                );
            }
            ApiError::MethodNotAllowed(Some(allow)) => {
                headers.insert(header::ALLOW, allow.clone());
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// The whole HTTP/1.1 answer as bytes, for the connection layer when
    /// the HTTP library refused a request before any handler ran (see
    /// `listener::io`): the same mapping and log line as every other
    /// error, written out by hand because no service runs. The library
    /// closes such a connection, so the answer always says so.
    pub fn http1_answer(&self) -> Vec<u8> {
        self.log();
        let (mut parts, body) = self.response().into_parts();
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        parts
            .headers
            .insert(header::CONTENT_LENGTH, body.len().into());
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &parts.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        self.response().map(Body::from)
    }
}
