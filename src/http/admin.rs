//! The admin page at `/`: static assets compiled into the binary (no CDN,
//! no build step) and a small settings document telling the page how to
//! sign in. The page itself talks only to the public API with a bearer
//! token it keeps in memory; the server holds no session.

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

const INDEX_HTML: &str = include_str!("admin/index.html");
const APP_JS: &str = include_str!("admin/app.js");
const APP_CSS: &str = include_str!("admin/app.css");

/// Path of the page's sign-in settings.
pub const CONFIG_PATH: &str = "/admin/config.json";

/// How the page signs in, from the service settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum PageConfig {
    /// Local mode: through a link `catalytics login-link` prints.
    Local,
    /// Issuer mode: OpenID Connect authorization code + PKCE.
    #[serde(rename_all = "camelCase")]
    Issuer {
        /// The issuer URL (discovery at `/.well-known/openid-configuration`).
        issuer: String,
        /// The page's public client id (`ui.client_id`).
        client_id: Option<String>,
        /// Scopes to request.
        scope: String,
    },
}

impl PageConfig {
    /// Issuer mode when an issuer is configured, local mode otherwise.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        match &settings.auth.issuer {
            None => PageConfig::Local,
            Some(issuer) => PageConfig::Issuer {
                issuer: issuer.clone(),
                client_id: settings.ui.client_id.clone(),
                scope: settings.ui.scope.clone(),
            },
        }
    }

    /// The Content-Security-Policy of the page: its own origin only, plus
    /// the issuer's origin in issuer mode (discovery and token requests).
    fn content_security_policy(&self) -> String {
        let connect = match self {
            PageConfig::Local => "'self'".to_owned(),
            PageConfig::Issuer { issuer, .. } => format!("'self' {}", origin_of(issuer)),
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    }
}

/// `https://id.example.com/realms/x` → `https://id.example.com`.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The page's routes.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/", get(index))
        .route(
            "/admin/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/admin/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route(CONFIG_PATH, get(config))
}

async fn index(State(state): State<AppState>) -> Response {
    let csp = HeaderValue::from_str(&state.admin_page.content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let mut response = asset(INDEX_HTML, "text/html; charset=utf-8").await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Always revalidated: a new binary serves new assets at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn config(State(state): State<AppState>) -> Json<PageConfig> {
    Json((*state.admin_page).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_the_issuer_origin_only_in_issuer_mode() {
        assert!(PageConfig::Local
            .content_security_policy()
            .contains("connect-src 'self';"));
        let issuer = PageConfig::Issuer {
            issuer: "https://id.example.com/realms/x".into(),
            client_id: Some("admin".into()),
            scope: "openid".into(),
        };
        assert!(issuer
            .content_security_policy()
            .contains("connect-src 'self' https://id.example.com;"));
        assert_eq!(origin_of("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}
