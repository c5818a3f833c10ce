//! Token verification, shared by local and issuer mode.

use super::cache::TokenCache;
use super::jwks::RemoteJwks;
use super::local::LocalIssuer;
use super::login_code::is_login_code_type;
use super::{AuthSettings, LEEWAY_SECS};
use crate::domain::{OrgId, UserId};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::sync::Arc;

/// Why a token was refused. Logged, never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT, or not one we accept.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg: none`, HMAC or anything else that is not asymmetric.
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// The `kid` is not in the issuer's key set, even after a refresh.
    #[error("no published key for this token")]
    UnknownKey,
    /// The JWKS could not be fetched.
    #[error("issuer keys unavailable: {0}")]
    KeysUnavailable(String),
    /// Signature, issuer, audience or time checks failed.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// A required claim is absent or not a valid id.
    #[error("claim {0:?} missing or invalid")]
    Claim(String),
    /// The required scope is absent.
    #[error("scope {0:?} missing")]
    Scope(String),
}

/// The caller, as proven by a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub` (or the configured user claim).
    pub user: UserId,
    /// `email`, if present; kept for audit, never logged at info level.
    pub email: Option<String>,
    /// The organization whose data the caller acts on; `None` → 403.
    pub org: Option<OrgId>,
    /// Every scope the token carries.
    pub scopes: Vec<String>,
}

enum Keys {
    Local(JwkSet),
    Remote(RemoteJwks),
}

/// Verifies access tokens; cheap to clone and share.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    issuer: String,
    keys: Keys,
    cache: TokenCache,
}

/// The algorithms a token may be signed with: asymmetric only.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Verifier {
    /// A verifier for the service's own local issuer.
    pub fn local(settings: AuthSettings, issuer: &LocalIssuer) -> Self {
        Self::with_keys(
            settings,
            issuer.issuer().to_owned(),
            Keys::Local(issuer.jwks()),
        )
    }

    /// A verifier for an external issuer.
    pub fn remote(settings: AuthSettings, issuer: String, jwks: RemoteJwks) -> Self {
        Self::with_keys(settings, issuer, Keys::Remote(jwks))
    }

    fn with_keys(settings: AuthSettings, issuer: String, keys: Keys) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                issuer,
                cache: TokenCache::default(),
                keys,
            }),
        }
    }

    /// The settings in force (scopes, claim names).
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// Verifies `token` and requires `scope`.
    pub async fn verify(&self, token: &str, scope: &str) -> Result<Identity, AuthError> {
        if let Some(identity) = self.inner.cache.get(token, scope) {
            return Ok(identity);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        if is_login_code_type(header.typ.as_deref()) {
            return Err(AuthError::Rejected(
                "a sign-in code is not an access token".into(),
            ));
        }
        reject_critical_extensions(token)?;
        let jwk = self.find_key(header.kid.as_deref(), header.alg).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| AuthError::Rejected(format!("unusable key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.inner.issuer]);
        match &self.inner.settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| AuthError::Rejected(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        check_issued_at(&data.claims, now)?;
        let identity = self.identity(&data.claims, scope)?;
        let exp = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let remaining = exp + LEEWAY_SECS as i64 - now;
        if let Ok(secs) = u64::try_from(remaining) {
            self.inner.cache.put(
                token,
                scope,
                &identity,
                std::time::Duration::from_secs(secs),
            );
        }
        Ok(identity)
    }

    fn identity(
        &self,
        claims: &serde_json::Map<String, Value>,
        scope: &str,
    ) -> Result<Identity, AuthError> {
        let s = &self.inner.settings;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let user = text(&s.user_claim)
            .and_then(|v| UserId::parse(v).ok())
            .ok_or_else(|| AuthError::Claim(s.user_claim.clone()))?;
        let scopes = scopes(claims);
        if !scopes.iter().any(|x| x == scope) {
            return Err(AuthError::Scope(scope.to_owned()));
        }
        Ok(Identity {
            user,
            email: text(&s.email_claim).map(str::to_owned),
            org: text(&s.org_claim).and_then(|v| OrgId::parse(v).ok()),
            scopes,
        })
    }

    async fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, AuthError> {
        let jwk = match &self.inner.keys {
            Keys::Local(set) => select(set, kid),
            Keys::Remote(remote) => remote.find(kid).await?,
        }
        .ok_or(AuthError::UnknownKey)?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(AuthError::UnknownKey);
        }
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{alg:?}") {
                return Err(AuthError::Algorithm(format!(
                    "{alg:?} does not match the key's {key_alg:?}"
                )));
            }
        }
        Ok(jwk)
    }
}

/// RFC 7515 §4.1.11: a `crit` header lists extensions the recipient must
/// understand or refuse the token. This service understands none, so any
/// `crit` (even an empty or malformed one, which the RFC forbids) refuses.
fn reject_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let header: serde_json::Map<String, Value> = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| AuthError::Malformed("unreadable header".into()))?;
    match header.get("crit") {
        None => Ok(()),
        Some(crit) => Err(AuthError::Rejected(format!(
            "critical header extensions not understood: {crit}"
        ))),
    }
}

/// A token issued more than the leeway in the future was not issued by a
/// clock anyone should trust; `iat`, when present, must be a number.
fn check_issued_at(claims: &serde_json::Map<String, Value>, now: i64) -> Result<(), AuthError> {
    match claims.get("iat") {
        None => Ok(()),
        Some(iat) => match iat.as_f64() {
            Some(iat) if iat <= (now + LEEWAY_SECS as i64) as f64 => Ok(()),
            Some(_) => Err(AuthError::Rejected("issued in the future (iat)".into())),
            None => Err(AuthError::Rejected("iat is not a number".into())),
        },
    }
}

/// Picks the key a token names. A token without `kid` is accepted only when
/// the set holds exactly one key, so there is no guessing between keys.
pub(crate) fn select(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// Scopes from a space-separated `scope` string and/or an `scp` array.
fn scopes(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        out.extend(s.split_whitespace().map(str::to_owned));
    }
    match claims.get("scp") {
        Some(Value::Array(items)) => {
            out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn token_with_header(header: &Value) -> String {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", b64(header), b64(&json!({})))
    }

    #[test]
    fn any_crit_header_is_refused() {
        let ok = token_with_header(&json!({"alg": "EdDSA", "kid": "k"}));
        assert!(reject_critical_extensions(&ok).is_ok());
        for crit in [json!(["exp"]), json!([]), json!("b64")] {
            let t = token_with_header(&json!({"alg": "EdDSA", "crit": crit}));
            assert!(reject_critical_extensions(&t).is_err(), "{crit}");
        }
        assert!(reject_critical_extensions("not-base64!.x.y").is_err());
    }

    #[test]
    fn iat_may_not_lie_beyond_the_leeway_ahead() {
        let now = 1_700_000_000;
        let claims = |iat: Value| json!({ "iat": iat }).as_object().unwrap().clone();
        let leeway = LEEWAY_SECS as i64;
        assert!(check_issued_at(&serde_json::Map::new(), now).is_ok());
        assert!(check_issued_at(&claims(json!(now - 10)), now).is_ok());
        assert!(check_issued_at(&claims(json!(now + leeway)), now).is_ok());
        assert!(check_issued_at(&claims(json!(now + leeway + 1)), now).is_err());
        assert!(check_issued_at(&claims(json!(now + 315_360_000)), now).is_err());
        assert!(check_issued_at(&claims(json!("yesterday")), now).is_err());
    }
}
