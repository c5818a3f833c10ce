//! Answers for everything outside the routes, in the error envelope.

use crate::error::ApiError;
use axum::http::StatusCode;

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// `GET /health`: liveness for load balancers; does not touch the store.
pub async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}
