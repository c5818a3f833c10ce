//! The HTTP layer: routes, extractors, middleware. Handlers stay thin: parse
//! at the edge into domain types, call the store, encode.

mod admin;
mod audit;
pub mod download;
mod erasures;
mod events;
mod extract;
mod fallback;
mod health;
mod json_body;
pub mod limits;
mod login_link;
mod middleware;
pub mod openapi;
mod prometheus;
mod state;
mod summary;
mod well_known;

pub use admin::PageConfig;
pub use audit::{Read, ReadAudit};
pub use state::AppState;

use axum::{Extension, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Path of the download operation (wire-compatible with the Library API).
pub const DOWNLOAD_PATH: &str = "/library/components/analytics/download";
/// Path of the usage summary operation.
pub const SUMMARY_PATH: &str = "/library/components/analytics/summary";
/// Path of the ingestion operation.
pub const EVENTS_PATH: &str = "/library/components/analytics/events";
/// Path of the erasure operation.
pub const ERASURES_PATH: &str = "/library/components/analytics/erasures";
/// Path where the admin page redeems a login link's one-time code (local
/// mode only).
pub const LOGIN_LINK_PATH: &str = "/auth/login-link";

/// Every route of the service, with its middleware stack. Each route is
/// registered with its OpenAPI description (`routes!`, see [`openapi`]):
/// adding an operation is one `.routes(routes!(module::handler))` line.
pub fn router(state: AppState) -> Router {
    let mut api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(download::download))
        .routes(routes!(summary::summary))
        .routes(routes!(events::report))
        .routes(routes!(erasures::erase));
    if state.local_issuer.is_some() {
        api = api
            .routes(routes!(well_known::openid_configuration))
            .routes(routes!(well_known::jwks))
            .routes(routes!(login_link::redeem));
    }
    api = api
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(prometheus::metrics))
        .routes(routes!(openapi::document));
    let (router, document) = api.split_for_parts();
    let router = admin::routes(router);
    let router = router
        .layer(Extension(openapi::Served::new(document)))
        .fallback(fallback::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .with_state(state);
    middleware::apply(router)
}
