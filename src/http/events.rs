//! `POST /library/components/analytics/events`: a trusted service reports
//! usage. Checks: 401 (ingest scope) → 415 → 413 → 422; the 200 is sent only
//! after the batch is committed.

use super::extract::EventReporter;
use super::AppState;
use crate::error::{ApiError, ErrorEnvelope};
#[allow(unused_imports)] // named by the OpenAPI annotation
use crate::http::openapi::EventsBatch;
use crate::ingest::{self, BatchError, MAX_BODY_BYTES, MAX_EVENTS};
use crate::store::IngestOutcome;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The two accepted body formats.
#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Ndjson,
}

/// The ingestion handler.
#[utoipa::path(
    post,
    path = crate::http::EVENTS_PATH,
    tag = "analytics",
    operation_id = "reportEvents",
    summary = "Report usage events",
    description = "For the trusted component-library backend (scope analytics:write). The batch is \
                   committed atomically before the 200; events whose id is already stored count as \
                   duplicates. With application/x-ndjson the body is one Event object per line.",
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
        (status = 413, description = "Over 10000 events or 16 MiB (PayloadTooLarge).", body = ErrorEnvelope),
        (status = 415, description = "Neither application/json nor application/x-ndjson (UnsupportedMediaType).", body = ErrorEnvelope),
        (status = 422, description = "Malformed body or invalid events (InvalidAnalyticsEventsRequest, a detail per problem).", body = ErrorEnvelope),
        (status = 503, description = "The store or the issuer's keys cannot be reached (ServiceUnavailable); nothing was stored.", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    EventReporter(caller): EventReporter,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestOutcome>, ApiError> {
    let format = format(&headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    // Limited stops reading at the limit, whatever Content-Length claimed.
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            // The client stopped sending (or sent broken chunking): nothing
            // was stored, and the answer may never arrive.
            tracing::debug!(error = %e, "request body could not be read");
            return Err(ApiError::InvalidEvents(vec![crate::error::ErrorDetail {
                code: "InvalidBody",
                message: "The request body could not be read.".into(),
                target: "body".into(),
            }]));
        }
    };
    // Parsing up to 16 MiB is CPU work: keep it off the async workers.
    let events = tokio::task::spawn_blocking(move || match format {
        Format::Json => ingest::parse_json(&bytes),
        Format::Ndjson => ingest::parse_ndjson(&bytes),
    })
    .await
    .map_err(|e| ApiError::Internal(format!("parser task failed: {e}")))?
    .map_err(|e| match e {
        BatchError::TooManyEvents(n) => {
            ApiError::PayloadTooLarge(format!("{n} events, at most {MAX_EVENTS}"))
        }
        BatchError::Invalid(details) => ApiError::InvalidEvents(details),
    })?;
    let count = events.len();
    let outcome = state.store.ingest(events).await?;
    crate::metrics::ingested(&outcome);
    tracing::info!(reporter = %caller.user, count, accepted = outcome.accepted, duplicates = outcome.duplicates, "events ingested");
    Ok(Json(outcome))
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("body over {MAX_BODY_BYTES} bytes"))
}

fn format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(Format::Ndjson),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}
