//! `GET /library/components/analytics/download`: checks in contract order
//! (505 for HTTP/1.0, 401 by the extractor, then 403, then 422), then
//! admission (the rate limit, then a slot waited for: 429), then streams
//! the CSV.

mod admission;
pub(super) mod params;

pub use admission::{Admission, DownloadRate};
pub use params::DownloadWindow;

use super::audit::{Read, ReadAudit};
use super::extract::OrgViewer;
use super::AppState;
use crate::domain::{DateRange, OrgId};
use crate::error::{ApiError, ErrorEnvelope};
use crate::export::CsvWriter;
#[allow(unused_imports)] // named by the OpenAPI annotation
use crate::http::openapi::Timestamp;
use crate::store::Export;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
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

/// The query of the download, as documented; it is read by hand from the
/// raw query string (see `params`), so that every problem is reported the
/// way the Library API reports it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)] // wire names; documentation only
pub struct DownloadQuery {
    /// Start of the window (inclusive).
    #[param(value_type = Timestamp, example = "2024-01-01T00:00:00.000Z")]
    startDate: String,
    /// End of the window (exclusive), later than `startDate`.
    #[param(value_type = Timestamp, example = "2024-02-01T00:00:00.000Z")]
    endDate: String,
}

/// The download handler.
#[utoipa::path(
    get,
    path = crate::http::DOWNLOAD_PATH,
    tag = "analytics",
    operation_id = "downloadAnalytics",
    summary = "Download an organization's usage in a time window as CSV",
    description = "The caller's organization (token claim) and a role or permission that allows \
                   viewing analytics are required. Rows are ordered by timestamp, then event id.",
    params(DownloadQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The CSV file, streamed.", content_type = "text/csv; charset=utf-8", body = String,
            headers(("Content-Disposition" = String, description = "attachment; filename=\"ComponentsAnalytics_<start>_<end>.csv\""))),
        (status = 401, description = "No Authorization header (HeaderNotFound) or an unacceptable token (InvalidToken).", body = ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 403, description = "The user may not view this organization's analytics (InsufficientPermissions).", body = ErrorEnvelope),
        (status = 422, description = "Missing or invalid startDate/endDate (InvalidDownloadAnalyticsRequest, with details).", body = ErrorEnvelope),
        (status = 429, description = "Over the organization's download rate or every download slot busy (TooManyRequests).", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store or the issuer's keys cannot be reached (ServiceUnavailable).", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn download(
    _: Http11OrLater,
    State(state): State<AppState>,
    OrgViewer { org, user }: OrgViewer,
    DownloadWindow(range): DownloadWindow,
) -> Result<Response, ApiError> {
    let permit = state.downloads.admit(&org).await?;
    let audit = ReadAudit::start(
        state.store.clone(),
        org.clone(),
        user,
        range,
        Read::Download,
    );
    let export = state
        .store
        .export(&org, range)
        .await
        .inspect_err(|_| audit.failed())?;
    tracing::info!(
        start = %range.start(),
        end = %range.end(),
        in_flight = state.downloads.in_flight(),
        queued = state.downloads.queued(),
        "download started"
    );
    Ok(csv_response(&org, range, export, permit, audit))
}

fn csv_response(
    org: &OrgId,
    range: DateRange,
    export: Export,
    permit: OwnedSemaphorePermit,
    audit: ReadAudit,
) -> Response {
    let mut writer = CsvWriter::new(export.dictionary);
    let header_row = writer.header();
    let org = org.clone();
    // Every chunk is counted once, where it is made: for the audit record
    // and the export metrics alike (`ReadAudit::sent`).
    let header_audit = audit.clone();
    let header = futures_util::stream::once(async move {
        header_audit.sent(0, header_row.len());
        Ok(header_row)
    });
    let rows_audit = audit.clone();
    let csv = export.rows.map(move |batch| {
        let chunk = batch.map_err(|e| e.to_string()).and_then(|rows| {
            let chunk = writer.rows(&rows).map_err(|e| e.to_string())?;
            rows_audit.sent(rows.len(), chunk.len());
            Ok(chunk)
        });
        chunk.map_err(|cause| {
            // After the 200 the only honest signal left is to abort the
            // body, which every client reports as an error.
            rows_audit.failed();
            tracing::error!(org = %org, %cause, "export failed mid-stream; aborting response");
            std::io::Error::other("export aborted")
        })
    });
    // The slot is freed as soon as the last row is encoded, before the
    // terminating chunk reaches the client, so a client that sends its next
    // request at once never finds its own finished download still counted.
    // A body dropped early (client gone) frees it by dropping `permit`, and
    // its record stays `aborted`.
    let end = futures_util::stream::once(async move {
        drop(permit);
        audit.ended();
        None
    })
    .filter_map(std::future::ready);
    let body = header.chain(csv).chain(end);
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
