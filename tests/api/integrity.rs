//! DESIGN §3.1 over HTTP, on both stores: a duplicate changes nothing,
//! conflicts are named and not stored, ingest tokens are bound to their
//! organization, text either store can hold, compressed bodies.

use crate::helpers::*;
use crate::ingest::{answer, body_of};
use catalytics::ingest::to_wire;
use serde_json::{json, Value};

const EVENTS: &str = "/library/components/analytics/events";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// Changes one field of a wire event.
type Edit = fn(&mut Value);
/// Puts a value into one field of a wire event.
type Put = fn(&mut Value, Value);

fn wire(org: &str, ts: &str) -> Value {
    to_wire(&event(org, ts))
}

/// `wire` about another component, so its names never touch component-1's.
fn other_component(org: &str, ts: &str, component: &str) -> Value {
    let mut e = wire(org, ts);
    e["component"]["id"] = json!(component);
    e["component"]["displayName"] = json!(format!("Name of {component}"));
    e
}

/// The CSV row of a stored wire event whose names are current.
fn row(e: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut catalogs: Vec<String> = e["component"]["catalogs"]
        .as_array()
        .map(|c| c.iter().map(|c| text(&c["displayName"])).collect())
        .unwrap_or_default();
    catalogs.sort();
    vec![
        text(&e["timestamp"]),
        text(&e["event"]),
        text(&e["component"]["id"]),
        text(&e["component"]["displayName"]),
        catalogs.join("; "),
        text(&e["component"]["category"]),
        text(&e["component"]["manufacturer"]),
        text(&e["application"]),
        text(&e["projectId"]),
        text(&e["user"]["id"]),
        text(&e["user"]["email"]),
    ]
}

fn batch(events: &[&Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

async fn a_duplicate_changes_nothing() {
    let app = spawn_app().await;
    let original = wire("org-a", "2024-01-01T00:00:00.000Z");
    let response = app.post_json(std::slice::from_ref(&original)).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[])));
    let mut hijack = original.clone();
    hijack["component"]["displayName"] = json!("=HIJACKED");
    hijack["component"]["catalogs"] = json!([{"id": "cat-evil", "displayName": "Evil"}]);
    hijack["component"]["category"] = json!("Hijacked");
    hijack["component"]["manufacturer"] = json!("Hijacked");
    hijack["user"]["email"] = json!("attacker@example.com");
    let response = app.post_json(&[hijack]).await;
    assert_eq!(body_of(response).await, (200, answer(0, 1, &[])));
    assert_eq!(app.rows("org-a").await, vec![row(&original)]);

    // Within one batch the first occurrence is the event, names included.
    let first = other_component("org-a", "2024-01-02T00:00:00.000Z", "component-2");
    let mut again = first.clone();
    again["component"]["displayName"] = json!("Second name");
    again["user"]["email"] = json!("second@example.com");
    let response = app.post_json(&[first.clone(), again]).await;
    assert_eq!(body_of(response).await, (200, answer(1, 1, &[])));
    assert_eq!(app.rows("org-a").await, vec![row(&original), row(&first)]);
}

async fn conflicts_are_named_and_not_stored() {
    let app = spawn_app().await;
    let stored = wire("org-a", "2024-01-01T00:00:00.000Z");
    let response = app.post_json(std::slice::from_ref(&stored)).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[])));
    let facts: [(&str, Edit); 7] = [
        ("timestamp", |e| {
            e["timestamp"] = json!("2024-01-01T00:00:00.001Z")
        }),
        ("event", |e| e["event"] = json!("Place")),
        ("component.id", |e| {
            e["component"]["id"] = json!("component-9")
        }),
        ("user.id", |e| e["user"]["id"] = json!("user-9")),
        ("application", |e| e["application"] = json!("Other 1.0")),
        ("projectId", |e| e["projectId"] = json!(null)),
        ("organizationId", |e| e["organizationId"] = json!("org-b")),
    ];
    let mut expected = vec![row(&stored)];
    for (i, (fact, change)) in facts.into_iter().enumerate() {
        let mut conflict = stored.clone();
        change(&mut conflict);
        conflict["component"]["displayName"] = json!("=HIJACKED");
        let fresh = other_component(
            "org-a",
            &format!("2024-01-0{}T00:00:00.000Z", i + 2),
            "component-fresh",
        );
        let response = app.post_json(&[conflict.clone(), fresh.clone()]).await;
        assert_eq!(
            body_of(response).await,
            (200, answer(1, 0, &[&conflict])),
            "{fact}"
        );
        expected.push(row(&fresh));
    }
    // The fresh rows name component-fresh with its latest (identical) name.
    assert_eq!(app.rows("org-a").await, expected);
    assert!(app.rows("org-b").await.is_empty());

    // Within one batch: the first occurrence is the event, the second a
    // conflict of it.
    let first = other_component("org-a", "2024-02-01T00:00:00.000Z", "component-3");
    let mut second = first.clone();
    second["event"] = json!("Download");
    let response = app.post_json(&[first.clone(), second.clone()]).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[&second])));
    expected.push(row(&first));
    assert_eq!(app.rows("org-a").await, expected);

    // All are counted, the first 100 named.
    let many: Vec<Value> = (0..120)
        .map(|i| {
            other_component(
                "org-c",
                &format!("2024-03-01T00:{:02}:{:02}.000Z", i / 60, i % 60),
                "component-4",
            )
        })
        .collect();
    let response = app.post_json(&many).await;
    assert_eq!(body_of(response).await, (200, answer(120, 0, &[])));
    let moved: Vec<Value> = many
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["user"]["id"] = json!("someone-else");
            e
        })
        .collect();
    let (status, body) = body_of(app.post_json(&moved).await).await;
    assert_eq!(status, 200);
    let named: Vec<Value> = many[..100].iter().map(|e| e["id"].clone()).collect();
    assert_eq!(
        body,
        json!({"accepted": 0, "duplicates": 0, "conflicts": 120, "conflicting": named})
    );
    assert_eq!(
        app.rows("org-c").await,
        many.iter().map(row).collect::<Vec<_>>()
    );
}

async fn ingest_tokens_are_bound_to_their_organization() {
    let app = spawn_app().await;
    let bound = app.org_reporter("org-a");
    let a = wire("org-a", "2024-01-01T00:00:00.000Z");
    let a2 = other_component("org-a", "2024-01-02T00:00:00.000Z", "component-2");
    let b = wire("org-b", "2024-01-01T00:00:00.000Z");
    let response = app.post_events(&bound, JSON, batch(&[&a])).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[])));
    let response = app.post_events(&bound, JSON, batch(&[&a2, &b])).await;
    assert_eq!(
        body_of(response).await,
        (403, insufficient_permissions()),
        "one event of another organization refuses the batch"
    );
    assert_eq!(app.rows("org-a").await, vec![row(&a)], "nothing stored");
    assert!(app.rows("org-b").await.is_empty());
    // A token without the organization claim reports for every organization.
    let response = app
        .post_events(&app.reporter(), JSON, batch(&[&a2, &b]))
        .await;
    assert_eq!(body_of(response).await, (200, answer(2, 0, &[])));
    assert_eq!(app.rows("org-a").await, vec![row(&a), row(&a2)]);
    assert_eq!(app.rows("org-b").await, vec![row(&b)]);
}

fn invalid_events(details: Value) -> Value {
    json!({"error": {"code": "InvalidAnalyticsEventsRequest", "message": "Cannot perform operation.", "details": details}})
}

fn detail(message: &str, target: &str) -> Value {
    json!({"code": "InvalidValue", "message": message, "target": target})
}

async fn nul_and_repeated_keys_are_refused_on_both_stores() {
    let app = spawn_app().await;
    let good = wire("org-a", "2024-01-01T00:00:00.000Z");
    let nul = json!("a\u{0}b");
    let places: [(&str, &str, Put); 10] = [
        ("component.displayName", "displayName", |e, v| {
            e["component"]["displayName"] = v
        }),
        (
            "component.catalogs[0].displayName",
            "displayName",
            |e, v| e["component"]["catalogs"][0]["displayName"] = v,
        ),
        ("component.catalogs[0].id", "id", |e, v| {
            e["component"]["catalogs"][0]["id"] = v
        }),
        ("component.category", "category", |e, v| {
            e["component"]["category"] = v
        }),
        ("component.manufacturer", "manufacturer", |e, v| {
            e["component"]["manufacturer"] = v
        }),
        ("component.id", "id", |e, v| e["component"]["id"] = v),
        ("user.email", "email", |e, v| e["user"]["email"] = v),
        ("application", "application", |e, v| e["application"] = v),
        ("projectId", "projectId", |e, v| e["projectId"] = v),
        ("organizationId", "organizationId", |e, v| {
            e["organizationId"] = v
        }),
    ];
    for (path, key, set) in places {
        let mut bad = good.clone();
        set(&mut bad, nul.clone());
        let response = app.post_json(&[good.clone(), bad]).await;
        assert_eq!(
            body_of(response).await,
            (
                422,
                invalid_events(json!([detail(
                    &format!("Property '{key}' must not contain U+0000."),
                    &format!("events[1].{path}")
                )]))
            ),
            "{path}"
        );
    }
    // A repeated key, in JSON and in NDJSON.
    let text = String::from_utf8(batch(&[&good])).unwrap().replacen(
        "\"organizationId\":",
        "\"organizationId\":\"org-b\",\"organizationId\":",
        1,
    );
    let response = app.post_events(&app.reporter(), JSON, text).await;
    assert_eq!(
        body_of(response).await,
        (
            422,
            invalid_events(json!([detail(
                "Property 'organizationId' must appear only once.",
                "events[0].organizationId"
            )]))
        )
    );
    let line = good
        .to_string()
        .replacen("\"event\":", "\"event\":\"Place\",\"event\":", 1);
    let response = app
        .post_events(&app.reporter(), NDJSON, format!("{good}\n{line}\n"))
        .await;
    assert_eq!(
        body_of(response).await,
        (
            422,
            invalid_events(json!([detail(
                "Property 'event' must appear only once.",
                "events[1].event"
            )]))
        )
    );
    assert!(app.rows("org-a").await.is_empty(), "nothing stored");
    assert!(app.rows("org-b").await.is_empty());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post_encoded(
    app: &TestApp,
    content_type: &str,
    encoding: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.url(EVENTS))
        .header("Authorization", app.reporter())
        .header("Content-Type", content_type)
        .header("Content-Encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn gzip_bodies_are_inflated_within_the_limit() {
    let app = spawn_app().await;
    let a = wire("org-a", "2024-01-01T00:00:00.000Z");
    let b = other_component("org-a", "2024-01-02T00:00:00.000Z", "component-2");
    let response = post_encoded(&app, JSON, "gzip", gzip(&batch(&[&a]))).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[])));
    let response = post_encoded(&app, NDJSON, "gzip", gzip(format!("{b}\n").as_bytes())).await;
    assert_eq!(body_of(response).await, (200, answer(1, 0, &[])));
    assert_eq!(app.rows("org-a").await, vec![row(&a), row(&b)]);

    // A gzip bomb: 1 GiB of zeros in 1,024 members of 1 MiB, about 1 MiB
    // sent. Refused once 16 MiB are inflated.
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1024)
        .collect();
    assert!(bomb.len() < 2 << 20);
    let response = post_encoded(&app, JSON, "gzip", bomb).await;
    assert_eq!(
        body_of(response).await,
        (
            413,
            error_body(
                "PayloadTooLarge",
                "The request body is too large: at most 10000 events and 16 MiB per request."
            )
        )
    );
    let response = post_encoded(&app, JSON, "gzip", batch(&[&a])).await;
    assert_eq!(
        body_of(response).await,
        (
            422,
            invalid_events(
                json!([{"code": "InvalidBody", "message": "The request body is not valid gzip.", "target": "body"}])
            )
        )
    );
    for coding in ["br", "deflate", "gzip, br"] {
        let response = post_encoded(&app, JSON, coding, batch(&[&a])).await;
        assert_eq!(
            body_of(response).await,
            (
                415,
                error_body(
                    "UnsupportedMediaType",
                    "The request body must be application/json or application/x-ndjson, optionally gzip-compressed."
                )
            ),
            "{coding}"
        );
    }
    assert_eq!(app.rows("org-a").await, vec![row(&a), row(&b)]);
}

crate::both_backends!(
    a_duplicate_changes_nothing,
    conflicts_are_named_and_not_stored,
    ingest_tokens_are_bound_to_their_organization,
    nul_and_repeated_keys_are_refused_on_both_stores,
    gzip_bodies_are_inflated_within_the_limit,
);
