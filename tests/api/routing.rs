//! Everything outside the routes answers in the error envelope.

use crate::helpers::*;

async fn unknown_paths_are_json_404() {
    let app = spawn_app().await;
    for path in [
        "/admin",
        "/admin/missing.js",
        "/library/components/analytics",
        "/library/components/analytics/download/extra",
        "/x?y=z",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            json_of(response).await,
            error_body("NotFound", "The requested resource was not found.")
        );
    }
}

async fn wrong_methods_are_json_405_with_allow() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(DOWNLOAD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET,HEAD");
        assert_eq!(
            json_of(response).await,
            error_body(
                "MethodNotAllowed",
                "The HTTP method is not allowed for this resource."
            )
        );
    }
}

async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert!(uuid::Uuid::parse_str(response.headers()["x-request-id"].to_str().unwrap()).is_ok());
}

async fn health_probes_answer() {
    let app = spawn_app().await;
    for path in ["/health", "/health/ready"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }
}

crate::both_backends!(
    health_probes_answer,
    unknown_paths_are_json_404,
    wrong_methods_are_json_405_with_allow,
    every_response_carries_a_request_id,
);
