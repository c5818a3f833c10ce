//! One-time login links (DESIGN §11, local mode): the code in a link's
//! fragment is redeemed at `POST /auth/login-link` for an access token,
//! exactly once across replicas sharing a store; codes and access tokens
//! never pass for each other.

use crate::helpers::*;
use catalytics::auth::local::{LocalIssuer, LOCAL_ISSUER};
use catalytics::auth::login_code::{LoginCodeRequest, LOGIN_CODE_AUDIENCE, LOGIN_CODE_TYP};
use catalytics::domain::{OrgId, Timestamp, UserId};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const LOGIN_LINK: &str = "/auth/login-link";
const SUMMARY: &str = "/library/components/analytics/summary";
const ORG: &str = "org-login";
const JANUARY: &str = "startDate=2024-01-01T00:00:00.000Z&endDate=2024-02-01T00:00:00.000Z";

/// A code for `user` in [`ORG`]: link valid 15 minutes, session `session`.
pub fn code_for(issuer: &LocalIssuer, user: &str, session: Duration) -> String {
    issuer
        .mint_login_code(&LoginCodeRequest {
            org: OrgId::parse(ORG).unwrap(),
            user: UserId::parse(user).unwrap(),
            email: Some(format!("{user}@example.com")),
            link_ttl: Duration::from_secs(900),
            session_ttl: session,
        })
        .unwrap()
}

fn body_of(code: &str) -> String {
    json!({ "code": code }).to_string()
}

impl TestApp {
    async fn redeem(&self, body: String) -> reqwest::Response {
        self.client
            .post(self.url(LOGIN_LINK))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Redeems `code`, expecting success; returns the access token.
    async fn sign_in(&self, code: &str) -> String {
        let response = self.redeem(body_of(code)).await;
        assert_eq!(response.status(), 200);
        json_of(response).await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn get_with(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("{path}?{JANUARY}")))
            .header("Authorization", format!("Bearer {bearer}"))
            .send()
            .await
            .unwrap()
    }
}

/// The payload of a JWT, unverified (for looking at what was minted).
fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts the whole 401 answer to a refused code.
pub async fn assert_link_refused(response: reqwest::Response, case: &str) {
    assert_unauthorized(
        response,
        "LoginLink",
        "InvalidLoginLink",
        "The sign-in link is invalid, has expired or has already been used. Ask for a new one.",
        case,
    )
    .await;
}

async fn seed(app: &TestApp) {
    let events = (0..3)
        .map(|i| event(ORG, &format!("2024-01-0{}T10:00:00.000Z", i + 1)))
        .collect();
    app.ingest(events).await;
    app.grant(ORG, "viewer", view_analytics()).await;
}

async fn a_redeemed_code_signs_in_for_the_summary_and_the_download() {
    let app = spawn_app().await;
    seed(&app).await;
    let response = app
        .redeem(body_of(&code_for(
            &app.issuer(),
            "viewer",
            Duration::from_secs(7200),
        )))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer = json_of(response).await;
    let token = answer["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        answer,
        json!({"accessToken": token, "tokenType": "Bearer", "expiresIn": 7200})
    );
    // The same kind of token `catalytics token` mints: the local issuer,
    // the download scope, the link's organization, user and email.
    let claims = payload(&token);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - now_secs()).abs() < 60, "{claims}");
    assert_eq!(
        claims,
        json!({"iss": LOCAL_ISSUER, "sub": "viewer", "email": "viewer@example.com", "org": ORG,
               "scope": "itwin-platform", "iat": iat, "nbf": iat, "exp": iat + 7200})
    );

    let summary = app.get_with(SUMMARY, &token).await;
    assert_eq!(summary.status(), 200);
    let minted = app.token(ORG, "viewer", "itwin-platform");
    let expected = json_of(app.get_with(SUMMARY, &minted).await).await;
    let summary = json_of(summary).await;
    assert_eq!(summary, expected);
    assert_eq!(summary["totals"]["View"], 3);
    let download = app.get_with(DOWNLOAD, &token).await;
    assert_eq!(download.status(), 200);
    let (_, rows) = parse_csv(&download.bytes().await.unwrap());
    assert_eq!(rows.len(), 3);

    // Authorization is checked when the token is used, as for any token.
    let stranger = app
        .sign_in(&code_for(
            &app.issuer(),
            "stranger",
            Duration::from_secs(60),
        ))
        .await;
    let refused = app.get_with(SUMMARY, &stranger).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json_of(refused).await, insufficient_permissions());
}

async fn a_code_is_redeemed_once() {
    let app = spawn_app().await;
    seed(&app).await;
    let code = code_for(&app.issuer(), "viewer", Duration::from_secs(3600));
    let token = app.sign_in(&code).await;
    assert_link_refused(app.redeem(body_of(&code)).await, "second redemption").await;
    assert_link_refused(app.redeem(body_of(&code)).await, "third redemption").await;
    assert_eq!(app.get_with(SUMMARY, &token).await.status(), 200);
    // Another link for the same user is another code.
    let again = code_for(&app.issuer(), "viewer", Duration::from_secs(3600));
    app.sign_in(&again).await;
}

async fn a_code_is_redeemed_once_across_replicas() {
    let first = spawn_app().await;
    seed(&first).await;
    // A second replica: the same data directory (the same local key) and
    // the same store (the SQLite file, or the PostgreSQL database).
    let shared_dir = first.data_dir.path().to_owned();
    let second = spawn_app_with(AppOptions {
        settings: Box::new(move |s| s.data_dir = shared_dir),
        ..AppOptions::default()
    })
    .await;
    let code = code_for(&first.issuer(), "viewer", Duration::from_secs(3600));
    let token = first.sign_in(&code).await;
    assert_link_refused(second.redeem(body_of(&code)).await, "on the other replica").await;
    assert_eq!(second.get_with(SUMMARY, &token).await.status(), 200);
    let other = code_for(&first.issuer(), "viewer", Duration::from_secs(3600));
    second.sign_in(&other).await;
    assert_link_refused(first.redeem(body_of(&other)).await, "back on the first").await;
}

async fn sixteen_simultaneous_redemptions_one_wins() {
    let first = spawn_app().await;
    let shared_dir = first.data_dir.path().to_owned();
    let second = spawn_app_with(AppOptions {
        settings: Box::new(move |s| s.data_dir = shared_dir),
        ..AppOptions::default()
    })
    .await;
    let urls = [first.url(LOGIN_LINK), second.url(LOGIN_LINK)];
    for round in 0..4 {
        let code = code_for(&first.issuer(), "viewer", Duration::from_secs(3600));
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                // Half the requests reach each replica.
                let url = urls[i % 2].clone();
                let (start, body) = (Arc::clone(&start), body_of(&code));
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let request = client
                        .post(url)
                        .header("Content-Type", "application/json")
                        .body(body);
                    start.wait().await;
                    request.send().await.unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            let response = task.await.unwrap();
            if response.status() == 200 {
                won += 1;
                response.bytes().await.unwrap();
            } else {
                assert_link_refused(response, &format!("round {round}")).await;
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one redemption wins");
    }
}

async fn expired_forged_and_garbled_codes_are_refused() {
    let app = spawn_app().await;
    seed(&app).await;
    let issuer = app.issuer();
    let now = now_secs();
    let typed = |patch: &dyn Fn(&mut Value)| {
        let mut claims = json!({
            "iss": LOCAL_ISSUER, "aud": LOGIN_CODE_AUDIENCE, "sub": "viewer", "org": ORG,
            "jti": format!("test-{}", uuid::Uuid::new_v4()), "iat": now - 1000, "nbf": now - 1000,
            "exp": now + 600, "session_secs": 600,
        });
        patch(&mut claims);
        issuer.sign_typed(&claims, LOGIN_CODE_TYP).unwrap()
    };
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = LocalIssuer::load_or_create(stranger_dir.path()).unwrap().0;
    let mut tampered = code_for(&issuer, "viewer", Duration::from_secs(60));
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases: Vec<(&str, String)> = vec![
        ("expired", typed(&|c| c["exp"] = json!(now - 120))),
        ("not yet valid", typed(&|c| c["nbf"] = json!(now + 3600))),
        (
            "another audience",
            typed(&|c| c["aud"] = json!("catalytics")),
        ),
        ("another issuer", typed(&|c| c["iss"] = json!("urn:other"))),
        (
            "no session length",
            typed(&|c| c["session_secs"] = json!(0)),
        ),
        (
            "signed by another key",
            code_for(&stranger, "viewer", Duration::from_secs(60)),
        ),
        ("tampered signature", tampered),
        ("garbled", "not a code".into()),
        ("three dots", "a.b.c".into()),
        ("huge", "x".repeat(7000)),
    ];
    for (case, code) in cases {
        assert_link_refused(app.redeem(body_of(&code)).await, case).await;
    }
    // Within the 60 s leeway a just-expired code still works, as tokens do.
    let lenient = typed(&|c| c["exp"] = json!(now - 20));
    app.sign_in(&lenient).await;
}

async fn codes_and_access_tokens_never_pass_for_each_other() {
    let app = spawn_app().await;
    seed(&app).await;
    let issuer = app.issuer();
    // An access token (even one for a user who may read) is not a code.
    let token = app.token(ORG, "viewer", "itwin-platform");
    assert_link_refused(app.redeem(body_of(&token)).await, "access token as a code").await;
    // A token carrying a code's audience but not its type is not a code.
    let mut untyped = claims(ORG, "viewer", "itwin-platform");
    untyped["aud"] = json!(LOGIN_CODE_AUDIENCE);
    untyped["jti"] = json!("untyped-1");
    untyped["session_secs"] = json!(60);
    let untyped = issuer.sign(&untyped).unwrap();
    assert_link_refused(app.redeem(body_of(&untyped)).await, "untyped code").await;
    // A code is not an access token, not even with the download scope.
    let code = code_for(&issuer, "viewer", Duration::from_secs(3600));
    for path in [SUMMARY, DOWNLOAD] {
        assert_invalid_token(app.get_with(path, &code).await, "code as a bearer").await;
    }
    let mut scoped = payload(&code);
    scoped["scope"] = json!("itwin-platform");
    let scoped = issuer.sign_typed(&scoped, LOGIN_CODE_TYP).unwrap();
    assert_invalid_token(
        app.get_with(SUMMARY, &scoped).await,
        "scoped code as a bearer",
    )
    .await;
    // Refusing it as a bearer did not use it up.
    app.sign_in(&code).await;
}

async fn bodies_that_are_not_a_code_are_422() {
    let app = spawn_app().await;
    let problem = |code: &str, message: &str, target: &str| {
        json!({"error": {"code": "InvalidLoginLinkRequest", "message": "Cannot perform operation.",
               "details": [{"code": code, "message": message, "target": target}]}})
    };
    let body = problem(
        "InvalidValue",
        "The request body must be a JSON object {\"code\": \"...\"} of at most 8192 bytes.",
        "body",
    );
    let missing = problem(
        "MissingRequiredParameter",
        "Required parameter is missing.",
        "code",
    );
    let not_string = problem(
        "InvalidValue",
        "Parameter 'code' must be a string: the code from the login link.",
        "code",
    );
    let oversize = body_of(&"x".repeat(8192));
    let table: Vec<(String, &Value)> = vec![
        (String::new(), &body),
        ("not json".into(), &body),
        ("[\"abc\"]".into(), &body),
        (oversize, &body),
        ("{}".into(), &missing),
        (r#"{"code":null}"#.into(), &missing),
        (r#"{"code":""}"#.into(), &missing),
        (r#"{"code":42}"#.into(), &not_string),
        (r#"{"code":{"jti":"x"}}"#.into(), &not_string),
    ];
    for (request, expected) in table {
        let response = app.redeem(request.clone()).await;
        assert_eq!(response.status(), 422, "{request:.40}");
        assert_eq!(&json_of(response).await, expected, "{request:.40}");
    }
    // A code in the query string is not read (it would reach access logs).
    let code = code_for(&app.issuer(), "viewer", Duration::from_secs(60));
    let response = app
        .client
        .post(app.url(&format!("{LOGIN_LINK}?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(json_of(response).await, body);
    // Only POST.
    let get = app.client.get(app.url(LOGIN_LINK)).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
}

/// Rows of the used-codes table: `(code_id, valid_until)`, by id.
async fn used_codes(app: &TestApp) -> Vec<(String, i64)> {
    match &app.database_url {
        Some(url) => {
            let client = crate::common::admin(url).await;
            client
                .query(
                    "SELECT code_id, valid_until FROM login_codes_used ORDER BY code_id",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
        None => {
            let conn =
                rusqlite::Connection::open(app.data_dir.path().join("catalytics.sqlite3")).unwrap();
            let mut stmt = conn
                .prepare("SELECT code_id, valid_until FROM login_codes_used ORDER BY code_id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }
}

async fn insert_used_code(app: &TestApp, id: &str, valid_until: i64) {
    match &app.database_url {
        Some(url) => {
            crate::common::admin(url)
                .await
                .execute(
                    "INSERT INTO login_codes_used (code_id, valid_until) VALUES ($1, $2)",
                    &[&id, &valid_until],
                )
                .await
                .unwrap();
        }
        None => {
            let conn =
                rusqlite::Connection::open(app.data_dir.path().join("catalytics.sqlite3")).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute(
                "INSERT INTO login_codes_used (code_id, valid_until) VALUES (?1, ?2)",
                rusqlite::params![id, valid_until],
            )
            .unwrap();
        }
    }
}

async fn used_code_ids_are_kept_until_their_codes_expire_then_forgotten() {
    let app = spawn_app().await;
    let now = Timestamp::now().millis();
    let hour = 3_600_000;
    insert_used_code(&app, "long-gone", now - 2 * hour).await;
    insert_used_code(&app, "just-expired", now - 60_000).await;
    let code = code_for(&app.issuer(), "viewer", Duration::from_secs(60));
    app.sign_in(&code).await;
    let rows = used_codes(&app).await;
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{rows:?}");
    assert!(ids.contains(&"just-expired"), "kept for the clock margin");
    assert!(!ids.contains(&"long-gone"), "forgotten");
    // The redeemed code is kept until it expires (15 minutes + leeway).
    let (_, valid_until) = rows.iter().find(|(id, _)| id != "just-expired").unwrap();
    let left = valid_until - now;
    assert!((900_000..=900_000 + 62_000).contains(&left), "{left}");
}

crate::both_backends!(
    a_redeemed_code_signs_in_for_the_summary_and_the_download,
    a_code_is_redeemed_once,
    a_code_is_redeemed_once_across_replicas,
    sixteen_simultaneous_redemptions_one_wins,
    expired_forged_and_garbled_codes_are_refused,
    codes_and_access_tokens_never_pass_for_each_other,
    bodies_that_are_not_a_code_are_422,
    used_code_ids_are_kept_until_their_codes_expire_then_forgotten,
);
