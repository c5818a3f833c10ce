//! The admin page's assets and sign-in settings: served without a token,
//! locked down by their headers.

use crate::helpers::*;
use serde_json::json;

async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/admin/app.js" defer></script>"#));
    for (path, content_type) in [
        ("/admin/app.js", "text/javascript; charset=utf-8"),
        ("/admin/app.css", "text/css; charset=utf-8"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], content_type, "{path}");
        assert!(!r.text().await.unwrap().is_empty());
    }
    let config = app
        .client
        .get(app.url("/admin/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(config).await, json!({"mode": "local"}));
    let post = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

async fn issuer_mode_tells_the_page_its_client() {
    let app = spawn_app_with(AppOptions {
        settings: Box::new(|s| {
            // Nothing listens there: the keys are fetched on demand, never here.
            s.auth.issuer = Some("http://127.0.0.1:9/realm".into());
            s.ui.client_id = Some("catalytics-admin".into());
        }),
        ..Default::default()
    })
    .await;
    let config = app
        .client
        .get(app.url("/admin/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(config).await,
        json!({"mode": "issuer", "issuer": "http://127.0.0.1:9/realm",
               "clientId": "catalytics-admin", "scope": "openid email itwin-platform"})
    );
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("connect-src 'self' http://127.0.0.1:9;"));
}

crate::both_backends!(
    the_page_and_its_assets_are_served_from_the_binary,
    issuer_mode_tells_the_page_its_client,
);
