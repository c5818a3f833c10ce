//! The HTTP layer: routes, extractors, middleware. Handlers stay thin: parse
//! at the edge into domain types, call the store, encode.

mod admin;
pub mod download;
mod events;
mod extract;
mod fallback;
mod health;
pub mod limits;
mod middleware;
mod state;
mod summary;
mod well_known;

pub use admin::PageConfig;
pub use state::AppState;

use axum::routing::{get, post};
use axum::Router;

/// Path of the download operation (wire-compatible with the Library API).
pub const DOWNLOAD_PATH: &str = "/library/components/analytics/download";
/// Path of the usage summary operation.
pub const SUMMARY_PATH: &str = "/library/components/analytics/summary";
/// Path of the ingestion operation.
pub const EVENTS_PATH: &str = "/library/components/analytics/events";

/// Every route of the service, with its middleware stack.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route(DOWNLOAD_PATH, get(download::download))
        .route(SUMMARY_PATH, get(summary::summary))
        .route(EVENTS_PATH, post(events::report));
    if state.local_issuer.is_some() {
        router = router
            .route(
                "/.well-known/openid-configuration",
                get(well_known::openid_configuration),
            )
            .route("/.well-known/jwks.json", get(well_known::jwks));
    }
    router = admin::routes(router)
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready));
    let router = router
        .fallback(fallback::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .with_state(state);
    middleware::apply(router)
}
