//! Authentication and authorization as extractors: a handler that takes
//! [`AnalyticsReader`] (or [`EventReporter`]) only runs for a verified token
//! with that scope, one that takes [`OrgViewer`] only for a caller allowed
//! to read that organization's analytics, one that takes
//! [`OrgAdministrator`] only for an administrator of that organization.

use super::AppState;
use crate::auth::{AuthError, Identity};
use crate::domain::{Event, OrgId, UserId};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// A caller whose token carries the download scope.
pub struct AnalyticsReader(pub Identity);

/// A caller whose token carries the ingest scope.
pub struct EventReporter(pub Identity);

impl EventReporter {
    /// DESIGN §3.1: a token bound to an organization reports that
    /// organization's events only (403 otherwise, for the whole batch); a
    /// token without the claim is a multi-organization service token.
    pub fn may_report(&self, events: &[Event]) -> Result<(), ApiError> {
        match &self.0.org {
            Some(own) if events.iter().any(|e| e.organization != *own) => {
                Err(ApiError::InsufficientPermissions)
            }
            _ => Ok(()),
        }
    }
}

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

/// A caller allowed to read one organization's analytics (DESIGN §2):
/// the download scope (401 otherwise), an organization claim, and a role
/// or permission in that organization (403 otherwise).
pub struct OrgViewer {
    /// The organization whose data the caller reads.
    pub org: OrgId,
    /// The caller, for the audit trail.
    pub user: UserId,
}

impl FromRequestParts<AppState> for OrgViewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AnalyticsReader(identity) = AnalyticsReader::from_request_parts(parts, state).await?;
        let org = identity
            .org
            .clone()
            .ok_or(ApiError::InsufficientPermissions)?;
        if !state.store.may_view_analytics(&org, &identity.user).await? {
            return Err(ApiError::InsufficientPermissions);
        }
        Ok(Self {
            org,
            user: identity.user,
        })
    }
}

/// A caller holding an organization-administrator role in the token's
/// organization; anyone else is refused with 403.
pub struct OrgAdministrator {
    /// The token's organization.
    pub org: OrgId,
    /// The administrator.
    pub user: UserId,
}

impl FromRequestParts<AppState> for OrgAdministrator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnalyticsReader(caller) = AnalyticsReader::from_request_parts(parts, state).await?;
        let org = caller.org.ok_or(ApiError::InsufficientPermissions)?;
        let grants = state.store.list_access(Some(&org)).await?;
        let allowed = grants
            .iter()
            .any(|g| g.user == caller.user && g.grant.allows_erasure());
        if !allowed {
            return Err(ApiError::InsufficientPermissions);
        }
        Ok(Self {
            org,
            user: caller.user,
        })
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
