//! No email and no token ever reaches the log (DESIGN §12): the real
//! binary serves a session of every kind of request, at debug level, and
//! its whole log output is searched for every email and token it saw.

use crate::erasure::{event_by, ERASURES, GONE, GONE_EMAIL, ORG};
use crate::helpers::*;
use catalytics::auth::local::LocalIssuer;
use catalytics::ingest::to_wire;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const EVENTS: &str = "/library/components/analytics/events";

async fn no_email_or_token_reaches_the_log() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("serve.log");
    let url = backend_database_url();
    let database: Vec<&str> = match &url {
        Some(url) => vec!["--database-url", url],
        None => vec![],
    };
    let mut command = catalytics_bin();
    command.env("RUST_LOG", "debug");
    let (mut child, addr) = start_serve(
        command,
        data.path(),
        &database,
        std::fs::File::create(&log_path).unwrap().into(),
    );
    let base = format!("http://{addr}");
    let bin = env!("CARGO_BIN_EXE_catalytics");
    let client = reqwest::Client::new();
    let issuer = LocalIssuer::load_or_create(data.path()).unwrap().0;
    let stranger = LocalIssuer::load_or_create(logs.path()).unwrap().0;

    let mut emails = vec![GONE_EMAIL.to_owned(), "kept@example.com".to_owned()];
    let mut tokens = Vec::new();
    let mut mint = |issuer: &LocalIssuer, user: &str, scope: &str, exp_offset: i64| {
        let email = format!("{user}.mail@example.net");
        let mut claims = claims(ORG, user, scope);
        claims["email"] = json!(email);
        claims["exp"] = json!(now_secs() + exp_offset);
        let token = issuer.sign(&claims).unwrap();
        emails.push(email);
        tokens.push(token.clone());
        format!("Bearer {token}")
    };
    let admin = mint(&issuer, "admin", "itwin-platform", 3600);
    let viewer = mint(&issuer, "viewer", "itwin-platform", 3600);
    let reporter = mint(&issuer, "reporter", "analytics:write", 3600);
    let expired = mint(&issuer, "late", "itwin-platform", -7200);
    let forged = mint(&stranger, "forger", "itwin-platform", 3600);
    let wrong_scope = mint(&issuer, "admin", "analytics:write", 3600);
    let status = Command::new(bin)
        .args([
            "grant",
            "--org",
            ORG,
            "--user",
            "admin",
            "--role",
            "Account Administrator",
            "--data-dir",
        ])
        .arg(data.path())
        .args(&database)
        .status()
        .unwrap();
    assert!(status.success());

    let post = |bearer: &str, path: &str, body: String| {
        client
            .post(format!("{base}{path}"))
            .header("Authorization", bearer)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let get = |bearer: &str| {
        client
            .get(format!("{base}{DOWNLOAD}?{}", wide()))
            .header("Authorization", bearer)
            .send()
    };
    let events: Vec<_> = [GONE, GONE, "kept"]
        .iter()
        .enumerate()
        .map(|(i, u)| to_wire(&event_by(u, &format!("2024-01-01T00:00:0{i}.000Z"))))
        .collect();
    let ok = post(&reporter, EVENTS, json!({ "events": events }).to_string())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut bad = events[0].clone();
    bad["timestamp"] = json!("yesterday");
    bad["user"]["email"] = json!("x".repeat(2000) + "@example.com");
    emails.push("x".repeat(2000) + "@example.com");
    let refused = post(&reporter, EVENTS, json!({ "events": [bad] }).to_string())
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let broken = post(&reporter, EVENTS, format!("{{\"events\": [\"{GONE_EMAIL}"))
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    for (bearer, status) in [
        (&admin, 200),
        (&viewer, 403),
        (&expired, 401),
        (&forged, 401),
        (&wrong_scope, 401),
    ] {
        let response = get(bearer).await.unwrap();
        assert_eq!(response.status(), status);
        let _ = response.bytes().await;
    }
    let garbage = format!("Bearer {GONE_EMAIL}");
    assert_eq!(get(&garbage).await.unwrap().status(), 401);
    let erased = post(&admin, ERASURES, json!({ "userId": GONE }).to_string())
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let malformed = post(
        &admin,
        ERASURES,
        format!("{{\"userId\": 1, \"email\": \"{GONE_EMAIL}\""),
    )
    .await
    .unwrap();
    assert_eq!(malformed.status(), 422);
    let late = to_wire(&event_by(GONE, "2024-01-01T00:00:09.000Z"));
    let ok = post(&reporter, EVENTS, json!({ "events": [late] }).to_string())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(get(&admin).await.unwrap().status(), 200);

    // Login links: a code redeemed, redeemed again, forged, garbled.
    let code = crate::login_link::code_for(&issuer, "linked", Duration::from_secs(3600));
    let forged_code = crate::login_link::code_for(&stranger, "linked", Duration::from_secs(3600));
    tokens.extend([code.clone(), forged_code.clone()]);
    emails.push("linked@example.com".into());
    let redeem = |body: String| {
        client
            .post(format!("{base}{}", crate::login_link::LOGIN_LINK))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let signed_in = redeem(json!({ "code": code }).to_string()).await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let answer: serde_json::Value = signed_in.json().await.unwrap();
    tokens.push(answer["accessToken"].as_str().unwrap().to_owned());
    for refused in [&code, &forged_code, &GONE_EMAIL.to_owned()] {
        let response = redeem(json!({ "code": refused }).to_string())
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let malformed = redeem(format!("{{\"code\": 1, \"email\": \"{GONE_EMAIL}\""))
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("download started")
            && log.contains("user erased")
            && log.contains("signed in through a login link")
            && log.contains("login link refused"),
        "the log was captured: {log}"
    );
    for email in &emails {
        assert!(
            !log.contains(email.as_str()),
            "an email is in the log: {email}"
        );
    }
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token is in the log");
    }
    assert!(!log.contains(GONE), "the erased user's id is in the log");
}

crate::both_backends!(no_email_or_token_reaches_the_log);
