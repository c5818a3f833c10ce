//! Probes for load balancers and orchestrators.

use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;

/// `GET /health`: liveness; answers while the process runs, store or not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "live",
    responses((status = 204, description = "The process is running."))
)]
pub async fn live() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /health/ready`: readiness; 204 when the store answers, else the
/// store's error (503 `ServiceUnavailable` with `Retry-After` while it is
/// unreachable), so a balancer stops routing to a replica that cannot serve.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 204, description = "The store answers: route traffic here."),
        (status = 503, description = "The store cannot be reached (ServiceUnavailable).", body = crate::error::ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state.store.ping().await?;
    Ok(StatusCode::NO_CONTENT)
}
