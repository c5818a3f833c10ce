//! An external issuer's JWKS: found by OpenID discovery or configured,
//! cached, and refreshed when a token names a key the cache does not hold
//! (key rotation) — at most once per configured interval, so a flood of
//! tokens with made-up `kid`s cannot turn into a flood of fetches.

use super::verify::{select, AuthError};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Keys are re-fetched after this long even if every `kid` is known, so that
/// revoked keys disappear.
const MAX_AGE: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key set comes from.
#[derive(Debug, Clone)]
enum Source {
    Discovery(String),
    Direct(String),
}

/// A cached, self-refreshing JWKS; cheap to clone.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    source: Source,
    min_refresh_interval: Duration,
    cache: RwLock<Option<(JwkSet, Instant)>>,
    /// When the last fetch was attempted; also makes refreshes single-flight.
    last_attempt: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl RemoteJwks {
    /// A key set for `issuer`, fetched from `jwks_uri` when given, else from
    /// the `jwks_uri` of the issuer's OpenID discovery document.
    pub fn new(
        issuer: &str,
        jwks_uri: Option<&str>,
        min_refresh_interval: Duration,
    ) -> Result<Self, AuthError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        let source = match jwks_uri {
            Some(uri) => Source::Direct(uri.to_owned()),
            None => Source::Discovery(format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            )),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                source,
                min_refresh_interval,
                cache: RwLock::new(None),
                last_attempt: Mutex::new(None),
            }),
        })
    }

    /// Fetches the keys now; used at start-up to fail early and loudly.
    pub async fn prefetch(&self) -> Result<usize, AuthError> {
        let set = self.refresh(true).await?;
        Ok(set.keys.len())
    }

    /// The key for `kid`, refreshing the set once if it is unknown.
    pub async fn find(&self, kid: Option<&str>) -> Result<Option<Jwk>, AuthError> {
        if let Some((set, fetched)) = &*self.inner.cache.read().await {
            if fetched.elapsed() < MAX_AGE {
                if let Some(jwk) = select(set, kid) {
                    return Ok(Some(jwk));
                }
            }
        }
        match self.refresh(false).await {
            Ok(set) => Ok(select(&set, kid)),
            Err(e) => {
                // A failed refresh must not lock out keys we already hold.
                let cache = self.inner.cache.read().await;
                match &*cache {
                    Some((set, _)) => Ok(select(set, kid)),
                    None => Err(e),
                }
            }
        }
    }

    async fn refresh(&self, force: bool) -> Result<JwkSet, AuthError> {
        let mut last = self.inner.last_attempt.lock().await;
        let cached = self.inner.cache.read().await.clone();
        let recently = last.is_some_and(|t| t.elapsed() < self.inner.min_refresh_interval);
        if let (false, true, Some((set, _))) = (force, recently, &cached) {
            return Ok(set.clone());
        }
        *last = Some(Instant::now());
        let set = self.fetch().await?;
        tracing::info!(keys = set.keys.len(), "fetched issuer JWKS");
        *self.inner.cache.write().await = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::KeysUnavailable(e.to_string());
        let uri = match &self.inner.source {
            Source::Direct(uri) => uri.clone(),
            Source::Discovery(url) => {
                let doc: Discovery = self
                    .get(url)
                    .await
                    .map_err(unavailable)?
                    .json()
                    .await
                    .map_err(unavailable)?;
                doc.jwks_uri
            }
        };
        self.get(&uri)
            .await
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.inner.client.get(url).send().await?.error_for_status()
    }
}
