//! `POST /library/components/analytics/erasures` `{"userId": "…"}`: an
//! organization administrator erases a user of their organization (see
//! `docs/privacy.md`). Checks: 401 (download scope) → 403 (Account
//! Administrator or Co-Administrator of the token's organization) → 422
//! (body); answers `{"events": N}`, the events this request changed.

use super::extract::OrgAdministrator;
use super::json_body::{read_limited, string_field, FieldProblem};
use super::AppState;
use crate::domain::UserId;
use crate::error::{ApiError, ErrorDetail, ErrorEnvelope};
use axum::extract::{FromRequest, Request, State};
use axum::Json;
use serde::Serialize;

/// Largest erasure request body read; `{"userId": …}` needs far less.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The request body, for the OpenAPI document (parsed by [`ErasureRequest`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErasureBody {
    /// The user id to erase, as in the events' `user.id`.
    #[schema(rename = "userId")]
    user_id: String,
}

/// The answer: how many events the request pseudonymized.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureAnswer {
    /// 0 when the user was already erased or had no events.
    pub events: u64,
}

/// The erasure handler.
#[utoipa::path(
    post,
    path = crate::http::ERASURES_PATH,
    tag = "privacy",
    operation_id = "eraseUser",
    summary = "Erase a user",
    description = "For an Account Administrator or Co-Administrator of the token's organization. \
                   The user's events stay, under the pseudonym erased-<16 hex> with an empty email; \
                   later events for the user are pseudonymized on arrival. Idempotent.",
    request_body(content = ErasureBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Erased; `events` counts the events this request changed.", body = ErasureAnswer),
        (status = 400, description = "Malformed HTTP (BadRequest).", body = ErrorEnvelope),
        (status = 401, description = "No Authorization header (HeaderNotFound) or an unacceptable token (InvalidToken).", body = ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 403, description = "Not an organization administrator (InsufficientPermissions).", body = ErrorEnvelope),
        (status = 414, description = "Request target too long (UriTooLong).", body = ErrorEnvelope),
        (status = 422, description = "Not {\"userId\": \"...\"} (InvalidErasureRequest, one detail).", body = ErrorEnvelope),
        (status = 431, description = "Request head too large (RequestHeaderFieldsTooLarge).", body = ErrorEnvelope),
        (status = 500, description = "A bug (InternalServerError).", body = ErrorEnvelope),
        (status = 503, description = "The store cannot be reached (ServiceUnavailable); nothing changed.", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    admin: OrgAdministrator,
    ErasureRequest(user): ErasureRequest,
) -> Result<Json<ErasureAnswer>, ApiError> {
    let outcome = state
        .store
        .erase_user(&admin.org, &user, Some(&admin.user))
        .await?;
    // The pseudonym, never the erased id, goes to the log.
    tracing::info!(pseudonym = %outcome.pseudonym, events = outcome.events, "user erased");
    Ok(Json(ErasureAnswer {
        events: outcome.events,
    }))
}

/// The body's user id, parsed; every problem is a 422 detail.
pub struct ErasureRequest(pub UserId);

impl<S: Send + Sync> FromRequest<S> for ErasureRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| invalid(body_detail()))?;
        parse(&bytes).map(Self).map_err(invalid)
    }
}

fn invalid(detail: ErrorDetail) -> ApiError {
    ApiError::InvalidErasure(vec![detail])
}

fn body_detail() -> ErrorDetail {
    ErrorDetail {
        code: "InvalidValue",
        message: format!(
            "The request body must be a JSON object {{\"userId\": \"...\"}} of at most {MAX_BODY_BYTES} bytes."
        ),
        target: "body".into(),
    }
}

/// `{"userId": "…"}` → the user id. Unknown fields are ignored, as in
/// ingestion.
fn parse(bytes: &[u8]) -> Result<UserId, ErrorDetail> {
    let id = string_field(bytes, "userId").map_err(|problem| match problem {
        FieldProblem::Body => body_detail(),
        FieldProblem::Missing => ErrorDetail {
            code: "MissingRequiredParameter",
            message: "Required parameter is missing.".into(),
            target: "userId".into(),
        },
        FieldProblem::NotAString => bad_user_id(),
    })?;
    UserId::parse(id).map_err(|_| bad_user_id())
}

fn bad_user_id() -> ErrorDetail {
    ErrorDetail {
        code: "InvalidValue",
        message: format!(
            "Parameter 'userId' must be a string of 1 to {} characters without control characters.",
            UserId::MAX_CHARS
        ),
        target: "userId".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_a_user_id_or_one_detail() {
        assert_eq!(
            parse(br#"{"userId":"u-1","note":1}"#).unwrap().as_str(),
            "u-1"
        );
        let table: [(&[u8], &str, &str); 8] = [
            (b"", "InvalidValue", "body"),
            (b"not json", "InvalidValue", "body"),
            (b"[\"u-1\"]", "InvalidValue", "body"),
            (b"{}", "MissingRequiredParameter", "userId"),
            (br#"{"userId":null}"#, "MissingRequiredParameter", "userId"),
            (br#"{"userId":""}"#, "MissingRequiredParameter", "userId"),
            (br#"{"userId":42}"#, "InvalidValue", "userId"),
            (br#"{"userId":"a\u0000b"}"#, "InvalidValue", "userId"),
        ];
        for (body, code, target) in table {
            let detail = parse(body).unwrap_err();
            assert_eq!(
                (detail.code, detail.target.as_str()),
                (code, target),
                "{body:?}"
            );
        }
        let long = format!(r#"{{"userId":"{}"}}"#, "u".repeat(UserId::MAX_CHARS + 1));
        assert_eq!(parse(long.as_bytes()).unwrap_err().target, "userId");
    }
}
