//! Probes for load balancers and orchestrators.

use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;

/// `GET /health`: liveness; answers while the process runs, store or not.
pub async fn live() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /health/ready`: readiness; 204 when the store answers, else the
/// store's error (503 `ServiceUnavailable` with `Retry-After` while it is
/// unreachable), so a balancer stops routing to a replica that cannot serve.
pub async fn ready(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state.store.ping().await?;
    Ok(StatusCode::NO_CONTENT)
}
