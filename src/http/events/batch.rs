//! [`EventBatch`]: the ingestion body as validated events, or the
//! contract's refusal: 415 (media type or content coding), 413 (limits,
//! counted on the inflated bytes), 422 (every problem found).

use crate::domain::{Event, Problem};
use crate::error::ApiError;
use crate::http::AppState;
use crate::ingest::{self, BatchError, MAX_BODY_BYTES, MAX_EVENTS};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::io::Read;

/// A whole, valid ingestion batch.
pub struct EventBatch(pub Vec<Event>);

/// The two accepted body formats.
#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Ndjson,
}

impl Format {
    /// From `Content-Type`; anything else → 415.
    fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
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
}

/// The body's content coding (DESIGN §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
}

impl Coding {
    /// From `Content-Encoding`: none, `identity`, `gzip` (or its alias
    /// `x-gzip`); anything else, including lists of codings → 415.
    fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
        let Some(value) = values.next() else {
            return Ok(Coding::Identity);
        };
        if values.next().is_some() {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value = value.to_str().map_err(|_| ApiError::UnsupportedMediaType)?;
        match value.trim().to_ascii_lowercase().as_str() {
            "identity" => Ok(Coding::Identity),
            "gzip" | "x-gzip" => Ok(Coding::Gzip),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

impl FromRequest<AppState> for EventBatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let format = Format::of(&parts.headers)?;
        let coding = Coding::of(&parts.headers)?;
        // The limit holds for the bytes sent as well as for the inflated
        // ones: a compressed body over it is refused unread.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
        // Limited stops reading at the limit, whatever Content-Length claimed.
        let sent = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
            Err(e) => {
                // The client stopped sending (or sent broken chunking): nothing
                // was stored, and the answer may never arrive.
                tracing::debug!(error = %e, "request body could not be read");
                return Err(unreadable("The request body could not be read."));
            }
        };
        // Inflating and parsing up to 16 MiB is CPU work: keep it off the
        // async workers.
        tokio::task::spawn_blocking(move || {
            let body = match coding {
                Coding::Identity => sent,
                Coding::Gzip => inflate(&sent)?,
            };
            let events = match format {
                Format::Json => ingest::parse_json(&body),
                Format::Ndjson => ingest::parse_ndjson(&body),
            };
            events.map(EventBatch).map_err(|e| match e {
                BatchError::TooManyEvents(n) => {
                    ApiError::PayloadTooLarge(format!("{n} events, at most {MAX_EVENTS}"))
                }
                BatchError::Invalid(details) => ApiError::InvalidEvents(details),
            })
        })
        .await
        .map_err(|e| ApiError::Internal(format!("parser task failed: {e}")))?
    }
}

/// Inflates a gzip body, stopping one byte past the limit: a gzip bomb
/// costs at most [`MAX_BODY_BYTES`] of inflating before its 413.
fn inflate(compressed: &[u8]) -> Result<Bytes, ApiError> {
    let limit = MAX_BODY_BYTES as u64 + 1;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| unreadable("The request body is not valid gzip."))?;
    if out.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(out.into())
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("body over {MAX_BODY_BYTES} bytes"))
}

fn unreadable(message: &str) -> ApiError {
    ApiError::InvalidEvents(vec![Problem::new("InvalidBody", message, "body")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_codings() {
        let cases = [
            (None, Some(Coding::Identity)),
            (Some("identity"), Some(Coding::Identity)),
            (Some("gzip"), Some(Coding::Gzip)),
            (Some(" GZip "), Some(Coding::Gzip)),
            (Some("x-gzip"), Some(Coding::Gzip)),
            (Some("br"), None),
            (Some("deflate"), None),
            (Some("gzip, br"), None),
            (Some(""), None),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(v));
            }
            assert_eq!(Coding::of(&headers).ok(), expected, "{value:?}");
        }
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut bomb = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            bomb.write_all(&zeros)
                .unwrap_or_else(|_| unreachable!("writes to a Vec"));
        }
        let bomb = bomb
            .finish()
            .unwrap_or_else(|_| unreachable!("writes to a Vec"));
        assert!(
            bomb.len() < 1 << 20,
            "64 MiB of zeros compress to {} bytes",
            bomb.len()
        );
        assert!(matches!(inflate(&bomb), Err(ApiError::PayloadTooLarge(_))));
        assert!(matches!(
            inflate(b"not gzip"),
            Err(ApiError::InvalidEvents(_))
        ));
    }
}
