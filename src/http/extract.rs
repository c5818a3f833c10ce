//! Authentication as extractors: a handler that takes [`AnalyticsReader`]
//! (or [`EventReporter`]) only runs for a verified token with that scope.

use super::AppState;
use crate::auth::{AuthError, Identity};
use crate::domain::OrgId;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// A caller whose token carries the download scope.
pub struct AnalyticsReader(pub Identity);

/// A caller allowed to read an organization's analytics: a token with the
/// download scope (else 401) whose user holds a role or permission in the
/// token's organization (else 403).
pub struct AnalyticsViewer {
    /// The organization whose analytics may be read.
    pub org: OrgId,
}

/// A caller whose token carries the ingest scope.
pub struct EventReporter(pub Identity);

impl FromRequestParts<AppState> for AnalyticsReader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let scope = state.verifier.settings().download_scope.clone();
        authenticate(parts, state, &scope).await.map(Self)
    }
}

impl FromRequestParts<AppState> for AnalyticsViewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AnalyticsReader(caller) = AnalyticsReader::from_request_parts(parts, state).await?;
        let org = caller.org.ok_or(ApiError::InsufficientPermissions)?;
        if !state.store.may_view_analytics(&org, &caller.user).await? {
            return Err(ApiError::InsufficientPermissions);
        }
        Ok(Self { org })
    }
}

impl FromRequestParts<AppState> for EventReporter {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let scope = state.verifier.settings().ingest_scope.clone();
        authenticate(parts, state, &scope).await.map(Self)
    }
}

async fn authenticate(parts: &Parts, state: &AppState, scope: &str) -> Result<Identity, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::HeaderNotFound)?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::InvalidToken("header is not visible ASCII".into()))?;
    let token = bearer_token(value)
        .ok_or_else(|| ApiError::InvalidToken("not a Bearer credential".into()))?;
    let identity = state
        .verifier
        .verify(token, scope)
        .await
        .map_err(|e| match e {
            AuthError::KeysUnavailable(m) => ApiError::Unavailable(format!("issuer keys: {m}")),
            other => ApiError::InvalidToken(other.to_string()),
        })?;
    let span = tracing::Span::current();
    span.record("user", identity.user.as_str());
    if let Some(org) = &identity.org {
        span.record("org", org.as_str());
    }
    Ok(identity)
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn reads_bearer_credentials_only() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
    }
}
