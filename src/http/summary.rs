//! `GET /library/components/analytics/summary`: the usage of a window at a
//! glance. Checks in the download's order (401, 403, then 422 with the
//! download's error body); then one store call and JSON.

mod params;

use super::extract::AnalyticsViewer;
use super::AppState;
use crate::domain::Buckets;
use crate::error::ApiError;
use crate::store::{KindCounts, Summary};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The summary handler.
pub async fn summary(
    State(state): State<AppState>,
    AnalyticsViewer { org }: AnalyticsViewer,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let buckets = params::parse(query.as_deref()).map_err(ApiError::InvalidDownload)?;
    let summary = state.store.summary(&org, &buckets).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(SummaryBody::new(&buckets, &summary)),
    )
        .into_response())
}

/// The wire form (see `docs/api.md`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryBody<'a> {
    start_date: String,
    end_date: String,
    interval: &'static str,
    totals: Totals,
    buckets: Vec<Bucket>,
    top_components: Vec<Top<'a>>,
    top_users: Vec<Top<'a>>,
}

#[derive(Serialize)]
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

#[derive(Serialize)]
struct Totals {
    #[serde(flatten)]
    counts: Counts,
    users: u64,
    components: u64,
}

#[derive(Serialize)]
struct Bucket {
    start: String,
    #[serde(flatten)]
    counts: Counts,
}

/// A top-list entry: `name` for components, `email` for users.
#[derive(Serialize)]
struct Top<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    events: u64,
}

impl<'a> SummaryBody<'a> {
    fn new(buckets: &Buckets, s: &'a Summary) -> Self {
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
                .iter()
                .map(|b| Bucket {
                    start: b.start.to_wire(),
                    counts: b.counts.into(),
                })
                .collect(),
            top_components: s
                .top_components
                .iter()
                .map(|c| Top {
                    id: &c.id,
                    name: Some(&c.name),
                    email: None,
                    events: c.events,
                })
                .collect(),
            top_users: s
                .top_users
                .iter()
                .map(|u| Top {
                    id: &u.id,
                    name: None,
                    email: Some(&u.email),
                    events: u.events,
                })
                .collect(),
        }
    }
}
