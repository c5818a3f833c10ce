//! Authentication: who is calling, proven by a JWT signed with an asymmetric
//! key and checked against the issuer's JWKS.
//!
//! Two key sources share one verifier:
//! - [`local::LocalIssuer`]: the service's own Ed25519 key in the data
//!   directory (local mode, the default when no issuer is configured);
//! - [`jwks::RemoteJwks`]: an external issuer's JWKS, found by OpenID
//!   discovery or configured directly, cached and refreshed on unknown `kid`.
//!
//! [`login_code`] makes and checks the one-time codes of local mode's login
//! links, which the verifier refuses as access tokens.

mod cache;
pub mod jwks;
pub mod local;
pub mod login_code;
mod verify;

pub use verify::{AuthError, Identity, Verifier};

use serde::{Deserialize, Serialize};

/// How tokens are checked; part of the service settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// External issuer URL; `None` selects local mode.
    pub issuer: Option<String>,
    /// JWKS URL; `None` means OpenID discovery from the issuer.
    pub jwks_uri: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Claim holding the user id.
    pub user_claim: String,
    /// Claim holding the email.
    pub email_claim: String,
    /// Claim holding the organization id.
    pub org_claim: String,
    /// Scope required to download.
    pub download_scope: String,
    /// Scope required to report events.
    pub ingest_scope: String,
    /// Minimum seconds between two JWKS refreshes caused by unknown `kid`s.
    pub jwks_refresh_interval_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_uri: None,
            audience: None,
            user_claim: "sub".into(),
            email_claim: "email".into(),
            org_claim: "org".into(),
            download_scope: "itwin-platform".into(),
            ingest_scope: "analytics:write".into(),
            jwks_refresh_interval_secs: 30,
        }
    }
}

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;
