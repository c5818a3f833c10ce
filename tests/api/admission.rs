//! Download admission: a busy service queues downloads instead of refusing
//! them, and on PostgreSQL the per-organization rate limit holds across
//! replicas.

use crate::common::PgDatabase;
use crate::helpers::*;
use crate::streaming::{faulty, Fault};
use catalytics::auth::local::LocalIssuer;
use catalytics::domain::{AccessGrant, OrgId, Role, UserId};
use catalytics::store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

async fn gated_app(gate: Arc<Semaphore>, slots: usize, queue_wait: Duration) -> TestApp {
    spawn_app_with(AppOptions {
        settings: Box::new(move |s| {
            s.limits.max_concurrent_downloads = slots;
            s.limits.download_queue_wait = queue_wait;
        }),
        wrap_store: faulty(Fault::Gate(gate), 0),
    })
    .await
}

async fn sixty_four_small_windows_on_eight_slots_are_all_served() {
    let gate = Arc::new(Semaphore::new(0));
    let app = gated_app(Arc::clone(&gate), 8, Duration::from_secs(10)).await;
    app.ingest(vec![event("org-a", "2024-01-01T00:10:00.000Z")])
        .await;
    let bearer = app.admin_bearer("org-a").await;
    let query = window("2024-01-01T00:00:00.000Z", "2024-01-01T01:00:00.000Z");
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url(&format!("{DOWNLOAD}?{query}"));
            let bearer = bearer.clone();
            tokio::spawn(async move {
                let r = client
                    .get(url)
                    .header("Authorization", bearer)
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.bytes().await.unwrap())
            })
        })
        .collect();
    // Let the first eight take their slots and the rest queue, then let
    // the exports through a few at a time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..16 {
        gate.add_permits(4);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(parse_csv(&body).1.len(), 1);
    }
}

crate::both_backends!(sixty_four_small_windows_on_eight_slots_are_all_served,);
// A download that waited past `download_queue_wait` gets 429:
// `streaming::downloads_queued_past_the_wait_get_429`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_replicas() {
    PgDatabase::scoped(|db| async move {
        let keys = tempfile::tempdir().unwrap();
        let spawn = || {
            Server::spawn(
                keys.path(),
                &[
                    "--database-url",
                    &db.url,
                    "--downloads-per-minute-per-org",
                    "5",
                ],
            )
        };
        let (a, b) = (spawn(), spawn());
        let store = store::open(Some(&db.url), keys.path()).await.unwrap();
        store
            .grant(&AccessGrant {
                org: OrgId::parse("org-r").unwrap(),
                user: UserId::parse("admin").unwrap(),
                grant: catalytics::domain::Grant::Role(Role::AccountAdministrator),
            })
            .await
            .unwrap();
        let token = LocalIssuer::load_or_create(keys.path())
            .unwrap()
            .0
            .sign(&claims("org-r", "admin", "itwin-platform"))
            .unwrap();
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for i in 0..6 {
            let addr = if i % 2 == 0 { &a.addr } else { &b.addr };
            let response = client
                .get(format!("http://{addr}{DOWNLOAD}?{}", wide()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=12).contains(&wait), "Retry-After {wait}");
            }
        }
        drop((a, b, store));
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    })
    .await;
}
