//! Local mode's OpenID discovery document and JWKS, so that other tools can
//! verify this service's tokens the same way the service does.

use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET /.well-known/openid-configuration`
/// The key set's address is built from the configured public URL, never
/// from the request's `Host`, which a client can set to anything.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "local issuer",
    operation_id = "openidConfiguration",
    responses((status = 200, description = "OpenID discovery document of the local issuer.", body = Object))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let issuer = state.local_issuer.as_ref().ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "issuer": issuer.issuer(),
        "jwks_uri": format!("{}/.well-known/jwks.json", state.public_url.trim_end_matches('/')),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "scopes_supported": [
            state.verifier.settings().download_scope,
            state.verifier.settings().ingest_scope,
        ],
    })))
}

/// `GET /.well-known/jwks.json`
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "local issuer",
    operation_id = "jwks",
    responses((status = 200, description = "The local issuer's public keys (JWKS).", body = Object))
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let issuer = state.local_issuer.as_ref().ok_or(ApiError::NotFound)?;
    Ok(Json(issuer.jwks_json()))
}
