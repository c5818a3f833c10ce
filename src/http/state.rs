//! Shared state handed to every handler.

use crate::auth::local::LocalIssuer;
use crate::auth::Verifier;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What handlers share: the store, the token verifier, the local issuer (in
/// local mode, to publish its keys) and the download slots.
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
}
