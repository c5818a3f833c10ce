//! The audit trail (DESIGN §12): every authorized download with its
//! outcome, rows and bytes; grants, revokes and erasures; `audit list`.

use crate::erasure::{ERASURES, GONE, ORG};
use crate::helpers::*;
use crate::streaming::{faulty_app, Fault};
use catalytics::domain::{AuditRecord, Grant, OrgId, Permission, Role, Timestamp};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

/// `n` events of [`ORG`], one a second from 2024-01-01.
async fn events(app: &TestApp, n: usize) {
    let base = Timestamp::parse("2024-01-01T00:00:00.000Z")
        .unwrap()
        .millis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                let mut e = event(ORG, "2024-01-01T00:00:00.000Z");
                e.timestamp = Timestamp::from_millis(base + *i as i64 * 1000);
                e
            })
            .collect();
        app.ingest(batch).await;
    }
}

/// The organization's download records once `count` of them are written
/// (they are written when the response body is dropped), as JSON without
/// the time of writing.
async fn downloads(app: &TestApp, count: usize) -> Vec<Value> {
    let org = OrgId::parse(ORG).unwrap();
    for _ in 0..200 {
        let found: Vec<AuditRecord> = app
            .store
            .list_audit(&org, None)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.action.name() == "download")
            .collect();
        if found.len() >= count {
            return found.iter().map(without_time).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} download records were written");
}

fn without_time(r: &AuditRecord) -> Value {
    let mut v = r.to_json();
    let at = v.as_object_mut().unwrap().remove("at").unwrap();
    assert!(Timestamp::parse(at.as_str().unwrap()).is_ok(), "{at}");
    v
}

fn download_record(rows: usize, bytes: usize, outcome: &str) -> Value {
    json!({
        "organization": ORG, "actor": format!("admin-of-{ORG}"), "action": "download",
        "startDate": WIDE.0, "endDate": WIDE.1,
        "rows": rows, "bytes": bytes, "outcome": outcome,
    })
}

/// Checks a record of a cut-short download: `outcome`, at least the rows
/// the client saw, fewer than all, and exactly the bytes of the CSV header
/// and that many rows (what the service handed to the connection; a
/// connection that is cut may not deliver all of it).
async fn assert_cut_short(app: &TestApp, received: &[u8], total: usize, outcome: &str) {
    let record = downloads(app, 1).await.remove(0);
    let rows = record["rows"].as_u64().unwrap() as usize;
    let seen = parse_csv(received).1.len();
    assert!(seen > 0 && rows >= seen && rows < total, "{rows} {seen}");
    let org = OrgId::parse(ORG).unwrap();
    let range = catalytics::domain::DateRange::new(
        Timestamp::parse(WIDE.0).unwrap(),
        Timestamp::parse(WIDE.1).unwrap(),
    )
    .unwrap();
    let export = app.store.export(&org, range).await.unwrap();
    let mut writer = catalytics::export::CsvWriter::new(export.dictionary);
    let mut all = Vec::new();
    let mut stream = export.rows;
    while let Some(batch) = stream.next().await {
        all.extend(batch.unwrap());
    }
    let bytes = writer.header().len() + writer.rows(&all[..rows]).unwrap().len();
    assert!(bytes >= received.len());
    assert_eq!(record, download_record(rows, bytes, outcome));
}

/// Reads a body chunk by chunk until it ends, fails, or goes quiet for
/// `quiet`; returns what arrived and whether it ended cleanly.
async fn read_until_quiet(response: reqwest::Response, quiet: Duration) -> (Vec<u8>, Option<bool>) {
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(quiet, body.next()).await {
            Ok(Some(Ok(chunk))) => received.extend_from_slice(&chunk),
            Ok(Some(Err(_))) => return (received, Some(false)),
            Ok(None) => return (received, Some(true)),
            Err(_) => return (received, None),
        }
    }
}

async fn a_complete_download_is_recorded() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer(ORG).await;
    events(&app, 10).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(parse_csv(&body).1.len(), 10);
    assert_eq!(
        downloads(&app, 1).await,
        vec![download_record(10, body.len(), "complete")]
    );
    // Refused requests are not reads: they are in the request log only.
    let viewer = format!("Bearer {}", app.token(ORG, "stranger", "itwin-platform"));
    assert_eq!(app.get_download(Some(&viewer), &wide()).await.status(), 403);
    assert_eq!(
        app.get_download(Some(&bearer), "startDate=x")
            .await
            .status(),
        422
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(downloads(&app, 1).await.len(), 1);
}

async fn a_download_the_client_abandons_is_recorded_aborted() {
    // The store stalls after its first batch: the client reads what came
    // and hangs up mid-stream.
    let app = faulty_app(Fault::Stall, 1).await;
    let bearer = app.admin_bearer(ORG).await;
    events(&app, 3000).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(response.status(), 200);
    let (received, ended) = read_until_quiet(response, Duration::from_millis(700)).await;
    assert_eq!(ended, None, "the body is still open when the client leaves");
    assert_cut_short(&app, &received, 3000, "aborted").await;
}

async fn a_download_the_store_fails_is_recorded_failed() {
    let app = faulty_app(Fault::Fail, 2).await;
    let bearer = app.admin_bearer(ORG).await;
    events(&app, 5000).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(response.status(), 200);
    let (received, ended) = read_until_quiet(response, Duration::from_secs(10)).await;
    assert_eq!(ended, Some(false), "the body is aborted");
    assert_cut_short(&app, &received, 5000, "failed").await;
}

async fn grants_revokes_and_erasures_are_recorded_and_listed() {
    let app = spawn_app().await;
    let admin = app.admin_bearer(ORG).await;
    let view = Grant::Permission(Permission::ViewAnalytics);
    app.grant(ORG, "viewer", view).await;
    app.grant(ORG, "viewer", view).await; // already held: no change, no record
    let revoke = app.cli(&[
        "revoke",
        "--org",
        ORG,
        "--user",
        "viewer",
        "--permission",
        "View Analytics",
    ]);
    assert!(revoke.status.success());
    app.ingest(vec![crate::erasure::event_by(
        GONE,
        "2024-01-01T00:00:00.000Z",
    )])
    .await;
    let response = app
        .post_erasure(&admin, &json!({ "userId": GONE }).to_string())
        .await;
    assert_eq!(response.status(), 200, "{ERASURES}");
    let erased = app.cli(&["erase", "--org", ORG, "--user", "someone-else"]);
    assert!(erased.status.success());
    let pseudonyms: Vec<String> = app
        .store
        .list_audit(&OrgId::parse(ORG).unwrap(), None)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| match &r.action {
            catalytics::domain::AuditAction::Erasure { pseudonym, .. } => {
                Some(pseudonym.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(pseudonyms.len(), 2);

    let expected = json!([
        {"organization": ORG, "actor": null, "action": "grant",
         "user": format!("admin-of-{ORG}"), "kind": "role", "name": Role::AccountAdministrator.name()},
        {"organization": ORG, "actor": null, "action": "grant",
         "user": "viewer", "kind": "permission", "name": "View Analytics"},
        {"organization": ORG, "actor": null, "action": "revoke",
         "user": "viewer", "kind": "permission", "name": "View Analytics"},
        {"organization": ORG, "actor": format!("admin-of-{ORG}"), "action": "erasure",
         "pseudonym": pseudonyms[0], "events": 1},
        {"organization": ORG, "actor": null, "action": "erasure",
         "pseudonym": pseudonyms[1], "events": 0},
    ]);
    let out = app.cli(&["audit", "list", "--org", ORG, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for record in &mut listed {
        record.as_object_mut().unwrap().remove("at").unwrap();
    }
    assert_eq!(Value::from(listed), expected);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(GONE), "the trail never names the erased id");

    let out = app.cli(&["audit", "list", "--org", ORG]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("AT"), "{text}");
    assert!(
        lines[1].contains(" grant ") && lines[1].contains("(command line)"),
        "{text}"
    );
    assert!(
        lines[3].contains(" revoke ") && lines[3].contains("user=viewer"),
        "{text}"
    );
    assert!(
        lines[4].contains(&pseudonyms[0]) && lines[4].contains("events=1"),
        "{text}"
    );

    let out = app.cli(&[
        "audit",
        "list",
        "--org",
        ORG,
        "--since",
        "2999-01-01T00:00:00.000Z",
        "--format",
        "json",
    ]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    let out = app.cli(&[
        "audit", "list", "--org", ORG, "--since", "1h", "--format", "json",
    ]);
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap()
            .len(),
        5
    );
    let bad = app.cli(&["audit", "list", "--org", ORG, "--since", "yesterday"]);
    assert!(!bad.status.success());
}

crate::both_backends!(
    a_complete_download_is_recorded,
    a_download_the_client_abandons_is_recorded_aborted,
    a_download_the_store_fails_is_recorded_failed,
    grants_revokes_and_erasures_are_recorded_and_listed,
);
