//! PostgreSQL deployments: several replicas on one database, and a database
//! outage seen through a TCP proxy the test controls. These need
//! `CATALYTICS_TEST_DATABASE_URL` and skip loudly without it.

use crate::common::PgDatabase;
use crate::helpers::*;
use catalytics::auth::local::LocalIssuer;
use catalytics::ingest::to_wire;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn replica(database_url: &str, data_dir: &std::path::Path) -> Server {
    Server::spawn(data_dir, &["--database-url", database_url])
}

fn batch(org: &str, n: usize, minute: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            to_wire(&event(
                org,
                &format!("2024-01-01T00:{minute:02}:{:02}.{:03}Z", i % 60, i / 60),
            ))
        })
        .collect()
}

async fn csv_rows(client: &reqwest::Client, addr: &str, token: &str) -> Vec<Vec<String>> {
    let url = format!("http://{addr}{DOWNLOAD}?{}", wide());
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    parse_csv(&response.bytes().await.unwrap()).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_database() {
    PgDatabase::scoped(|db| async move {
        let keys = tempfile::tempdir().unwrap(); // both replicas trust the same local key
        let (a, b) = (replica(&db.url, keys.path()), replica(&db.url, keys.path()));
        let issuer = LocalIssuer::load_or_create(keys.path()).unwrap().0;
        let reporter = issuer
            .sign(&service_claims("svc", "analytics:write"))
            .unwrap();
        let reader = issuer
            .sign(&claims("org-r", "admin", "itwin-platform"))
            .unwrap();
        let store = catalytics::store::open(Some(&db.url), keys.path())
            .await
            .unwrap();
        store
            .grant(&catalytics::domain::AccessGrant {
                org: catalytics::domain::OrgId::parse("org-r").unwrap(),
                user: catalytics::domain::UserId::parse("admin").unwrap(),
                grant: view_analytics(),
            })
            .await
            .unwrap();
        let client = reqwest::Client::new();

        let first = batch("org-r", 300, 1);
        assert_eq!(
            post_events(&client, &a.addr, &reporter, &first)
                .await
                .status(),
            200
        );
        assert_eq!(
            csv_rows(&client, &b.addr, &reader).await.len(),
            300,
            "written through A, read through B"
        );

        // The same batch to both replicas at once is stored once.
        let second = batch("org-r", 500, 2);
        let (ra, rb) = tokio::join!(
            post_events(&client, &a.addr, &reporter, &second),
            post_events(&client, &b.addr, &reporter, &second)
        );
        let (va, vb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
        assert_eq!(
            va["accepted"].as_u64().unwrap() + vb["accepted"].as_u64().unwrap(),
            500,
            "{va} {vb}"
        );
        assert_eq!(
            va["duplicates"].as_u64().unwrap() + vb["duplicates"].as_u64().unwrap(),
            500,
            "{va} {vb}"
        );
        assert_eq!(csv_rows(&client, &a.addr, &reader).await.len(), 800);
    })
    .await;
}

/// A TCP proxy to PostgreSQL that the test can cut and restore.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_rx.clone();
                if *cut_rx.borrow() {
                    continue; // dropped: the connection is refused
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {} // dropping both ends cuts the link
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

fn upstream_of(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap();
    let host_port = after.rsplit('@').next().unwrap().split('/').next().unwrap();
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_heals_by_itself() {
    PgDatabase::scoped(|db| async move {
        let proxy = Proxy::start(upstream_of(&db.url)).await;
        let via_proxy = db
            .url
            .replacen(&upstream_of(&db.url), &proxy.addr.to_string(), 1);
        let app = Arc::new(
            spawn_app_with(AppOptions {
                settings: Box::new(move |s| s.database_url = Some(via_proxy)),
                ..Default::default()
            })
            .await,
        );
        let bearer = app.admin_bearer("org-a").await;
        let first = batch("org-a", 200, 1);
        assert_eq!(app.post_json(&first).await.status(), 200);

        proxy.set_cut(true);
        let started = Instant::now();
        let download = app.get_download(Some(&bearer), &wide()).await;
        assert_eq!(download.status(), 503);
        assert_eq!(download.headers()["retry-after"], "5");
        assert_eq!(
            json_of(download).await,
            error_body(
                "ServiceUnavailable",
                "The service is temporarily unavailable. Retry later."
            )
        );
        let ready = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503, "not ready while the database is away");
        let second = batch("org-a", 200, 2);
        let ingest = app.post_json(&second).await;
        assert_eq!(
            ingest.status(),
            503,
            "not acknowledged while the database is away"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "answers come in bounded time: {:?}",
            started.elapsed()
        );

        proxy.set_cut(false);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = app.post_json(&second).await;
            if response.status() == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "no recovery without a restart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rows = app.rows("org-a").await;
        assert_eq!(rows.len(), 400, "every acknowledged event is there");
    })
    .await;
}
