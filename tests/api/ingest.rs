//! `POST /library/components/analytics/events` over HTTP.

use crate::helpers::*;
use catalytics::ingest::to_wire;
use serde_json::{json, Value};

const EVENTS: &str = "/library/components/analytics/events";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

impl TestApp {
    /// A multi-organization service token (no organization claim), as
    /// the component library backend holds.
    pub fn reporter(&self) -> String {
        let claims = service_claims("library-backend", "analytics:write");
        format!("Bearer {}", self.token_with(&claims))
    }

    /// An ingest token bound to `org`.
    pub fn org_reporter(&self, org: &str) -> String {
        format!(
            "Bearer {}",
            self.token(org, "org-backend", "analytics:write")
        )
    }

    pub async fn post_events(
        &self,
        bearer: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(EVENTS))
            .header("Authorization", bearer)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, events: &[Value]) -> reqwest::Response {
        let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
        self.post_events(&self.reporter(), JSON, body).await
    }

    pub async fn rows(&self, org: &str) -> Vec<Vec<String>> {
        let bearer = self.admin_bearer(org).await;
        let response = self.get_download(Some(&bearer), &wide()).await;
        assert_eq!(response.status(), 200);
        parse_csv(&response.bytes().await.unwrap()).1
    }
}

fn wire(ts: &str) -> Value {
    to_wire(&event("org-a", ts))
}

/// The counts of a 200 answer without conflicts (asserting the whole body).
async fn outcome(response: reqwest::Response) -> (u64, u64) {
    assert_eq!(response.status(), 200);
    let v = json_of(response).await;
    let counts = (
        v["accepted"].as_u64().unwrap(),
        v["duplicates"].as_u64().unwrap(),
    );
    assert_eq!(v, answer(counts.0, counts.1, &[]));
    counts
}

/// A whole 200 body; `conflicts` counts `conflicting`.
pub fn answer(accepted: u64, duplicates: u64, conflicting: &[&Value]) -> Value {
    json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "conflicts": conflicting.len(),
        "conflicting": conflicting.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(),
    })
}

pub async fn body_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

async fn accepts_json_and_ndjson() {
    let app = spawn_app().await;
    let batch = [
        wire("2024-01-01T00:00:00.000Z"),
        wire("2024-01-01T00:00:01.000Z"),
    ];
    assert_eq!(outcome(app.post_json(&batch).await).await, (2, 0));
    let ndjson: String = [
        wire("2024-01-02T00:00:00.000Z"),
        wire("2024-01-02T00:00:01.000Z"),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>()
        + "\n";
    let response = app
        .post_events(
            &app.reporter(),
            "application/x-ndjson; charset=utf-8",
            ndjson,
        )
        .await;
    assert_eq!(outcome(response).await, (2, 0));
    assert_eq!(app.rows("org-a").await.len(), 4);
    // An empty batch is a no-op, not an error.
    assert_eq!(outcome(app.post_json(&[]).await).await, (0, 0));
}

fn detail(code: &str, message: &str, target: &str) -> Value {
    json!({"code": code, "message": message, "target": target})
}

fn missing(target: &str) -> Value {
    detail(
        "MissingRequiredProperty",
        "Required property is missing.",
        target,
    )
}

fn invalid(message: &str, target: &str) -> Value {
    detail("InvalidValue", message, target)
}

const OPAQUE: &str =
    "must be a non-empty string of at most 256 characters without control characters";

async fn reports_every_defect_with_its_path() {
    let app = spawn_app().await;
    let good = wire("2024-01-01T00:00:00.000Z");
    let set = |path: &[&str], v: Value| {
        let mut e = good.clone();
        let mut cur = &mut e;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        let last = path[path.len() - 1];
        if v == json!("__remove__") {
            cur.as_object_mut().unwrap().remove(last);
        } else {
            cur[last] = v;
        }
        e
    };
    let remove = json!("__remove__");
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (set(&["id"], remove.clone()), vec![missing("events[0].id")]),
        (set(&["id"], json!("not-a-uuid")), vec![invalid("Property 'id' must be a UUID.", "events[0].id")]),
        (set(&["id"], json!(42)), vec![invalid("Property 'id' must be a string.", "events[0].id")]),
        (set(&["organizationId"], json!("")), vec![invalid(&format!("Property 'organizationId' {OPAQUE}."), "events[0].organizationId")]),
        (set(&["organizationId"], json!("x".repeat(257))), vec![invalid(&format!("Property 'organizationId' {OPAQUE}."), "events[0].organizationId")]),
        (set(&["timestamp"], json!("2024-01-01T00:00:00Z")), vec![invalid("Property 'timestamp' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'.", "events[0].timestamp")]),
        (set(&["timestamp"], json!("2023-02-29T00:00:00.000Z")), vec![invalid("Property 'timestamp' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'.", "events[0].timestamp")]),
        (set(&["timestamp"], remove.clone()), vec![missing("events[0].timestamp")]),
        (set(&["event"], json!("view")), vec![invalid("Property 'event' must be one of View, Download, Place.", "events[0].event")]),
        (set(&["event"], json!("Delete")), vec![invalid("Property 'event' must be one of View, Download, Place.", "events[0].event")]),
        (set(&["component"], remove.clone()), vec![missing("events[0].component")]),
        (set(&["component"], json!("c-1")), vec![invalid("Property 'component' must be an object.", "events[0].component")]),
        (set(&["component", "id"], json!("")), vec![invalid(&format!("Property 'id' {OPAQUE}."), "events[0].component.id")]),
        (set(&["component", "displayName"], remove.clone()), vec![missing("events[0].component.displayName")]),
        (set(&["component", "displayName"], json!("n".repeat(1025))), vec![invalid("Property 'displayName' must be a non-empty string of at most 1024 characters.", "events[0].component.displayName")]),
        (set(&["component", "catalogs"], json!("MEP")), vec![invalid("Property 'catalogs' must be an array of at most 100 catalogs.", "events[0].component.catalogs")]),
        (set(&["component", "catalogs"], json!([{"id": "c"}])), vec![missing("events[0].component.catalogs[0].displayName")]),
        (set(&["component", "catalogs"], json!([7])), vec![invalid("Catalog must be an object.", "events[0].component.catalogs[0]")]),
        (set(&["component", "category"], json!(3)), vec![invalid("Property 'category' must be a string.", "events[0].component.category")]),
        (set(&["user"], remove.clone()), vec![missing("events[0].user")]),
        (set(&["user", "email"], remove.clone()), vec![missing("events[0].user.email")]),
        (set(&["user", "email"], json!(format!("{}@x.com", "a".repeat(320)))), vec![invalid("Property 'email' must be a non-empty string of at most 320 characters.", "events[0].user.email")]),
        (set(&["user", "id"], json!("a\u{0}b")), vec![invalid("Property 'id' must not contain U+0000.", "events[0].user.id")]),
        (set(&["user", "id"], json!("a\u{7}b")), vec![invalid(&format!("Property 'id' {OPAQUE}."), "events[0].user.id")]),
        (set(&["application"], json!("")), vec![invalid("Property 'application' must be a non-empty string of at most 1024 characters.", "events[0].application")]),
        (set(&["projectId"], json!(["p"])), vec![invalid("Property 'projectId' must be a string.", "events[0].projectId")]),
        (json!("not an object"), vec![invalid("Event must be a JSON object.", "events[0]")]),
        (
            set(&["timestamp"], json!("yesterday")).pipe(|e| { let mut e = e; e["event"] = json!("Open"); e["user"] = json!(null); e }),
            vec![
                invalid("Property 'timestamp' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'.", "events[0].timestamp"),
                invalid("Property 'event' must be one of View, Download, Place.", "events[0].event"),
                missing("events[0].user"),
            ],
        ),
    ];
    assert!(cases.len() >= 15);
    for (bad, details) in cases {
        let response = app.post_json(std::slice::from_ref(&bad)).await;
        assert_eq!(response.status(), 422, "{bad}");
        assert_eq!(
            json_of(response).await,
            json!({"error": {"code": "InvalidAnalyticsEventsRequest", "message": "Cannot perform operation.", "details": details}}),
            "{bad}"
        );
    }
    assert!(app.rows("org-a").await.is_empty(), "nothing was stored");
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

async fn malformed_bodies_give_positions() {
    let app = spawn_app().await;
    let response = app
        .post_events(&app.reporter(), JSON, "{\"events\": [")
        .await;
    assert_eq!(response.status(), 422);
    let v = json_of(response).await;
    assert_eq!(v["error"]["details"][0]["code"], "InvalidJson");
    assert_eq!(v["error"]["details"][0]["target"], "body");
    assert_eq!(
        v["error"]["details"][0]["message"],
        "Request body is not valid JSON: unexpected end of input at line 1 column 12."
    );
    let response = app
        .post_events(&app.reporter(), JSON, "{\"items\": []}")
        .await;
    assert_eq!(
        json_of(response).await["error"]["details"],
        json!([missing("events")])
    );
    let body = format!("{}\n{{\"id\": oops}}\n", wire("2024-01-01T00:00:00.000Z"));
    let response = app.post_events(&app.reporter(), NDJSON, body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        json_of(response).await["error"]["details"],
        json!([detail(
            "InvalidJson",
            "Line 2 is not valid JSON: syntax error at line 1 column 8.",
            "events[1]"
        )])
    );
    assert!(
        app.rows("org-a").await.is_empty(),
        "the good line was not stored either"
    );
}

async fn a_bad_event_keeps_the_whole_batch_out() {
    let app = spawn_app().await;
    let mut bad = wire("2024-01-01T00:00:01.000Z");
    bad["event"] = json!("Nope");
    let good = wire("2024-01-01T00:00:00.000Z");
    assert_eq!(app.post_json(&[good.clone(), bad]).await.status(), 422);
    assert!(app.rows("org-a").await.is_empty());
    assert_eq!(
        outcome(app.post_json(&[good]).await).await,
        (1, 0),
        "the good event was never stored"
    );
}

async fn duplicates_within_and_across_batches_are_stored_once() {
    let app = spawn_app().await;
    let a = wire("2024-01-01T00:00:00.000Z");
    let b = wire("2024-01-01T00:00:01.000Z");
    assert_eq!(
        outcome(app.post_json(&[a.clone(), a.clone(), b.clone()]).await).await,
        (2, 1)
    );
    assert_eq!(
        outcome(app.post_json(&[b.clone(), a.clone()]).await).await,
        (0, 2)
    );
    assert_eq!(app.rows("org-a").await.len(), 2);
}

async fn concurrent_identical_batches_store_each_event_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let batch: Vec<Value> = (0..500)
        .map(|i| wire(&format!("2024-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60)))
        .collect();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, batch) = (app.clone(), batch.clone());
        tasks.push(tokio::spawn(async move {
            outcome(app.post_json(&batch).await).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (a, d) = t.await.unwrap();
        assert_eq!(a + d, 500);
        accepted += a;
    }
    assert_eq!(accepted, 500);
    assert_eq!(app.rows("org-a").await.len(), 500);
}

async fn oversized_requests_are_413() {
    let app = spawn_app().await;
    let one = wire("2024-01-01T00:00:00.000Z");
    let too_many: Vec<Value> = (0..10_001).map(|_| one.clone()).collect();
    let expected = error_body(
        "PayloadTooLarge",
        "The request body is too large: at most 10000 events and 16 MiB per request.",
    );
    let response = app.post_json(&too_many).await;
    assert_eq!(response.status(), 413);
    assert_eq!(json_of(response).await, expected);
    let ndjson = format!("{one}\n").repeat(10_001);
    let response = app.post_events(&app.reporter(), NDJSON, ndjson).await;
    assert_eq!(response.status(), 413);
    // 17 MiB declared up front: refused before a byte of the body is read.
    let head = format!(
        "POST {EVENTS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\n\r\n",
        app.reporter(),
        17 * 1024 * 1024
    );
    let (status, body) = raw_exchange(&app, head.as_bytes()).await;
    assert_eq!(status, 413);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    // Streamed without a length: refused once the reader passes 16 MiB.
    let mut request = format!(
        "POST {EVENTS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {JSON}\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.reporter()
    )
    .into_bytes();
    for _ in 0..16 {
        request.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        request.extend(std::iter::repeat_n(b' ', 1 << 20));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"1\r\n \r\n"); // the byte over the limit
    let (status, body) = raw_exchange(&app, &request).await;
    assert_eq!(status, 413);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    // Exactly 10,000 is fine.
    let max: Vec<Value> = (0..10_000)
        .map(|i| {
            wire(&format!(
                "2024-01-01T{:02}:{:02}:{:02}.000Z",
                i / 3600,
                (i / 60) % 60,
                i % 60
            ))
        })
        .collect();
    assert_eq!(outcome(app.post_json(&max).await).await, (10_000, 0));
}

async fn needs_the_ingest_scope_and_a_json_body() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({"events": [wire("2024-01-01T00:00:00.000Z")]})).unwrap();
    let download_only = format!("Bearer {}", app.token("org-a", "u", "itwin-platform"));
    assert_invalid_token(
        app.post_events(&download_only, JSON, body.clone()).await,
        "download scope",
    )
    .await;
    let response = app
        .client
        .post(app.url(EVENTS))
        .header("Content-Type", JSON)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for ct in ["text/plain", "application/xml", "multipart/form-data"] {
        let response = app.post_events(&app.reporter(), ct, body.clone()).await;
        assert_eq!(response.status(), 415, "{ct}");
        assert_eq!(
            json_of(response).await,
            error_body(
                "UnsupportedMediaType",
                "The request body must be application/json or application/x-ndjson, optionally gzip-compressed."
            )
        );
    }
    let response = app
        .client
        .post(app.url(EVENTS))
        .header("Authorization", app.reporter())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "no content type");
    let response = app.client.get(app.url(EVENTS)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}

async fn ingested_events_come_back_in_the_download_with_current_names() {
    let app = spawn_app().await;
    let mut first = event("org-a", "2024-01-01T10:00:00.000Z");
    first.component.catalogs = vec![];
    let mut later = event("org-a", "2024-01-02T10:00:00.000Z");
    later.component.display_name =
        catalytics::domain::Name::parse("Gate Valve DN 100 (rev B)").unwrap();
    later.user.email = catalytics::domain::Name::parse("new-address@example.com").unwrap();
    later = with_catalogs(later, &[("cat-2", "Zeta"), ("cat-1", "Alpha")]);
    later.kind = catalytics::domain::EventKind::Download;
    let mut old_news = event("org-a", "2023-12-31T10:00:00.000Z");
    old_news.component.display_name = catalytics::domain::Name::parse("Ancient Name").unwrap();
    old_news.application = None;
    old_news.project_id = None;
    // The newest event arrives first, the oldest last: event time decides names.
    assert_eq!(
        outcome(app.post_json(&[to_wire(&later)]).await).await,
        (1, 0)
    );
    assert_eq!(
        outcome(app.post_json(&[to_wire(&first)]).await).await,
        (1, 0)
    );
    assert_eq!(
        outcome(app.post_json(&[to_wire(&old_news)]).await).await,
        (1, 0)
    );
    let rows = app.rows("org-a").await;
    let expect = |e: &catalytics::domain::Event| {
        vec![
            e.timestamp.to_wire(),
            e.kind.as_str().to_owned(),
            "component-1".to_owned(),
            "Gate Valve DN 100 (rev B)".to_owned(),
            "Alpha; Zeta".to_owned(),
            "Valves".to_owned(),
            "Velan".to_owned(),
            e.application
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            e.project_id
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            "user-1".to_owned(),
            "new-address@example.com".to_owned(),
        ]
    };
    assert_eq!(
        rows,
        vec![expect(&old_news), expect(&first), expect(&later)]
    );
}

crate::both_backends!(
    accepts_json_and_ndjson,
    reports_every_defect_with_its_path,
    malformed_bodies_give_positions,
    a_bad_event_keeps_the_whole_batch_out,
    duplicates_within_and_across_batches_are_stored_once,
    concurrent_identical_batches_store_each_event_once,
    oversized_requests_are_413,
    needs_the_ingest_scope_and_a_json_body,
    ingested_events_come_back_in_the_download_with_current_names,
);

/// Writes `request` on a fresh connection, then reads one response (status
/// and body). A raw socket, because an HTTP client that is still uploading
/// when an early 413 arrives may report a broken pipe instead of the answer.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await; // the server closes after answering
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, body.as_bytes().to_vec())
}
