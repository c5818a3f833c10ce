//! Erasure of a user (DESIGN §12) over HTTP and from the command line:
//! past events pseudonymized, later ones pseudonymized on arrival, only
//! organization administrators allowed, idempotent.

use crate::helpers::*;
use catalytics::domain::{Grant, Name, Permission, Role, UserId};
use catalytics::ingest::to_wire;
use serde_json::{json, Value};

pub const ERASURES: &str = "/library/components/analytics/erasures";
pub const ORG: &str = "org-erasure";
/// The user to erase; neither string may survive in a download.
pub const GONE: &str = "gone-user-31415";
pub const GONE_EMAIL: &str = "gone.person@example.org";

impl TestApp {
    pub async fn post_erasure(&self, bearer: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(ERASURES))
            .header("Authorization", bearer)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// A bearer for `user` after granting them `grant` in [`ORG`].
    pub async fn bearer_with(&self, user: &str, grant: Grant) -> String {
        self.grant(ORG, user, grant).await;
        format!("Bearer {}", self.token(ORG, user, "itwin-platform"))
    }
}

/// An event of [`ORG`] by `user` (email derived from it, or [`GONE_EMAIL`]).
pub fn event_by(user: &str, ts: &str) -> catalytics::domain::Event {
    let mut e = event(ORG, ts);
    e.user.id = UserId::parse(user).unwrap();
    let email = if user == GONE {
        GONE_EMAIL.to_owned()
    } else {
        format!("{user}@example.com")
    };
    e.user.email = Name::parse(email).unwrap();
    e
}

/// Four events by [`GONE`], two by `kept`.
async fn seed(app: &TestApp) {
    let mut events: Vec<_> = (0..4)
        .map(|i| event_by(GONE, &format!("2024-01-01T00:00:0{i}.000Z")))
        .collect();
    events.push(event_by("kept", "2024-01-01T00:00:05.000Z"));
    events.push(event_by("kept", "2024-01-01T00:00:06.000Z"));
    app.ingest(events).await;
}

/// Downloads [`ORG`]'s events, checks that nothing of [`GONE`] is left,
/// that exactly `erased` rows carry one pseudonym with an empty email and
/// that `kept`'s two rows are untouched; returns the pseudonym.
pub async fn assert_erased(app: &TestApp, erased: usize) -> String {
    let bearer = app.admin_bearer(ORG).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains(GONE), "the erased id is in the download");
    assert!(
        !text.contains(GONE_EMAIL),
        "the erased email is in the download"
    );
    let (_, rows) = parse_csv(&body);
    let (user, email) = (9, 10);
    let pseudonymized: Vec<_> = rows.iter().filter(|r| r[user] != "kept").collect();
    assert_eq!(pseudonymized.len(), erased, "{rows:?}");
    let pseudonym = pseudonymized[0][user].clone();
    let hex = pseudonym.strip_prefix("erased-").expect("erased-<16 hex>");
    assert_eq!(hex.len(), 16, "{pseudonym}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{pseudonym}");
    for row in &pseudonymized {
        assert_eq!((&row[user], &row[email]), (&pseudonym, &String::new()));
    }
    let kept: Vec<_> = rows.iter().filter(|r| r[user] == "kept").collect();
    assert_eq!(kept.len(), 2);
    for row in kept {
        assert_eq!(row[email], "kept@example.com");
    }
    pseudonym
}

fn erasure_error(code: &str, message: &str, target: &str) -> Value {
    json!({"error": {
        "code": "InvalidErasureRequest",
        "message": "Cannot perform operation.",
        "details": [{"code": code, "message": message, "target": target}],
    }})
}

async fn erasure_over_http_pseudonymizes_past_and_later_events() {
    let app = spawn_app().await;
    seed(&app).await;
    let admin = app
        .bearer_with("admin", Grant::Role(Role::AccountAdministrator))
        .await;
    let co_admin = app
        .bearer_with("co-admin", Grant::Role(Role::CoAdministrator))
        .await;

    let body = json!({ "userId": GONE }).to_string();
    for (user, grant) in [
        ("viewer", Grant::Permission(Permission::ViewAnalytics)),
        (
            "service-admin",
            Grant::Role(Role::ConnectServicesAdministrator),
        ),
    ] {
        let bearer = app.bearer_with(user, grant).await;
        let response = app.post_erasure(&bearer, &body).await;
        assert_eq!(response.status(), 403, "{user}");
        assert_eq!(
            json_of(response).await,
            insufficient_permissions(),
            "{user}"
        );
    }
    let stranger = format!("Bearer {}", app.token(ORG, "nobody", "itwin-platform"));
    assert_eq!(app.post_erasure(&stranger, &body).await.status(), 403);
    let no_org = format!(
        "Bearer {}",
        app.token_with(&{
            let mut c = claims(ORG, "admin", "itwin-platform");
            c.as_object_mut().unwrap().remove("org");
            c
        })
    );
    assert_eq!(app.post_erasure(&no_org, &body).await.status(), 403);
    let unauthenticated = app
        .client
        .post(app.url(ERASURES))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let body_message =
        "The request body must be a JSON object {\"userId\": \"...\"} of at most 16384 bytes.";
    let user_message =
        "Parameter 'userId' must be a string of 1 to 256 characters without control characters.";
    let missing = "Required parameter is missing.";
    for (sent, expected) in [
        ("", erasure_error("InvalidValue", body_message, "body")),
        (
            "{\"userId\":",
            erasure_error("InvalidValue", body_message, "body"),
        ),
        ("[]", erasure_error("InvalidValue", body_message, "body")),
        (
            "{}",
            erasure_error("MissingRequiredParameter", missing, "userId"),
        ),
        (
            "{\"userId\":\"\"}",
            erasure_error("MissingRequiredParameter", missing, "userId"),
        ),
        (
            "{\"userId\":7}",
            erasure_error("InvalidValue", user_message, "userId"),
        ),
        (
            &*json!({ "userId": "u".repeat(257) }).to_string(),
            erasure_error("InvalidValue", user_message, "userId"),
        ),
    ] {
        let response = app.post_erasure(&admin, sent).await;
        assert_eq!(response.status(), 422, "{sent}");
        assert_eq!(json_of(response).await, expected, "{sent}");
    }

    let response = app.post_erasure(&admin, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await, json!({ "events": 4 }));
    let pseudonym = assert_erased(&app, 4).await;

    let again = app.post_erasure(&co_admin, &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        json_of(again).await,
        json!({ "events": 0 }),
        "a repeat is a no-op"
    );
    assert_eq!(assert_erased(&app, 4).await, pseudonym);

    let late = to_wire(&event_by(GONE, "2024-01-01T00:00:09.000Z"));
    let response = app.post_json(&[late]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        assert_erased(&app, 5).await,
        pseudonym,
        "a later event arrives under the same pseudonym"
    );
}

async fn erasure_from_the_command_line_covers_later_imports() {
    let app = spawn_app().await;
    seed(&app).await;
    let out = app.cli(&["erase", "--org", ORG, "--user", GONE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let pseudonym = assert_erased(&app, 4).await;
    assert_eq!(
        stdout.trim(),
        format!("erased: 4 events in org {ORG} now carry {pseudonym}")
    );

    let file = app.data_dir.path().join("late.ndjson");
    let line = to_wire(&event_by(GONE, "2024-01-02T00:00:00.000Z")).to_string();
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let out = app.cli(&["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(assert_erased(&app, 5).await, pseudonym, "imported later");

    let out = app.cli(&["erase", "--org", ORG, "--user", GONE]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("erased: 0 events in org {ORG} now carry {pseudonym}"),
        "a repeat is a no-op"
    );
    let bad = app.cli(&["erase", "--org", ORG, "--user", ""]);
    assert!(!bad.status.success());
}

/// An erasure by another process (the command line) after a download:
/// the next download of the running service shows the pseudonym, not
/// names it remembered from before.
async fn erasure_after_a_download_shows_in_the_next_download() {
    let app = spawn_app().await;
    seed(&app).await;
    let bearer = app.admin_bearer(ORG).await;
    let before = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(before.status(), 200);
    let text = String::from_utf8(before.bytes().await.unwrap().to_vec()).unwrap();
    assert!(text.contains(GONE_EMAIL), "seeded: {text}");
    let out = app.cli(&["erase", "--org", ORG, "--user", GONE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pseudonym = assert_erased(&app, 4).await;
    assert_eq!(assert_erased(&app, 4).await, pseudonym, "and again");
}

crate::both_backends!(
    erasure_over_http_pseudonymizes_past_and_later_events,
    erasure_from_the_command_line_covers_later_imports,
    erasure_after_a_download_shows_in_the_next_download,
);
