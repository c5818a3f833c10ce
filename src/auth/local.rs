//! Local mode: the service is its own token issuer.
//!
//! An Ed25519 key is created once in the data directory (mode 0600) and kept
//! there; `catalytics token` signs with it and `serve` publishes the public
//! half as a JWKS, so the same verifier code runs as in issuer mode.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `iss` of every local-mode token.
pub const LOCAL_ISSUER: &str = "urn:catalytics:local";
/// File name of the signing key inside the data directory.
pub const KEY_FILE: &str = "local-signing-key.pk8";

/// Failures to create or read the local key.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// File system trouble.
    #[error("local signing key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file exists but is not an Ed25519 PKCS#8 key.
    #[error("local signing key {0} is not a valid Ed25519 PKCS#8 key")]
    Invalid(PathBuf),
    /// Signing failed.
    #[error("cannot sign token: {0}")]
    Sign(String),
}

/// The local issuer's key pair.
pub struct LocalIssuer {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    kid: String,
}

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `org`; `None` mints a multi-organization service token (one that
    /// may report events of any organization, DESIGN §3.1).
    pub org: Option<String>,
    /// `sub`
    pub user: String,
    /// `email`, if any.
    pub email: Option<String>,
    /// Space-separated `scope`.
    pub scope: String,
    /// Lifetime.
    pub ttl: Duration,
}

impl LocalIssuer {
    /// Loads the key from `data_dir`, creating it (and the directory) on
    /// first use. Returns whether it was created.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), LocalKeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| LocalKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(pkcs8) => Ok((
                Self::from_pkcs8(pkcs8).ok_or_else(|| LocalKeyError::Invalid(path.clone()))?,
                false,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| LocalKeyError::Sign("key generation failed".into()))?;
                write_private(&path, doc.as_ref()).map_err(io)?;
                Ok((
                    Self::from_pkcs8(doc.as_ref().to_vec())
                        .ok_or_else(|| LocalKeyError::Invalid(path.clone()))?,
                    true,
                ))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Option<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).ok()?;
        let public = pair.public_key().as_ref().to_vec();
        let kid = thumbprint(&public);
        Some(Self { pkcs8, public, kid })
    }

    /// The `iss` value.
    pub fn issuer(&self) -> &str {
        LOCAL_ISSUER
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        // The JSON is built from known-good parts; parsing it cannot fail
        // unless jsonwebtoken's JWK model changes, and then the set is empty.
        serde_json::from_value(self.jwks_json()).unwrap_or(JwkSet { keys: Vec::new() })
    }

    /// The public key set as JSON.
    pub fn jwks_json(&self) -> serde_json::Value {
        json!({ "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(&self.public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
    }

    /// Signs an access token.
    pub fn mint(&self, req: &TokenRequest) -> Result<String, LocalKeyError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let mut claims = json!({
            "iss": LOCAL_ISSUER,
            "sub": req.user,
            "scope": req.scope,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
        });
        if let Some(email) = &req.email {
            claims["email"] = json!(email);
        }
        if let Some(org) = &req.org {
            claims["org"] = json!(org);
        }
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the local key (tests and tooling that
    /// need tokens `mint` does not make, e.g. already expired ones).
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, LocalKeyError> {
        self.sign_typed(claims, "JWT")
    }

    /// Signs claims under an explicit `typ` header (RFC 8725 §3.11), so a
    /// token of one kind cannot pass for another (see [`super::login_code`]).
    pub fn sign_typed<T: serde::Serialize>(
        &self,
        claims: &T,
        typ: &str,
    ) -> Result<String, LocalKeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        let key = EncodingKey::from_ed_der(&self.pkcs8);
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| LocalKeyError::Sign(e.to_string()))
    }

    /// The public key, for verifying what this issuer signed without a JWKS.
    pub(crate) fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        jsonwebtoken::DecodingKey::from_ed_der(&self.public)
    }
}

fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// Creates the key file readable by its owner only; never overwrites one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = LocalIssuer::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (b, created) = LocalIssuer::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.kid(), b.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(a.jwks().keys.len(), 1);
    }
}
