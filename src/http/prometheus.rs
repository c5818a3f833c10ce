//! `GET /metrics`: every series of [`crate::metrics`] in the Prometheus text
//! format, with the download slots, their queue, the store's pool and the
//! log lines lost by the log sink sampled at the scrape.

use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain; version=0.0.4",
        body = String
    ))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::downloads(state.downloads.in_flight(), state.downloads.queued());
    crate::metrics::log_lines_lost(crate::telemetry::sink::lost_lines());
    if let Some(pool) = state.store.pool_use() {
        crate::metrics::store_pool(pool.in_use, pool.idle, pool.max);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
