//! One-time sign-in codes: what a login link carries in its fragment (local
//! mode only).
//!
//! A code is a JWT signed with the local key, so `catalytics login-link`
//! needs the key and nothing else (no store), like `catalytics token`. It
//! can never pass for an access token, nor an access token for a code:
//! - it is explicitly typed (`typ: login-link+jwt`, RFC 8725 §3.11), which
//!   the API's verifier refuses and the exchange requires;
//! - it is addressed to its own audience ([`LOGIN_CODE_AUDIENCE`]) and
//!   carries no scope, so even a verifier that ignored `typ` would refuse it;
//! - it has a `jti`, which the store remembers when the code is redeemed
//!   (until the code expires anyway), so each code opens one session only,
//!   across every replica sharing the store.
//!
//! The code names the user, the organization and how long the session it
//! opens lasts; the access token is minted at redemption, with the scope
//! the service is configured with then.

use super::local::{LocalIssuer, LocalKeyError, TokenRequest, LOCAL_ISSUER};
use super::{AuthError, LEEWAY_SECS};
use crate::domain::{LoginCodeId, OrgId, Timestamp, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `typ` header of every sign-in code.
pub const LOGIN_CODE_TYP: &str = "login-link+jwt";
/// The `aud` of every sign-in code; no access token carries it.
pub const LOGIN_CODE_AUDIENCE: &str = "urn:catalytics:login-link";
/// Random bytes in a code's `jti`: 128 bits, never repeated in practice.
const JTI_BYTES: usize = 16;

/// What a login link is made of.
#[derive(Debug, Clone)]
pub struct LoginCodeRequest {
    /// Organization id (`org`).
    pub org: OrgId,
    /// User id (`sub`).
    pub user: UserId,
    /// Email shown on the page, if any.
    pub email: Option<String>,
    /// How long the link may be redeemed.
    pub link_ttl: Duration,
    /// How long the access token it is exchanged for lasts.
    pub session_ttl: Duration,
}

/// The claims of a code, as signed.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    /// Seconds the session opened by the code lasts.
    session_secs: u64,
}

/// A code whose signature, type, audience and lifetime were checked; not
/// yet redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCode {
    /// What the store remembers once the code is redeemed.
    pub id: LoginCodeId,
    /// From this instant on the code's own expiry refuses it (leeway
    /// included), so the store need not remember it any longer.
    pub valid_until: Timestamp,
    /// The organization the session is for.
    pub org: OrgId,
    /// The user signing in.
    pub user: UserId,
    /// Their email, if the link named one.
    pub email: Option<String>,
    /// How long the session lasts.
    pub session_ttl: Duration,
}

impl LoginCode {
    /// The access token to mint for this code: the same kind `catalytics
    /// token` mints for that organization and user, with `scope`.
    pub fn session(&self, scope: &str) -> TokenRequest {
        TokenRequest {
            org: Some(self.org.to_string()),
            user: self.user.to_string(),
            email: self.email.clone(),
            scope: scope.to_owned(),
            ttl: self.session_ttl,
        }
    }
}

impl LocalIssuer {
    /// Signs a one-time sign-in code.
    pub fn mint_login_code(&self, req: &LoginCodeRequest) -> Result<String, LocalKeyError> {
        let mut jti = [0u8; JTI_BYTES];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| LocalKeyError::Sign("no randomness for the code id".into()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(req.link_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: LOCAL_ISSUER.to_owned(),
            aud: LOGIN_CODE_AUDIENCE.to_owned(),
            sub: req.user.to_string(),
            org: req.org.to_string(),
            email: req.email.clone(),
            jti: URL_SAFE_NO_PAD.encode(jti),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            session_secs: req.session_ttl.as_secs(),
        };
        self.sign_typed(&claims, LOGIN_CODE_TYP)
    }

    /// Checks a code: this issuer's signature, the code type and audience,
    /// its lifetime (60 s leeway, as for access tokens) and its claims.
    /// Whether it was already redeemed is the store's to say.
    pub fn verify_login_code(&self, code: &str) -> Result<LoginCode, AuthError> {
        let header =
            jsonwebtoken::decode_header(code).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        if !is_login_code_type(header.typ.as_deref()) {
            return Err(AuthError::Rejected("not a sign-in code (typ)".into()));
        }
        if header.kid.as_deref() != Some(self.kid()) {
            return Err(AuthError::UnknownKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[LOGIN_CODE_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(code, &self.decoding_key(), &validation)
            .map_err(|e| AuthError::Rejected(e.to_string()))?
            .claims;
        let claim = |name: &str| AuthError::Claim(name.to_owned());
        if claims.session_secs == 0 {
            return Err(claim("session_secs"));
        }
        let valid_until_secs = claims.exp.saturating_add(LEEWAY_SECS as i64);
        Ok(LoginCode {
            id: LoginCodeId::parse(claims.jti).map_err(|_| claim("jti"))?,
            valid_until: Timestamp::from_millis(valid_until_secs.saturating_mul(1000)),
            org: OrgId::parse(claims.org).map_err(|_| claim("org"))?,
            user: UserId::parse(claims.sub).map_err(|_| claim("sub"))?,
            email: claims.email.filter(|e| !e.is_empty()),
            session_ttl: Duration::from_secs(claims.session_secs),
        })
    }
}

/// Whether a JWT's `typ` header marks a sign-in code (compared without
/// regard to case, as RFC 7515 §4.1.9 asks).
pub fn is_login_code_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| t.eq_ignore_ascii_case(LOGIN_CODE_TYP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new_issuer() -> (tempfile::TempDir, LocalIssuer) {
        let dir = tempfile::tempdir().unwrap();
        let (issuer, _) = LocalIssuer::load_or_create(dir.path()).unwrap();
        (dir, issuer)
    }

    fn request() -> LoginCodeRequest {
        LoginCodeRequest {
            org: OrgId::parse("org-1").unwrap(),
            user: UserId::parse("alice").unwrap(),
            email: Some("alice@example.com".into()),
            link_ttl: Duration::from_secs(900),
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }

    fn claims(now: i64) -> serde_json::Value {
        json!({
            "iss": LOCAL_ISSUER, "aud": LOGIN_CODE_AUDIENCE, "sub": "alice", "org": "org-1",
            "jti": "abc", "iat": now, "nbf": now, "exp": now + 600, "session_secs": 60,
        })
    }

    #[test]
    fn a_minted_code_verifies_with_its_claims() {
        let (_dir, issuer) = new_issuer();
        let before = Timestamp::now().millis();
        let code = issuer.verify_login_code(&issuer.mint_login_code(&request()).unwrap());
        let code = code.unwrap();
        assert_eq!(code.org.as_str(), "org-1");
        assert_eq!(code.user.as_str(), "alice");
        assert_eq!(code.email.as_deref(), Some("alice@example.com"));
        assert_eq!(code.session_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(code.id.as_str().len(), 22, "128 random bits, base64url");
        let until = code.valid_until.millis() - before;
        assert!(
            (900_000 + 59_000..=900_000 + 61_000).contains(&until),
            "{until}"
        );
        let other = issuer
            .verify_login_code(&issuer.mint_login_code(&request()).unwrap())
            .unwrap();
        assert_ne!(code.id, other.id, "every code has its own id");
    }

    #[test]
    fn anything_but_a_live_code_of_this_issuer_is_refused() {
        let (_dir, issuer) = new_issuer();
        let (_other_dir, stranger) = new_issuer();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims(now);
            f(&mut c);
            issuer.sign_typed(&c, LOGIN_CODE_TYP).unwrap()
        };
        let code = issuer
            .verify_login_code(&issuer.mint_login_code(&request()).unwrap())
            .unwrap();
        let access_token = issuer.mint(&code.session("itwin-platform")).unwrap();
        let cases: Vec<(&str, String)> = vec![
            ("garbage", "not-a-jwt".into()),
            ("an access token", access_token),
            ("untyped", issuer.sign(&claims(now)).unwrap()),
            ("another key", stranger.mint_login_code(&request()).unwrap()),
            (
                "expired beyond the leeway",
                with(&|c| c["exp"] = json!(now - 61)),
            ),
            ("not yet valid", with(&|c| c["nbf"] = json!(now + 3600))),
            ("wrong audience", with(&|c| c["aud"] = json!("other"))),
            ("wrong issuer", with(&|c| c["iss"] = json!("urn:x"))),
            ("no session", with(&|c| c["session_secs"] = json!(0))),
            ("no id", with(&|c| c["jti"] = json!(""))),
            ("empty org", with(&|c| c["org"] = json!(""))),
            (
                "no subject",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ),
        ];
        for (case, code) in cases {
            assert!(issuer.verify_login_code(&code).is_err(), "{case}");
        }
        assert!(issuer.verify_login_code(&with(&|_| {})).is_ok());
        let mut tampered = issuer.mint_login_code(&request()).unwrap();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(issuer.verify_login_code(&tampered).is_err(), "tampered");
    }

    #[test]
    fn the_type_is_compared_without_case() {
        assert!(is_login_code_type(Some("login-link+jwt")));
        assert!(is_login_code_type(Some("Login-Link+JWT")));
        assert!(!is_login_code_type(Some("JWT")));
        assert!(!is_login_code_type(None));
    }
}
