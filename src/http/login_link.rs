//! `POST /auth/login-link` `{"code": "…"}` (local mode only): the admin
//! page redeems the one-time code of a login link for an access token.
//!
//! The code travels in a JSON body, never in the URL, so it reaches no
//! access log; it is never logged here either. Checks, in order: 422 (the
//! body is not `{"code": "…"}`), 401 `InvalidLoginLink` (the code is not one
//! of this service's live sign-in codes, or it was redeemed before — across
//! every replica sharing the store). The answer is the same kind of access
//! token `catalytics token` mints for that organization and user;
//! authorization (View Analytics) is checked when it is used, as always.

use super::json_body::{read_limited, string_field, FieldProblem};
use super::AppState;
use crate::error::{ApiError, ErrorDetail, ErrorEnvelope};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Largest body read; a code is about 500 bytes.
const MAX_BODY_BYTES: usize = 8 * 1024;

/// The request body, for the OpenAPI document (parsed by [`LoginLinkRequest`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LoginLinkBody {
    /// The code from the login link's fragment (`#code=…`).
    code: String,
}

/// The answer: an access token for the summary and the download.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedIn {
    /// A local-mode access token with the download scope, for the link's
    /// organization and user.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the token lasts (the link's session length).
    pub expires_in: u64,
}

/// The redemption handler.
#[utoipa::path(
    post,
    path = crate::http::LOGIN_LINK_PATH,
    tag = "local issuer",
    operation_id = "redeemLoginLink",
    summary = "Redeem a login link",
    description = "Local mode only (404 in issuer mode). Exchanges the one-time code of a link printed by \
                   `catalytics login-link` or `catalytics demo` for an access token. Each code is redeemed once; \
                   the code goes in the body, never in the URL.",
    request_body(content = LoginLinkBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; the answer is not to be cached.", body = SignedIn,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "The code is forged, garbled, expired or already redeemed (InvalidLoginLink).", body = ErrorEnvelope,
            headers(("WWW-Authenticate" = String, description = "LoginLink"))),
        (status = 404, description = "Issuer mode: there are no login links (NotFound).", body = ErrorEnvelope),
        (status = 422, description = "Not {\"code\": \"...\"} (InvalidLoginLinkRequest, one detail).", body = ErrorEnvelope),
        (status = 503, description = "The store cannot be reached (ServiceUnavailable); the code is not used up.", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn redeem(
    State(state): State<AppState>,
    LoginLinkRequest(code): LoginLinkRequest,
) -> Result<Response, ApiError> {
    let issuer = state.local_issuer.as_ref().ok_or(ApiError::NotFound)?;
    let code = issuer
        .verify_login_code(&code)
        .map_err(|e| ApiError::InvalidLoginLink(e.to_string()))?;
    let span = tracing::Span::current();
    span.record("user", code.user.as_str());
    span.record("org", code.org.as_str());
    if !state
        .store
        .redeem_login_code(&code.id, code.valid_until)
        .await?
    {
        return Err(ApiError::InvalidLoginLink("already redeemed".into()));
    }
    let session = code.session(&state.verifier.settings().download_scope);
    let access_token = issuer
        .mint(&session)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!("signed in through a login link");
    let answer = SignedIn {
        access_token,
        token_type: "Bearer",
        expires_in: session.ttl.as_secs(),
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(answer),
    )
        .into_response())
}

/// The body's code, still unchecked; a body that is not `{"code": "…"}` is
/// a 422 with one detail.
pub struct LoginLinkRequest(pub String);

impl<S: Send + Sync> FromRequest<S> for LoginLinkRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|problem| invalid(detail(problem)))?;
        string_field(&bytes, "code")
            .map(Self)
            .map_err(|problem| invalid(detail(problem)))
    }
}

fn invalid(detail: ErrorDetail) -> ApiError {
    ApiError::InvalidLoginLinkRequest(vec![detail])
}

/// The 422 detail of each way the body can be wrong.
fn detail(problem: FieldProblem) -> ErrorDetail {
    match problem {
        FieldProblem::Body => ErrorDetail {
            code: "InvalidValue",
            message: format!(
                "The request body must be a JSON object {{\"code\": \"...\"}} of at most {MAX_BODY_BYTES} bytes."
            ),
            target: "body".into(),
        },
        FieldProblem::Missing => ErrorDetail {
            code: "MissingRequiredParameter",
            message: "Required parameter is missing.".into(),
            target: "code".into(),
        },
        FieldProblem::NotAString => ErrorDetail {
            code: "InvalidValue",
            message: "Parameter 'code' must be a string: the code from the login link.".into(),
            target: "code".into(),
        },
    }
}
