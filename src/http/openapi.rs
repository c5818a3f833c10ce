//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the code
//! (`utoipa`): each handler's `#[utoipa::path]` annotation describes its
//! operation, and the router in [`super::router`] registers route and
//! description together with `utoipa-axum`'s `routes!`, so a route cannot be
//! served without being documented, nor documented without being served.
//!
//! # Adding an operation
//! 1. Annotate the handler with `#[utoipa::path(get|post, path = …,
//!    tag = …, params(…), request_body = …, responses(…))]`, listing every
//!    status the handler itself can answer (bodies: [`ErrorEnvelope`] for
//!    errors). Query parameters read by hand are described by an
//!    `IntoParams` struct next to the handler.
//! 2. Register it in [`super::router`] with one line:
//!    `.routes(routes!(module::handler))`.
//!
//! Responses that the middleware can give to *any* request (request limits,
//! a panic's 500) are added to every operation by [`CommonResponses`]; add
//! new ones there, not to each handler. Request and response types derive `ToSchema` where
//! they are defined; the wire form of a reported event, which is parsed by
//! hand (see `ingest`), is described here by [`WireEvent`].

use crate::error::{ErrorBody, ErrorDetail, ErrorEnvelope};
use crate::store::IngestOutcome;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use bytes::Bytes;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's fixed parts; operations are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "catalytics",
        description = "Component-library usage analytics: report usage events, download them as CSV. \
                       The download operation is wire-compatible with the Library API's.",
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorDetail, IngestOutcome, EventsBatch, Timestamp)),
    modifiers(&BearerSecurity),
    tags(
        (name = "analytics", description = "Usage events in, CSV out."),
        (name = "operations", description = "Health, metrics and this document."),
        (name = "local issuer", description = "Local mode only: this service's own token keys and login links."),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the authenticated operations name.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Responses any operation can give, whatever its handler does: the
/// request limits of `http::limits` and a panic's 500.
pub struct CommonResponses;

impl CommonResponses {
    /// `(status, description, only for operations with a request body)`.
    const ALL: [(&'static str, &'static str, bool); 5] = [
        (
            "400",
            "A malformed request, e.g. two Authorization headers (BadRequest).",
            false,
        ),
        (
            "408",
            "The request body stalled longer than the body stall timeout (RequestTimeout).",
            true,
        ),
        (
            "414",
            "The request target is over 8 KiB (UriTooLong).",
            false,
        ),
        (
            "431",
            "The request head is over 32 KiB (RequestHeaderFieldsTooLarge).",
            false,
        ),
        (
            "500",
            "An unexpected failure; the cause is logged, never sent (InternalServerError).",
            false,
        ),
    ];
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                for (status, description, body_only) in Self::ALL {
                    if body_only && !has_body {
                        continue;
                    }
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(error_response(description)));
                }
            }
        }
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(
                    "ErrorEnvelope",
                )))
                .build(),
        )
        .build()
}

/// The finished document, serialized once, served by [`document`].
#[derive(Clone)]
pub struct Served(Arc<Bytes>);

impl Served {
    /// Completes `doc` (common responses) and serializes it.
    pub fn new(mut doc: Document) -> Self {
        CommonResponses.modify(&mut doc);
        let json = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        Self(Arc::new(Bytes::from(json)))
    }
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object))
)]
pub async fn document(Extension(served): Extension<Served>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::clone(&served.0),
    )
}

/// An instant in UTC with milliseconds, `yyyy-MM-ddTHH:mm:ss.fffZ`, the
/// one timestamp format of the API (see `domain::Timestamp`). The pattern
/// admits a few impossible dates (Feb 30); the API answers those with 422.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$",
    example = "2024-01-01T00:00:00.000Z"
)]
#[allow(dead_code)]
pub struct Timestamp(String);

/// `POST …/events` with `Content-Type: application/json`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the wire form; the parser reads it by hand
pub struct EventsBatch {
    /// 1 to 10000 events (at most 16 MiB).
    #[schema(max_items = 10000)]
    events: Vec<WireEvent>,
}

/// One usage event as reported. With `application/x-ndjson`, the body is
/// one such object per line.
#[derive(ToSchema)]
#[schema(as = Event)]
#[allow(dead_code, non_snake_case)] // wire names
pub struct WireEvent {
    /// The event's id: reporting it again is a duplicate, not a new event.
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        example = "0b7c6a1e-5f3d-4c2b-9a8e-1d2c3b4a5f60"
    )]
    id: String,
    /// The organization the usage belongs to.
    #[schema(min_length = 1, max_length = 256)]
    organizationId: String,
    /// When it happened.
    #[schema(value_type = Timestamp)]
    timestamp: String,
    /// What happened.
    event: WireEventKind,
    /// The component used.
    component: WireComponent,
    /// Who used it.
    user: WireUser,
    /// The application it was used from.
    #[schema(min_length = 1, max_length = 1024)]
    application: Option<String>,
    /// The project it was used in.
    #[schema(min_length = 1, max_length = 256)]
    projectId: Option<String>,
}

/// The kinds of usage.
#[derive(ToSchema)]
#[schema(as = EventKind)]
#[allow(dead_code)]
pub enum WireEventKind {
    /// Looked at in the library.
    View,
    /// Downloaded.
    Download,
    /// Placed into a design.
    Place,
}

/// A component as reported with an event; the latest event names it.
#[derive(ToSchema)]
#[schema(as = Component)]
#[allow(dead_code, non_snake_case)]
pub struct WireComponent {
    /// The component's id.
    #[schema(min_length = 1, max_length = 256)]
    id: String,
    /// Its name.
    #[schema(min_length = 1, max_length = 1024)]
    displayName: String,
    /// The catalogs it is in (at most 100).
    #[schema(max_items = 100)]
    catalogs: Option<Vec<WireCatalog>>,
    /// Its category.
    #[schema(min_length = 1, max_length = 1024)]
    category: Option<String>,
    /// Its manufacturer.
    #[schema(min_length = 1, max_length = 1024)]
    manufacturer: Option<String>,
}

/// A catalog a component is in.
#[derive(ToSchema)]
#[schema(as = Catalog)]
#[allow(dead_code, non_snake_case)]
pub struct WireCatalog {
    /// The catalog's id.
    #[schema(min_length = 1, max_length = 256)]
    id: String,
    /// Its name.
    #[schema(min_length = 1, max_length = 1024)]
    displayName: String,
}

/// The user who caused an event.
#[derive(ToSchema)]
#[schema(as = User)]
#[allow(dead_code)]
pub struct WireUser {
    /// The user's id (the token's `sub` for downloads).
    #[schema(min_length = 1, max_length = 256)]
    id: String,
    /// The user's email.
    #[schema(min_length = 1, max_length = 320)]
    email: String,
}
