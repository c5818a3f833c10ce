//! Connection hygiene and the §10 limits, spoken over raw sockets: slow and
//! idle clients, oversized targets and heads, malformed framing, repeated
//! credentials, HTTP/1.0 downloads; and the token and request-id rules.

use crate::helpers::*;
use crate::raw::{exchange, read_response, until_closed};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn with_limits(f: impl FnOnce(&mut catalytics::config::Limits) + 'static) -> AppOptions {
    AppOptions {
        settings: Box::new(move |s| f(&mut s.limits)),
        ..Default::default()
    }
}

/// The contract's default head timeout, measured once: a client that sends
/// half a head is disconnected, without an answer, within 15 s.
#[tokio::test]
async fn a_half_sent_head_is_closed_at_the_default_timeout() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = until_closed(&mut stream, Duration::from_secs(15)).await;
    assert!(got.is_empty(), "no answer, just a close: {got:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed by the head timer, not at once"
    );
}

#[tokio::test]
async fn a_thousand_half_open_connections_leave_health_answering() {
    let app = spawn_app().await;
    let mut idle = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /health HTTP/1.1\r\nHo").await.unwrap();
        }
        idle.push(s);
    }
    let started = Instant::now();
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 204);
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    drop(idle);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_own_timeout() {
    let app = spawn_app_with(with_limits(|l| {
        l.header_read_timeout = Duration::from_millis(300);
        l.idle_timeout = Duration::from_millis(1500);
    }))
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let ask = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(ask).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 204);
    // Idle for longer than the head timeout: still open.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(ask).await.unwrap();
    assert_eq!(read_response(&mut stream).await.status, 204);
    // Idle past the idle timeout: closed without a word.
    let got = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_in_the_backlog() {
    let app = spawn_app_with(with_limits(|l| {
        l.max_connections = 1;
        l.header_read_timeout = Duration::from_millis(500);
    }))
    .await;
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    let first_connected = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second connection is accepted by the kernel, served only once
    // the first (which never sends a head) has been closed by its head
    // timer, 500 ms after it was accepted.
    let second = exchange(app.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let waited = first_connected.elapsed();
    assert_eq!(second.status, 204);
    // Served at once it would be about 100 ms; the margin below 500 ms
    // is for the test's own scheduling after `connect`.
    assert!(
        waited >= Duration::from_millis(400),
        "the second connection was served while the first held the only slot ({waited:?})"
    );
    // The first was closed without an answer.
    assert!(until_closed(&mut first, Duration::from_secs(1))
        .await
        .is_empty());
}

#[tokio::test]
async fn a_stalled_body_gets_408() {
    let app = spawn_app_with(with_limits(|l| {
        l.body_stall_timeout = Duration::from_millis(500);
    }))
    .await;
    let token = app.token("org-a", "backend", "analytics:write");
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /library/components/analytics/events HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"events\": ["
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 408);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(
        response.json(),
        error_body(
            "RequestTimeout",
            "The request body was not received in time."
        )
    );
}

fn uri_too_long() -> serde_json::Value {
    error_body(
        "UriTooLong",
        "The request URL is too long: at most 8192 bytes.",
    )
}

fn head_too_large() -> serde_json::Value {
    error_body(
        "RequestHeaderFieldsTooLarge",
        "The request headers are too large: at most 32768 bytes in all.",
    )
}

fn bad_request() -> serde_json::Value {
    error_body(
        "BadRequest",
        "The request is not valid HTTP or carries conflicting headers.",
    )
}

async fn oversized_targets_and_heads_get_414_and_431_json() {
    let app = spawn_app().await;
    let target = |size: usize| {
        format!(
            "GET {DOWNLOAD}?startDate={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(size)
        )
    };
    let header = |size: usize| {
        format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "v".repeat(size)
        )
    };
    // Each limit twice: past the HTTP library's own (100 KB target, 64 KB
    // header) and past the service's lower one (9 KB, 40 KB).
    for (request, status, body) in [
        (target(100_000), 414, uri_too_long()),
        (target(9_000), 414, uri_too_long()),
        (header(64 * 1024), 431, head_too_large()),
        (header(40 * 1024), 431, head_too_large()),
    ] {
        let response = exchange(app.addr, request.as_bytes()).await;
        assert_eq!(response.status, status, "{} bytes", request.len());
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(response.json(), body, "{} bytes", request.len());
    }
}

async fn two_authorization_headers_get_400_json() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let request = format!(
        "GET {DOWNLOAD}?{} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\n\
         Authorization: Bearer other\r\n\r\n",
        wide()
    );
    let response = exchange(app.addr, request.as_bytes()).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json(), bad_request());
}

async fn malformed_framing_gets_400_json() {
    let app = spawn_app().await;
    for framing in [
        "Content-Length: 5\r\nContent-Length: 7",
        "Content-Length: five",
    ] {
        let request = format!(
            "POST /library/components/analytics/events HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\nhello"
        );
        let response = exchange(app.addr, request.as_bytes()).await;
        assert_eq!(response.status, 400, "{framing}");
        assert_eq!(response.json(), bad_request(), "{framing}");
    }
}

async fn http_1_0_downloads_get_505_json() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let request = format!(
        "GET {DOWNLOAD}?{} HTTP/1.0\r\nAuthorization: {bearer}\r\n\r\n",
        wide()
    );
    let response = exchange(app.addr, request.as_bytes()).await;
    assert_eq!(response.status, 505);
    assert_eq!(
        response.json(),
        error_body(
            "HttpVersionNotSupported",
            "Downloads need HTTP/1.1 or later, so that a cut download cannot look complete. Use HTTP/1.1 or later."
        )
    );
    // Other routes still speak HTTP/1.0.
    let health = exchange(app.addr, b"GET /health HTTP/1.0\r\n\r\n").await;
    assert_eq!(health.status, 204);
}

async fn request_ids_are_echoed_only_when_short_and_visible() {
    let app = spawn_app().await;
    let echoed = |id: String| {
        let client = app.client.clone();
        let url = app.url("/health");
        async move {
            let r = client
                .get(url)
                .header("x-request-id", &id)
                .send()
                .await
                .unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    let fine = "a".repeat(128);
    assert_eq!(echoed(fine.clone()).await, fine);
    for bad in ["a".repeat(129), "a".repeat(20_000), "two words".into()] {
        let got = echoed(bad.clone()).await;
        assert_ne!(got, bad);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "generated: {got}");
    }
}

/// Signs `claims` with the app's local key under a header of our choosing
/// (the library offers no `crit`).
fn sign_with_header(
    app: &TestApp,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    use ring::signature::Ed25519KeyPair;
    let pkcs8 = std::fs::read(app.data_dir.path().join(catalytics::auth::local::KEY_FILE)).unwrap();
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{signature}")
}

async fn crit_headers_and_future_iat_are_refused() {
    let app = spawn_app().await;
    app.make_admin("org-a", "alice").await;
    let kid = app.issuer().kid().to_owned();
    let good = claims("org-a", "alice", "itwin-platform");
    let plain = sign_with_header(&app, &json!({"alg": "EdDSA", "kid": kid}), &good);
    let ok = app
        .get_download(Some(&format!("Bearer {plain}")), &wide())
        .await;
    assert_eq!(ok.status(), 200, "the hand-signed token itself is fine");
    let crit = sign_with_header(
        &app,
        &json!({"alg": "EdDSA", "kid": kid, "crit": ["exp"]}),
        &good,
    );
    assert_invalid_token(
        app.get_download(Some(&format!("Bearer {crit}")), &wide())
            .await,
        "crit",
    )
    .await;
    let mut future = good.clone();
    future["iat"] = json!(now_secs() + 10 * 365 * 86_400);
    let token = app.token_with(&future);
    assert_invalid_token(
        app.get_download(Some(&format!("Bearer {token}")), &wide())
            .await,
        "iat ten years ahead",
    )
    .await;
    let mut skewed = good;
    skewed["iat"] = json!(now_secs() + 30);
    let token = app.token_with(&skewed);
    assert_eq!(
        app.get_download(Some(&format!("Bearer {token}")), &wide())
            .await
            .status(),
        200,
        "within the leeway"
    );
}

/// The discovery document, asked for with a forged `Host`.
async fn discovery(app: &TestApp) -> serde_json::Value {
    app.client
        .get(app.url("/.well-known/openid-configuration"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn discovery_uses_the_public_url_never_host() {
    let app = spawn_app().await;
    assert_eq!(
        discovery(&app).await["jwks_uri"],
        format!("http://{}/.well-known/jwks.json", app.addr)
    );
    let configured = spawn_app_with(AppOptions {
        settings: Box::new(|s| s.public_url = Some("https://analytics.example/".into())),
        ..Default::default()
    })
    .await;
    assert_eq!(
        discovery(&configured).await["jwks_uri"],
        "https://analytics.example/.well-known/jwks.json"
    );
}

/// A client that asks for a download and then reads nothing: once the
/// socket's buffers are full and `send_stall_timeout` passes, the
/// connection is closed, the download's slot freed (the next download is
/// served instead of refused) and the body the client got is visibly cut.
async fn a_download_nobody_reads_is_cut_and_frees_its_slot() {
    let app = spawn_app_with(with_limits(|l| {
        l.max_concurrent_downloads = 1;
        l.download_queue_wait = Duration::ZERO;
        l.send_stall_timeout = Duration::from_secs(1);
    }))
    .await;
    let bearer = app.admin_bearer("org-a").await;
    // ≈ 9 MB of CSV: more than the socket buffers of both ends hold.
    for day in 0..6 {
        let events = (0..5_000)
            .map(|i| {
                let mut e = event(
                    "org-a",
                    &format!(
                        "2024-01-{:02}T{:02}:{:02}:{:02}.000Z",
                        day + 1,
                        i / 3600,
                        i / 60 % 60,
                        i % 60
                    ),
                );
                e.component.display_name =
                    catalytics::domain::Name::parse(format!("Component {i} {}", "x".repeat(150)))
                        .unwrap();
                e
            })
            .collect();
        app.ingest(events).await;
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET {DOWNLOAD}?{} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\n\r\n",
                wide()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The slot is taken while the answer is stuck …
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(
        busy.status(),
        429,
        "the stalled download holds the only slot"
    );
    // … and freed once the client has taken nothing for a second.
    let started = Instant::now();
    loop {
        let response = app
            .get_download(
                Some(&bearer),
                &window("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:01.000Z"),
            )
            .await;
        if response.status() == 200 {
            assert_eq!(parse_csv(&response.bytes().await.unwrap()).1.len(), 1);
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = until_closed(&mut stalled, Duration::from_secs(15)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        &got[..got.len().min(64)]
    );
    assert!(got.len() > 100_000, "part of the body came: {}", got.len());
    assert!(
        !got.ends_with(b"\r\n0\r\n\r\n"),
        "the body must not look complete"
    );
}

crate::both_backends!(
    oversized_targets_and_heads_get_414_and_431_json,
    two_authorization_headers_get_400_json,
    malformed_framing_gets_400_json,
    http_1_0_downloads_get_505_json,
    request_ids_are_echoed_only_when_short_and_visible,
    crit_headers_and_future_iat_are_refused,
    discovery_uses_the_public_url_never_host,
    a_download_nobody_reads_is_cut_and_frees_its_slot,
);
