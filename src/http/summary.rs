//! `GET /library/components/analytics/summary`: the usage of a window at a
//! glance. Checks in the download's order (401, 403, then 422 with the
//! download's error body); then one store call and JSON.

mod params;

use super::audit::{Read, ReadAudit};
use super::extract::OrgViewer;
use super::AppState;
use crate::domain::Buckets;
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::openapi::Timestamp;
use crate::store::{KindCounts, Summary};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The summary's query parameters, for the OpenAPI document only: the
/// handler reads the raw query string (see `params`), so that every
/// problem is reported the way the download reports it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)] // wire names; documentation only
pub struct SummaryQuery {
    /// Start of the window (inclusive).
    #[param(value_type = Timestamp, example = "2024-01-01T00:00:00.000Z")]
    startDate: String,
    /// End of the window (exclusive), later than `startDate`.
    #[param(value_type = Timestamp, example = "2024-02-01T00:00:00.000Z")]
    endDate: String,
    /// Bucket width: `hour`, `day` (default), `week` (ISO, from Monday) or `month`.
    #[param(required = false, example = "day")]
    interval: Option<String>,
}

/// The summary handler.
#[utoipa::path(
    get,
    path = crate::http::SUMMARY_PATH,
    tag = "analytics",
    operation_id = "summarizeAnalytics",
    summary = "An organization's usage in a time window at a glance",
    description = "Same authentication, authorization and window rules as the download. Events per \
                   UTC bucket and type (gapless, aligned; at most 5000 buckets), totals with distinct \
                   users and components, and the top 10 components and users.",
    params(SummaryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary.", body = SummaryBody),
        (status = 401, description = "No Authorization header (HeaderNotFound) or an unacceptable token (InvalidToken).", body = ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 403, description = "The user may not view this organization's analytics (InsufficientPermissions).", body = ErrorEnvelope),
        (status = 422, description = "Missing or invalid startDate/endDate/interval, or more than 5000 buckets (InvalidDownloadAnalyticsRequest, with details).", body = ErrorEnvelope),
        (status = 503, description = "The store or the issuer's keys cannot be reached (ServiceUnavailable).", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    OrgViewer { org, user }: OrgViewer,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let buckets = params::parse(query.as_deref()).map_err(ApiError::InvalidDownload)?;
    let audit = ReadAudit::start(
        state.store.clone(),
        org.clone(),
        user,
        buckets.range(),
        Read::Summary,
    );
    let summary = state
        .store
        .summary(&org, &buckets)
        .await
        .inspect_err(|_| audit.failed())?;
    let t = &summary.totals;
    let events = t.view + t.download + t.place;
    let body = serde_json::to_vec(&SummaryBody::new(&buckets, summary))
        .map_err(|e| ApiError::Internal(format!("summary encoding: {e}")))
        .inspect_err(|_| audit.failed())?;
    // The trail counts the events the summary covers as its rows.
    audit.completed(events, body.len() as u64);
    Ok((
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response())
}

/// The wire form (see `docs/api.md`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryBody {
    start_date: String,
    end_date: String,
    interval: &'static str,
    totals: Totals,
    buckets: Vec<Bucket>,
    top_components: Vec<Top>,
    top_users: Vec<Top>,
}

/// Events by type.
#[derive(Serialize, utoipa::ToSchema)]
struct Counts {
    #[serde(rename = "View")]
    view: u64,
    #[serde(rename = "Download")]
    download: u64,
    #[serde(rename = "Place")]
    place: u64,
}

impl From<KindCounts> for Counts {
    fn from(c: KindCounts) -> Self {
        Self {
            view: c.view,
            download: c.download,
            place: c.place,
        }
    }
}

/// Events by type over the window, distinct users and components.
#[derive(Serialize, utoipa::ToSchema)]
struct Totals {
    #[serde(flatten)]
    counts: Counts,
    users: u64,
    components: u64,
}

/// One bucket: its aligned start and its events by type.
#[derive(Serialize, utoipa::ToSchema)]
struct Bucket {
    start: String,
    #[serde(flatten)]
    counts: Counts,
}

/// A top-list entry: `name` for components, `email` for users.
#[derive(Serialize, utoipa::ToSchema)]
struct Top {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    events: u64,
}

impl SummaryBody {
    fn new(buckets: &Buckets, s: Summary) -> Self {
        Self {
            start_date: buckets.range().start().to_wire(),
            end_date: buckets.range().end().to_wire(),
            interval: buckets.interval().as_str(),
            totals: Totals {
                counts: s.totals.into(),
                users: s.users,
                components: s.components,
            },
            buckets: s
                .buckets
                .into_iter()
                .map(|b| Bucket {
                    start: b.start.to_wire(),
                    counts: b.counts.into(),
                })
                .collect(),
            top_components: s
                .top_components
                .into_iter()
                .map(|c| Top {
                    id: c.id,
                    name: Some(c.name),
                    email: None,
                    events: c.events,
                })
                .collect(),
            top_users: s
                .top_users
                .into_iter()
                .map(|u| Top {
                    id: u.id,
                    name: None,
                    email: Some(u.email),
                    events: u.events,
                })
                .collect(),
        }
    }
}
