//! Shared state handed to every handler.

use crate::auth::local::LocalIssuer;
use crate::auth::Verifier;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Per-organization download rate limiter (GCRA, from `governor`).
pub type OrgRateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// What handlers share: the store, the token verifier, the local issuer (in
/// local mode, to publish its keys), the download slots and rate limit.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn Store>,
    /// Token verification.
    pub verifier: Verifier,
    /// Set in local mode only.
    pub local_issuer: Option<Arc<LocalIssuer>>,
    /// One permit per concurrently streaming download.
    pub download_slots: Arc<Semaphore>,
    /// How the admin page signs in.
    pub admin_page: Arc<super::admin::PageConfig>,
    /// Downloads per organization per minute, when configured.
    pub download_rate: Option<Arc<OrgRateLimiter>>,
}
