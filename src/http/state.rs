//! Shared state handed to every handler.

use super::download::Admission;
use crate::auth::local::LocalIssuer;
use crate::auth::Verifier;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// What handlers share: the store, the token verifier, the local issuer (in
/// local mode, to publish its keys), download admission, request limits.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn Store>,
    /// Token verification.
    pub verifier: Verifier,
    /// Set in local mode only.
    pub local_issuer: Option<Arc<LocalIssuer>>,
    /// Download slots, their queue and the per-organization rate limit.
    pub downloads: Arc<Admission>,
    /// Longest pause while a request body arrives (then 408).
    pub body_stall_timeout: Duration,
    /// The URL clients reach the service at, for local mode's discovery
    /// document.
    pub public_url: String,
    /// How the admin page signs in.
    pub admin_page: Arc<super::admin::PageConfig>,
}
