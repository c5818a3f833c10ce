//! Verified tokens remembered for a short while.
//!
//! Clients repeat the same access token for many requests, and checking its
//! signature is the most expensive part of authentication (an Ed25519 or RSA
//! verification per request). A token that verified once is remembered, by
//! its SHA-256 digest (the token itself is never kept), until the earlier of
//! its own expiry and [`MAX_AGE`]. Failures are never cached, so a token
//! becomes valid only by passing every check.

use super::Identity;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest a verification is trusted without re-checking the signature:
/// bounds how long a key removed from the issuer's JWKS keeps working.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Entries kept; on overflow the cache starts over (cheap and bounded).
const CAPACITY: usize = 10_000;

type Key = ([u8; 32], String);

/// A bounded map from (token digest, scope) to the identity it proved.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<Key, (Identity, Instant)>>,
}

fn key(token: &str, scope: &str) -> Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    (bytes, scope.to_owned())
}

impl TokenCache {
    /// The identity `token` proved for `scope`, if still fresh.
    pub fn get(&self, token: &str, scope: &str) -> Option<Identity> {
        let entries = self.entries.lock().ok()?;
        let (identity, until) = entries.get(&key(token, scope))?;
        (Instant::now() < *until).then(|| identity.clone())
    }

    /// Remembers a successful verification until `valid_for` from now
    /// (capped at [`MAX_AGE`]).
    pub fn put(&self, token: &str, scope: &str, identity: &Identity, valid_for: Duration) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(
                key(token, scope),
                (identity.clone(), Instant::now() + valid_for.min(MAX_AGE)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn identity() -> Identity {
        Identity {
            user: UserId::parse("u").unwrap(),
            email: None,
            org: None,
            scopes: vec!["s".into()],
        }
    }

    #[test]
    fn remembers_per_token_and_scope_until_expiry() {
        let cache = TokenCache::default();
        cache.put("t1", "s", &identity(), Duration::from_secs(30));
        assert_eq!(cache.get("t1", "s"), Some(identity()));
        assert_eq!(cache.get("t1", "other"), None);
        assert_eq!(cache.get("t2", "s"), None);
        cache.put("t3", "s", &identity(), Duration::ZERO);
        assert_eq!(cache.get("t3", "s"), None, "an expired entry is not served");
    }
}
