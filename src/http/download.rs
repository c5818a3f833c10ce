//! `GET /library/components/analytics/download`: checks in contract order
//! (505 for HTTP/1.0, 401 by the extractor, then 403, then 422), then
//! admission (the rate limit, then a slot waited for: 429), then streams
//! the CSV.

mod admission;
pub(super) mod params;

pub use admission::{Admission, DownloadRate};

use super::extract::AnalyticsViewer;
use super::AppState;
use crate::domain::{DateRange, OrgId};
use crate::error::ApiError;
use crate::export::CsvEncoder;
use crate::store::RowStream;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Version};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

/// A request over HTTP/1.1 or later. Over HTTP/1.0 a response body without
/// a length ends when the connection closes, so a download cut short would
/// look complete: such requests are refused with 505.
pub struct Http11OrLater;

impl<S: Send + Sync> FromRequestParts<S> for Http11OrLater {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.version {
            Version::HTTP_09 | Version::HTTP_10 => Err(ApiError::HttpVersionNotSupported),
            _ => Ok(Self),
        }
    }
}

/// The download handler.
pub async fn download(
    _: Http11OrLater,
    State(state): State<AppState>,
    AnalyticsViewer { org }: AnalyticsViewer,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let range = params::parse(query.as_deref()).map_err(ApiError::InvalidDownload)?;
    let permit = state.downloads.admit(&org).await?;
    let rows = state.store.export(&org, range).await?;
    tracing::info!(
        start = %range.start(),
        end = %range.end(),
        in_flight = state.downloads.in_flight(),
        queued = state.downloads.queued(),
        "download started"
    );
    Ok(csv_response(&org, range, rows, permit))
}

fn csv_response(
    org: &OrgId,
    range: DateRange,
    rows: RowStream,
    permit: OwnedSemaphorePermit,
) -> Response {
    let mut encoder = CsvEncoder::new();
    let header_row = encoder.header();
    let org = org.clone();
    let csv = rows.map(move |batch| match batch {
        Ok(rows) => Ok::<Bytes, std::io::Error>(encoder.rows(&rows)),
        Err(e) => {
            // After the 200 the only honest signal left is to abort the
            // body, which every client reports as an error.
            tracing::error!(org = %org, cause = %e, "export failed mid-stream; aborting response");
            Err(std::io::Error::other("export aborted"))
        }
    });
    // The slot is freed as soon as the last row is encoded, before the
    // terminating chunk reaches the client, so a client that sends its next
    // request at once never finds its own finished download still counted.
    // A body dropped early (client gone) frees it by dropping `permit`.
    let release = futures_util::stream::once(async move {
        drop(permit);
        None
    })
    .filter_map(std::future::ready);
    let body = futures_util::stream::once(async move { Ok(header_row) })
        .chain(csv)
        .chain(release);
    let filename = format!(
        "ComponentsAnalytics_{}_{}.csv",
        file_stamp(&range.start().to_wire()),
        file_stamp(&range.end().to_wire())
    );
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| {
            HeaderValue::from_static("attachment; filename=\"ComponentsAnalytics.csv\"")
        });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `2024-01-01T00:00:00.000Z` → `20240101T000000000Z`: ASCII letters and
/// digits only, so the name is safe on every file system.
fn file_stamp(wire: &str) -> String {
    wire.chars()
        .filter(|c| !matches!(c, '-' | ':' | '.'))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_stamp_strips_separators() {
        assert_eq!(
            super::file_stamp("2024-01-01T00:00:00.000Z"),
            "20240101T000000000Z"
        );
    }
}
