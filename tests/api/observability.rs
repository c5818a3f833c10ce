//! What an operator plugs in: `/metrics` (parsed with a Prometheus text
//! parser), `/openapi.json`, and log lines on stderr (no escape codes when
//! not a terminal, JSON lines with `--log-format json`, no token or email).
//! The real binary runs as a child process, so its metrics are its own.

use crate::helpers::*;
use catalytics::auth::local::LocalIssuer;
use catalytics::ingest::to_wire;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};

/// `serve` on port 0 with stderr (the log) going to the file `log`.
fn serve_logging_to(data_dir: &Path, log: &Path, extra: &[&str]) -> (Child, String) {
    start_serve(
        catalytics_bin(),
        data_dir,
        extra,
        std::fs::File::create(log).unwrap().into(),
    )
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

const EMAIL: &str = "reporter-mail@example.com";

/// Ingests three events and downloads them; returns the tokens used and the
/// CSV body's length.
async fn ingest_and_download(data_dir: &Path, addr: &str) -> (Vec<String>, usize) {
    let issuer = LocalIssuer::load_or_create(data_dir).unwrap().0;
    let mut writer = claims("org-m", "backend", "analytics:write");
    writer["email"] = json!(EMAIL);
    let writer = issuer.sign(&writer).unwrap();
    let reader = issuer
        .sign(&claims("org-m", "admin-m", "itwin-platform"))
        .unwrap();
    let store = catalytics::store::open(None, data_dir).await.unwrap();
    store
        .grant(&catalytics::domain::AccessGrant {
            org: catalytics::domain::OrgId::parse("org-m").unwrap(),
            user: catalytics::domain::UserId::parse("admin-m").unwrap(),
            grant: catalytics::domain::Grant::Role(catalytics::domain::Role::AccountAdministrator),
        })
        .await
        .unwrap();
    drop(store);
    let client = reqwest::Client::new();
    let events: Vec<Value> = (0..3)
        .map(|i| to_wire(&event("org-m", &format!("2024-01-01T00:00:0{i}.000Z"))))
        .collect();
    let response = client
        .post(format!("http://{addr}/library/components/analytics/events"))
        .bearer_auth(&writer)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(format!("http://{addr}{DOWNLOAD}?{}", wide()))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(parse_csv(&body).1.len(), 3);
    (vec![writer, reader], body.len())
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(found.len(), 1, "one sample {name}{labels:?}: {found:?}");
    found[0]
}

async fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_an_ingest_and_a_download() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("log");
    let (child, addr) = serve_logging_to(data.path(), &log, &[]);
    let before = scrape(&addr).await;
    assert_eq!(
        sample(&before, "catalytics_events_accepted_total", &[]),
        0.0
    );
    assert_eq!(sample(&before, "catalytics_export_rows_total", &[]), 0.0);
    let (_, csv_len) = ingest_and_download(data.path(), &addr).await;
    // Counters move when the body has been streamed: wait for the slot.
    let mut after = scrape(&addr).await;
    for _ in 0..50 {
        if sample(&after, "catalytics_downloads_in_flight", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = scrape(&addr).await;
    }
    stop(child);
    assert_eq!(sample(&after, "catalytics_events_accepted_total", &[]), 3.0);
    assert_eq!(
        sample(&after, "catalytics_events_duplicates_total", &[]),
        0.0
    );
    assert_eq!(sample(&after, "catalytics_export_rows_total", &[]), 3.0);
    assert_eq!(
        sample(&after, "catalytics_export_bytes_total", &[]),
        csv_len as f64
    );
    assert_eq!(sample(&after, "catalytics_downloads_in_flight", &[]), 0.0);
    let download = [("route", DOWNLOAD), ("status", "200"), ("method", "GET")];
    assert_eq!(sample(&after, "http_requests_total", &download), 1.0);
    let events = [
        ("route", "/library/components/analytics/events"),
        ("status", "200"),
        ("method", "POST"),
    ];
    assert_eq!(sample(&after, "http_requests_total", &events), 1.0);
    let latency = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "http_request_duration_seconds" && s.labels.get("route") == Some(DOWNLOAD)
        })
        .expect("a latency histogram for the download route");
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().map(|b| b.count), Some(1.0), "{buckets:?}");
        }
        other => panic!("a histogram, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_hold_no_escape_codes_tokens_or_emails() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let (child, addr) = serve_logging_to(data.path(), &log, &[]);
    let (tokens, _) = ingest_and_download(data.path(), &addr).await;
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("listening"), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in a file:\n{text}");
    assert_no_secrets(&text, &tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let (child, addr) = serve_logging_to(data.path(), &log, &["--log-format", "json"]);
    let (tokens, _) = ingest_and_download(data.path(), &addr).await;
    // A refused request is logged too.
    let refused = reqwest::get(format!("http://{addr}{DOWNLOAD}"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 5, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["route"] == DOWNLOAD && l["span"]["request_id"].is_string()),
        "request spans carry route and request id:\n{text}"
    );
    assert!(!text.contains('\x1b'));
    assert_no_secrets(&text, &tokens);
}

fn assert_no_secrets(log: &str, tokens: &[String]) {
    for token in tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token in the log:\n{log}");
    }
    assert!(!log.contains(EMAIL), "an email in the log:\n{log}");
    assert!(!log.contains("@example.com"), "an email in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = json_of(response).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let mut s: Vec<String> = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} documented"))
            .keys()
            .cloned()
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        statuses(DOWNLOAD, "get"),
        ["200", "400", "401", "403", "414", "422", "429", "431", "500", "503"]
    );
    assert_eq!(
        statuses("/library/components/analytics/events", "post"),
        ["200", "400", "401", "403", "408", "413", "414", "415", "422", "431", "500", "503"]
    );
    assert_eq!(
        statuses("/library/components/analytics/erasures", "post"),
        ["200", "400", "401", "403", "408", "414", "422", "431", "500", "503"]
    );
    let mut paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration",
            "/auth/login-link",
            "/health",
            "/health/ready",
            DOWNLOAD,
            "/library/components/analytics/erasures",
            "/library/components/analytics/events",
            "/library/components/analytics/summary",
            "/metrics",
            "/openapi.json",
        ]
    );
    assert_eq!(
        statuses("/library/components/analytics/summary", "get"),
        ["200", "400", "401", "403", "414", "422", "431", "500", "503"]
    );
    assert_eq!(
        statuses("/auth/login-link", "post"),
        ["200", "400", "401", "404", "408", "414", "422", "431", "500", "503"]
    );
    let redeem = &doc["paths"]["/auth/login-link"]["post"];
    assert_eq!(redeem["security"], Value::Null, "no bearer token needed");
    assert_eq!(
        redeem["requestBody"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/LoginLinkBody" })
    );
    // Every documented operation is served (none falls to the 404 fallback).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(path));
            let status = request.send().await.unwrap().status();
            assert_ne!(status, 404, "{method} {path}");
            assert_ne!(status, 405, "{method} {path}");
        }
    }
    let download = &doc["paths"][DOWNLOAD]["get"];
    assert_eq!(download["security"], json!([{ "bearer": [] }]));
    let params: Vec<&str> = download["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["startDate", "endDate"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_the_postgres_pool() {
    crate::common::PgDatabase::scoped(|db| async move {
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("log");
        let (child, addr) =
            serve_logging_to(data.path(), &log, &["--database-url", db.url.as_str()]);
        // A readiness probe holds a pooled connection for a moment.
        let ready = reqwest::get(format!("http://{addr}/health/ready"))
            .await
            .unwrap();
        assert_eq!(ready.status(), 204);
        // The probe's connection goes back to the pool when its handler's
        // guard drops, which may be just after the answer is sent: scrape
        // until it shows (bounded), then check the whole picture.
        let pool = |scraped: &prometheus_parse::Scrape, state: &str| {
            sample(
                scraped,
                "catalytics_store_pool_connections",
                &[("state", state)],
            )
        };
        let mut scraped = scrape(&addr).await;
        for _ in 0..50 {
            if pool(&scraped, "idle") >= 1.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            scraped = scrape(&addr).await;
        }
        stop(child);
        let (max, idle) = (pool(&scraped, "max"), pool(&scraped, "idle"));
        let in_use = pool(&scraped, "in_use");
        assert!(max >= 1.0, "{max}");
        assert!(idle >= 1.0, "the probe's connection went back: {idle}");
        assert!(in_use + idle <= max);
    })
    .await;
}
