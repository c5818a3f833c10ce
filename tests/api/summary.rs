//! `GET …/summary`: every figure equals what the CSV of the same window
//! gives; buckets are aligned and gapless; errors are the download's.

use crate::helpers::*;
use catalytics::domain::{Event, EventKind, Name, OpaqueId, Timestamp, UserId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const SUMMARY: &str = "/library/components/analytics/summary";

async fn get_summary(app: &TestApp, authorization: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("{SUMMARY}?{query}")));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap()
}

async fn summary_json(app: &TestApp, bearer: &str, query: &str) -> Value {
    let response = get_summary(app, Some(bearer), query).await;
    assert_eq!(response.status(), 200, "{query}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    json_of(response).await
}

/// An event of `kind` on component `c<component>` by user `u<user>`.
fn usage(org: &str, ts: &str, kind: EventKind, component: u32, user: u32) -> Event {
    let mut e = event(org, ts);
    e.kind = kind;
    e.component.id = OpaqueId::parse(format!("c{component:02}")).unwrap();
    e.component.display_name = Name::parse(format!("Component {component}")).unwrap();
    e.user.id = UserId::parse(format!("u{user:02}")).unwrap();
    e.user.email = Name::parse(format!("u{user:02}@example.com")).unwrap();
    e
}

fn at(millis: i64) -> String {
    Timestamp::from_millis(millis).to_wire()
}

fn ms(wire: &str) -> i64 {
    Timestamp::parse(wire).unwrap().millis()
}

/// Varied usage in org-a from 2024-01-25 to 2024-03-05 (a leap February,
/// weeks across month ends, 14 components and 12 users with ties), plus
/// events of org-b that must never count.
fn seed() -> Vec<Event> {
    let kinds = [EventKind::View, EventKind::Download, EventKind::Place];
    let base = ms("2024-01-25T00:00:00.000Z");
    let mut events = Vec::new();
    for i in 0..600u32 {
        // Every ~96 minutes; skips whole days now and then for zero buckets.
        let offset = i64::from(i) * 5_760_000 + i64::from(i % 7) * 61_000;
        if (offset / 86_400_000) % 9 == 4 {
            continue;
        }
        let component = (i * 5 + i / 7) % 14;
        let user = (i * 7) % 12;
        events.push(usage(
            "org-a",
            &at(base + offset),
            kinds[(i % 5 % 3) as usize],
            component,
            user,
        ));
    }
    // Exactly at bucket boundaries.
    events.push(usage(
        "org-a",
        "2024-03-01T00:00:00.000Z",
        EventKind::Place,
        1,
        1,
    ));
    events.push(usage(
        "org-a",
        "2024-02-26T00:00:00.000Z",
        EventKind::View,
        2,
        2,
    ));
    events.push(usage(
        "org-a",
        "2024-02-25T23:59:59.999Z",
        EventKind::View,
        2,
        3,
    ));
    for i in 0..40 {
        events.push(usage(
            "org-b",
            &at(base + i * 3_600_000),
            EventKind::Download,
            99,
            99,
        ));
    }
    events
}

/// The summary the CSV of the same window implies, given the bucket starts
/// the server chose (their alignment is asserted separately). Each row
/// counts in the last bucket starting at or before its timestamp.
fn summary_from_csv(
    query_start: &str,
    query_end: &str,
    interval: &str,
    starts: &[String],
    csv: &[u8],
) -> Value {
    let (_, rows) = parse_csv(csv);
    let starts_ms: Vec<i64> = starts.iter().map(|s| ms(s)).collect();
    let mut buckets = vec![[0u64; 3]; starts.len()];
    let mut totals = [0u64; 3];
    let mut components: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut users: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for row in &rows {
        let kind = ["View", "Download", "Place"]
            .iter()
            .position(|k| *k == row[1])
            .unwrap();
        let t = ms(&row[0]);
        let bucket = starts_ms.partition_point(|&s| s <= t) - 1;
        buckets[bucket][kind] += 1;
        totals[kind] += 1;
        components
            .entry(row[2].clone())
            .or_insert((row[3].clone(), 0))
            .1 += 1;
        users
            .entry(row[9].clone())
            .or_insert((row[10].clone(), 0))
            .1 += 1;
    }
    let top = |m: &BTreeMap<String, (String, u64)>, label: &str| -> Vec<Value> {
        let mut v: Vec<_> = m.iter().collect();
        // BTreeMap iterates ids ascending; a stable sort keeps that for ties.
        v.sort_by_key(|(_, (_, n))| std::cmp::Reverse(*n));
        v.into_iter()
            .take(10)
            .map(|(id, (l, n))| json!({"id": id, label: l, "events": n}))
            .collect()
    };
    json!({
        "startDate": query_start,
        "endDate": query_end,
        "interval": interval,
        "totals": {"View": totals[0], "Download": totals[1], "Place": totals[2],
                   "users": users.len(), "components": components.len()},
        "buckets": starts.iter().zip(&buckets).map(|(s, b)| json!({
            "start": s, "View": b[0], "Download": b[1], "Place": b[2]})).collect::<Vec<_>>(),
        "topComponents": top(&components, "name"),
        "topUsers": top(&users, "email"),
    })
}

fn bucket_starts(body: &Value) -> Vec<String> {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `step` from `first` while before `end`.
fn fixed_starts(first: &str, step: i64, end: &str) -> Vec<String> {
    (0..)
        .map(|i| ms(first) + i * step)
        .take_while(|&t| t < ms(end))
        .map(at)
        .collect()
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn every_figure_equals_the_csv_of_the_same_window() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    app.ingest(seed()).await;
    let month_starts: Vec<String> = ["2024-01-01", "2024-02-01", "2024-03-01"]
        .iter()
        .map(|d| format!("{d}T00:00:00.000Z"))
        .collect();
    let cases: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (
            "2024-02-03T10:30:00.000Z",
            "2024-02-05T00:00:00.000Z",
            "hour",
            fixed_starts("2024-02-03T10:00:00.000Z", HOUR, "2024-02-05T00:00:00.000Z"),
        ),
        (
            "2024-01-27T13:00:00.000Z",
            "2024-03-02T06:00:00.000Z",
            "day",
            fixed_starts("2024-01-27T00:00:00.000Z", DAY, "2024-03-02T06:00:00.000Z"),
        ),
        // 2024-01-27 was a Saturday: the first ISO week began Monday the 22nd.
        (
            "2024-01-27T13:00:00.000Z",
            "2024-03-02T06:00:00.000Z",
            "week",
            fixed_starts(
                "2024-01-22T00:00:00.000Z",
                7 * DAY,
                "2024-03-02T06:00:00.000Z",
            ),
        ),
        (
            "2024-01-27T13:00:00.000Z",
            "2024-03-02T06:00:00.000Z",
            "month",
            month_starts.clone(),
        ),
        (
            "2024-01-01T00:00:00.000Z",
            "2024-04-01T00:00:00.000Z",
            "month",
            month_starts,
        ),
    ];
    for (start, end, interval, expected_starts) in cases {
        let body = summary_json(
            &app,
            &bearer,
            &format!("{}&interval={interval}", window(start, end)),
        )
        .await;
        assert_eq!(bucket_starts(&body), expected_starts, "{interval} {start}");
        let csv = app.get_download(Some(&bearer), &window(start, end)).await;
        assert_eq!(csv.status(), 200);
        let csv = csv.bytes().await.unwrap();
        let expected = summary_from_csv(start, end, interval, &expected_starts, &csv);
        assert_eq!(body, expected, "{interval} {start}..{end}");
        assert!(parse_csv(&csv).1.len() > 20, "the window holds data");
    }
    let body = summary_json(&app, &bearer, &format!("{}&interval=month", wide())).await;
    assert_eq!(body["topComponents"].as_array().unwrap().len(), 10);
    assert_eq!(body["totals"]["components"], 14);
    assert_eq!(body["totals"]["users"], 12);
}

async fn empty_windows_have_zero_buckets_and_empty_lists() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let zero = |start: &str| json!({"start": start, "View": 0, "Download": 0, "Place": 0});
    let expected = |buckets: Vec<Value>| {
        json!({
            "startDate": "2024-02-27T00:00:00.000Z",
            "endDate": "2024-03-02T00:00:00.000Z",
            "interval": "day",
            "totals": {"View": 0, "Download": 0, "Place": 0, "users": 0, "components": 0},
            "buckets": buckets,
            "topComponents": [],
            "topUsers": [],
        })
    };
    let query = window("2024-02-27T00:00:00.000Z", "2024-03-02T00:00:00.000Z");
    let days = ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"];
    let all_zero: Vec<Value> = days
        .iter()
        .map(|d| zero(&format!("{d}T00:00:00.000Z")))
        .collect();
    // No organization row at all yet.
    assert_eq!(
        summary_json(&app, &bearer, &query).await,
        expected(all_zero.clone())
    );
    // Events before, after and in another organization only.
    app.ingest(vec![
        usage("org-a", "2024-02-26T23:59:59.999Z", EventKind::View, 1, 1),
        usage("org-a", "2024-03-02T00:00:00.000Z", EventKind::View, 1, 1),
        usage("org-b", "2024-02-28T12:00:00.000Z", EventKind::View, 1, 1),
    ])
    .await;
    assert_eq!(
        summary_json(&app, &bearer, &query).await,
        expected(all_zero)
    );
    // One event on the leap day: the days around it stay as zero buckets.
    app.ingest(vec![usage(
        "org-a",
        "2024-02-29T08:00:00.000Z",
        EventKind::Download,
        3,
        4,
    )])
    .await;
    let mut one = expected(
        days.iter()
            .map(|d| {
                let mut b = zero(&format!("{d}T00:00:00.000Z"));
                if *d == "2024-02-29" {
                    b["Download"] = json!(1);
                }
                b
            })
            .collect(),
    );
    one["totals"] = json!({"View": 0, "Download": 1, "Place": 0, "users": 1, "components": 1});
    one["topComponents"] = json!([{"id": "c03", "name": "Component 3", "events": 1}]);
    one["topUsers"] = json!([{"id": "u04", "email": "u04@example.com", "events": 1}]);
    assert_eq!(summary_json(&app, &bearer, &query).await, one);
}

async fn top_lists_break_ties_by_id_and_show_current_names() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let mut events = Vec::new();
    // Components c00..c11 with 1 event each, c05 with 3; users likewise.
    for i in 0..12 {
        events.push(usage(
            "org-a",
            "2024-05-01T10:00:00.000Z",
            EventKind::View,
            11 - i,
            11 - i,
        ));
    }
    for _ in 0..2 {
        events.push(usage(
            "org-a",
            "2024-05-01T11:00:00.000Z",
            EventKind::Place,
            5,
            5,
        ));
    }
    // A later event renames c05; the summary shows the current name.
    let mut renamed = usage("org-a", "2024-05-02T00:00:00.000Z", EventKind::View, 5, 5);
    renamed.component.display_name = Name::parse("Renamed Five").unwrap();
    events.push(renamed);
    app.ingest(events).await;
    let body = summary_json(
        &app,
        &bearer,
        &window("2024-05-01T00:00:00.000Z", "2024-05-01T12:00:00.000Z"),
    )
    .await;
    let mut expected_components = vec![json!({"id": "c05", "name": "Renamed Five", "events": 3})];
    let mut expected_users = vec![json!({"id": "u05", "email": "u05@example.com", "events": 3})];
    for i in [0, 1, 2, 3, 4, 6, 7, 8, 9] {
        expected_components
            .push(json!({"id": format!("c{i:02}"), "name": format!("Component {i}"), "events": 1}));
        expected_users.push(
            json!({"id": format!("u{i:02}"), "email": format!("u{i:02}@example.com"), "events": 1}),
        );
    }
    assert_eq!(body["topComponents"], json!(expected_components));
    assert_eq!(body["topUsers"], json!(expected_users));
    assert_eq!(
        body["totals"],
        json!({"View": 12, "Download": 0, "Place": 2, "users": 12, "components": 12})
    );
}

fn problem(code: &str, message: &str, target: &str) -> Value {
    json!({"code": code, "message": message, "target": target})
}

fn invalid_request(details: Vec<Value>) -> Value {
    json!({"error": {"code": "InvalidDownloadAnalyticsRequest", "message": "Cannot perform operation.", "details": details}})
}

async fn at_most_five_thousand_buckets() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let start = "2024-01-01T00:00:00.000Z";
    let body = summary_json(
        &app,
        &bearer,
        &format!(
            "{}&interval=hour",
            window(start, &at(ms(start) + 5000 * HOUR))
        ),
    )
    .await;
    assert_eq!(body["buckets"].as_array().unwrap().len(), 5000);
    for query in [
        format!(
            "{}&interval=hour",
            window(start, &at(ms(start) + 5000 * HOUR + 1))
        ),
        window("2000-01-01T00:00:00.000Z", "2020-01-01T00:00:00.000Z"),
    ] {
        let response = get_summary(&app, Some(&bearer), &query).await;
        assert_eq!(response.status(), 422, "{query}");
        assert_eq!(
            json_of(response).await,
            invalid_request(vec![problem(
                "InvalidValue",
                "Parameter 'interval' would cut this window into more than 5000 buckets; choose a longer interval or a shorter window.",
                "interval"
            )])
        );
    }
    // Month buckets make the same long window fine.
    let body = summary_json(
        &app,
        &bearer,
        &format!(
            "{}&interval=month",
            window("2000-01-01T00:00:00.000Z", "2020-01-01T00:00:00.000Z")
        ),
    )
    .await;
    assert_eq!(body["buckets"].as_array().unwrap().len(), 240);
}

async fn errors_are_the_downloads() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let good = window("2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z");

    let response = get_summary(&app, None, &good).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        json_of(response).await,
        error_body(
            "HeaderNotFound",
            "Header Authorization was not found in the request. Access denied."
        )
    );
    let wrong_scope = format!(
        "Bearer {}",
        app.token("org-a", "admin-of-org-a", "analytics:write")
    );
    assert_invalid_token(get_summary(&app, Some(&wrong_scope), &good).await, "scope").await;

    // 403 before 422: a user without any grant, even with bad parameters.
    let stranger = format!(
        "Bearer {}",
        app.token("org-a", "stranger", "itwin-platform")
    );
    for query in [good.as_str(), "interval=year"] {
        let response = get_summary(&app, Some(&stranger), query).await;
        assert_eq!(response.status(), 403);
        assert_eq!(json_of(response).await, insufficient_permissions());
    }
    // A grant in another organization does not count.
    app.grant("org-b", "stranger", view_analytics()).await;
    assert_eq!(
        get_summary(&app, Some(&stranger), &good).await.status(),
        403
    );

    let bad_format =
        "Parameter 'endDate' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'.";
    let bad_interval = problem(
        "InvalidValue",
        "Parameter 'interval' must be one of hour, day, week, month.",
        "interval",
    );
    for (query, details) in [
        (
            "interval=day".to_owned(),
            vec![
                problem(
                    "MissingRequiredParameter",
                    "Required parameter is missing.",
                    "startDate",
                ),
                problem(
                    "MissingRequiredParameter",
                    "Required parameter is missing.",
                    "endDate",
                ),
            ],
        ),
        (
            "startDate=2024-01-01T00:00:00.000Z&endDate=2024-02-01&interval=Week".to_owned(),
            vec![
                problem("InvalidValue", bad_format, "endDate"),
                bad_interval.clone(),
            ],
        ),
        (
            format!("{good}&interval=quarter"),
            vec![bad_interval.clone()],
        ),
        (
            format!("{good}&interval=day&interval=week"),
            vec![bad_interval],
        ),
        (
            window("2024-02-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
            vec![problem(
                "InvalidValue",
                "Parameter 'endDate' must be later than 'startDate'.",
                "endDate",
            )],
        ),
    ] {
        let response = get_summary(&app, Some(&bearer), &query).await;
        assert_eq!(response.status(), 422, "{query}");
        assert_eq!(json_of(response).await, invalid_request(details), "{query}");
    }
    // The permission alone is enough.
    app.grant("org-a", "viewer", view_analytics()).await;
    let viewer = format!("Bearer {}", app.token("org-a", "viewer", "itwin-platform"));
    let body = summary_json(&app, &viewer, &good).await;
    assert_eq!(body["interval"], "day");
    assert_eq!(body["buckets"].as_array().unwrap().len(), 31);
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "startDate",
            "endDate",
            "interval",
            "totals",
            "buckets",
            "topComponents",
            "topUsers"
        ])
    );
}

crate::both_backends!(
    every_figure_equals_the_csv_of_the_same_window,
    empty_windows_have_zero_buckets_and_empty_lists,
    top_lists_break_ties_by_id_and_show_current_names,
    at_most_five_thousand_buckets,
    errors_are_the_downloads,
);
