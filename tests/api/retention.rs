//! Retention (DESIGN §12): expired events disappear in bounded steps while
//! ingestion and downloads keep working; audit records are kept on their
//! own schedule.

use crate::helpers::*;
use catalytics::domain::{AuditAction, AuditRecord, OrgId, Timestamp, UserId};
use catalytics::ingest::to_wire;
use catalytics::privacy::RetentionPolicy;
use std::time::{Duration, Instant};

const ORG: &str = "org-retention";
const HOUR_MS: i64 = 3_600_000;

fn at(millis: i64) -> catalytics::domain::Event {
    let mut e = event(ORG, "2024-01-01T00:00:00.000Z");
    e.timestamp = Timestamp::from_millis(millis);
    e
}

fn window_of(start: Timestamp, end: Timestamp) -> String {
    window(&start.to_wire(), &end.to_wire())
}

async fn rows_in(app: &TestApp, bearer: &str, query: &str) -> usize {
    let response = app.get_download(Some(bearer), query).await;
    assert_eq!(response.status(), 200, "downloads keep working");
    parse_csv(&response.bytes().await.unwrap()).1.len()
}

/// The `events_pYYYY_MM` partition `t` falls in, and whether it exists.
async fn partition_exists(database_url: &str, t: Timestamp) -> (String, bool) {
    let dt = time::OffsetDateTime::from_unix_timestamp(t.millis() / 1000).unwrap();
    let name = format!("events_p{:04}_{:02}", dt.year(), u8::from(dt.month()));
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0);
    (name, exists)
}

async fn expired_events_go_while_the_service_keeps_working() {
    const DAY_MS: i64 = 24 * HOUR_MS;
    let now = Timestamp::now().millis();
    // 2,400 expired events spread over 100 to 40 days ago (on PostgreSQL:
    // whole monthly partitions, and part of the month of the cutoff), and
    // a few recent ones; stored before the service (and its retention
    // task) starts.
    let old_start = Timestamp::from_millis(now - 100 * DAY_MS);
    let old_end = Timestamp::from_millis(now - 40 * DAY_MS);
    let step = (old_end.millis() - old_start.millis()) / 2400;
    let old: Vec<_> = (0..2400)
        .map(|i| at(old_start.millis() + i * step))
        .collect();
    let database_url = backend_database_url();
    let url = database_url.clone();
    let app = spawn_app_with(AppOptions {
        settings: Box::new(|s| {
            s.retention = RetentionPolicy {
                days: std::num::NonZeroU32::new(30),
                interval: Duration::from_millis(300),
                batch_size: 100,
                pause: Duration::ZERO,
                ..RetentionPolicy::default()
            };
        }),
        wrap_store: Box::new(move |store| {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    for chunk in old.chunks(800) {
                        store.ingest(chunk.to_vec()).await.unwrap();
                    }
                    let recent = (0..20).map(|i| at(now - HOUR_MS + i)).collect();
                    store.ingest(recent).await.unwrap();
                    if let Some(url) = url {
                        let (name, exists) = partition_exists(&url, old_start).await;
                        assert!(exists, "{name} holds the oldest events");
                    }
                })
            });
            store
        }),
    })
    .await;
    let bearer = app.admin_bearer(ORG).await;
    let recent = window_of(
        Timestamp::from_millis(now - 2 * HOUR_MS),
        Timestamp::from_millis(now + HOUR_MS),
    );
    let expired = window_of(old_start, old_end);

    // Keep reporting and downloading until the expired window is empty.
    let started = Instant::now();
    let mut reported = 0;
    let mut seen_partial = false;
    loop {
        let batch: Vec<_> = (0..5)
            .map(|i| to_wire(&at(now - HOUR_MS / 2 + reported + i)))
            .collect();
        let response = app.post_json(&batch).await;
        assert_eq!(response.status(), 200, "ingestion keeps working");
        reported += 5;
        assert_eq!(
            rows_in(&app, &bearer, &recent).await,
            20 + reported as usize,
            "recent events stay"
        );
        let left = rows_in(&app, &bearer, &expired).await;
        seen_partial |= left > 0 && left < 2400;
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{left} expired events are still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match &database_url {
        Some(url) => {
            let (name, exists) = partition_exists(url, old_start).await;
            assert!(!exists, "the expired month {name} was dropped whole");
        }
        // SQLite deletes in steps, visible one by one.
        _ => assert!(seen_partial, "deleted in bounded steps, not at once"),
    }
}

fn record_at(at: Timestamp, user: &str) -> AuditRecord {
    AuditRecord {
        at,
        org: OrgId::parse(ORG).unwrap(),
        actor: None,
        action: AuditAction::Erasure {
            pseudonym: UserId::parse(user).unwrap(),
            events: 0,
        },
    }
}

async fn audit_records_have_their_own_retention() {
    let app = spawn_app().await;
    let now = Timestamp::now();
    let old = Timestamp::from_millis(now.millis() - 401 * 24 * HOUR_MS);
    let young = Timestamp::from_millis(now.millis() - 399 * 24 * HOUR_MS);
    for (at, name) in [
        (old, "erased-old"),
        (young, "erased-young"),
        (now, "erased-now"),
    ] {
        app.store.record_audit(&record_at(at, name)).await.unwrap();
    }
    app.ingest(vec![at(old.millis())]).await;
    // Events kept forever (the default), audit records 400 days.
    let policy = RetentionPolicy {
        batch_size: 1,
        pause: Duration::ZERO,
        ..RetentionPolicy::default()
    };
    catalytics::privacy::retention::run_once(app.store.as_ref(), &policy).await;
    let left = app
        .store
        .list_audit(&OrgId::parse(ORG).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![
            record_at(young, "erased-young"),
            record_at(now, "erased-now")
        ]
    );
    assert_eq!(app.rows(ORG).await.len(), 1, "events are not touched");
}

crate::both_backends!(
    expired_events_go_while_the_service_keeps_working,
    audit_records_have_their_own_retention,
);
