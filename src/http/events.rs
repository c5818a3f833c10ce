//! `POST /library/components/analytics/events`: a trusted service reports
//! usage. Checks: 401 (ingest scope) by [`EventReporter`], then 415 → 413 →
//! 422 by [`EventBatch`], then 403 for events of an organization the token
//! is not bound to; the 200 is sent only after the batch is committed.

mod batch;

pub use batch::EventBatch;

use super::extract::EventReporter;
use super::AppState;
use crate::error::ApiError;
use crate::store::IngestOutcome;
use axum::extract::State;
use axum::Json;

/// The ingestion handler.
pub async fn report(
    State(state): State<AppState>,
    reporter: EventReporter,
    EventBatch(events): EventBatch,
) -> Result<Json<IngestOutcome>, ApiError> {
    reporter.may_report(&events)?;
    let count = events.len();
    let outcome = state.store.ingest(events).await?;
    tracing::info!(
        reporter = %reporter.0.user,
        count,
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        conflicts = outcome.conflicts,
        "events ingested"
    );
    if outcome.conflicts > 0 {
        tracing::warn!(
            conflicts = outcome.conflicts,
            "events whose id is stored with other facts were not stored"
        );
    }
    Ok(Json(outcome))
}
