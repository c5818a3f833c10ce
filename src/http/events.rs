//! `POST /library/components/analytics/events`: a trusted service reports
//! usage. Checks: 401 (ingest scope) by [`EventReporter`], then 415 → 413 →
//! 422 by [`EventBatch`], then 403 for events of an organization the token
//! is not bound to; the 200 is sent only after the batch is committed.

mod batch;

pub use batch::EventBatch;

use super::extract::EventReporter;
use super::AppState;
use crate::error::{ApiError, ErrorEnvelope};
#[allow(unused_imports)] // named by the OpenAPI annotation
use crate::http::openapi::EventsBatch;
use crate::store::IngestOutcome;
use axum::extract::State;
use axum::Json;

/// The ingestion handler.
#[utoipa::path(
    post,
    path = crate::http::EVENTS_PATH,
    tag = "analytics",
    operation_id = "reportEvents",
    summary = "Report usage events",
    description = "For the trusted component-library backend (scope analytics:write). The batch is \
                   committed atomically before the 200. An event whose id is already stored (or came earlier in \
                   the batch) with the same facts is a duplicate and changes nothing; with other facts it is \
                   a conflict, not stored, and named in `conflicting` (at most 100). A token with an `org` \
                   claim reports that organization's events only. With application/x-ndjson the body is \
                   one Event object per line; Content-Encoding gzip is accepted.",
    request_body(
        description = "At most 10000 events and 16 MiB.",
        content(
            (EventsBatch = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed.", body = IngestOutcome),
        (status = 401, description = "No Authorization header (HeaderNotFound) or an unacceptable token (InvalidToken).", body = ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 403, description = "The token is bound to an organization and the batch names another (InsufficientPermissions); nothing was stored.", body = ErrorEnvelope),
        (status = 413, description = "Over 10000 events or 16 MiB, sent or inflated (PayloadTooLarge).", body = ErrorEnvelope),
        (status = 415, description = "Neither application/json nor application/x-ndjson, or a content coding other than gzip (UnsupportedMediaType).", body = ErrorEnvelope),
        (status = 422, description = "Malformed body, invalid events, U+0000 in a string or a repeated key (InvalidAnalyticsEventsRequest, a detail per problem).", body = ErrorEnvelope),
        (status = 503, description = "The store or the issuer's keys cannot be reached (ServiceUnavailable); nothing was stored.", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    reporter: EventReporter,
    EventBatch(events): EventBatch,
) -> Result<Json<IngestOutcome>, ApiError> {
    reporter.may_report(&events)?;
    let count = events.len();
    let outcome = state.store.ingest(events).await?;
    crate::metrics::ingested(&outcome);
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
