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

async fn expired_events_go_while_the_service_keeps_working() {
    let app = spawn_app_with(AppOptions {
        settings: Box::new(|s| {
            s.retention = RetentionPolicy {
                days: Some(30),
                interval_secs: 1,
                batch_size: 100,
                pause_ms: 0,
                ..RetentionPolicy::default()
            };
        }),
        ..Default::default()
    })
    .await;
    let bearer = app.admin_bearer(ORG).await;
    // 2,400 expired events over three months (three PostgreSQL partitions),
    // and a few recent ones.
    let old_start = Timestamp::parse("2024-01-01T00:00:00.000Z").unwrap();
    let old_end = Timestamp::parse("2024-04-01T00:00:00.000Z").unwrap();
    let step = (old_end.millis() - old_start.millis()) / 2400;
    let old: Vec<_> = (0..2400).map(|i| at(old_start.millis() + i * step)).collect();
    for chunk in old.chunks(800) {
        app.ingest(chunk.to_vec()).await;
    }
    let now = Timestamp::now().millis();
    app.ingest((0..20).map(|i| at(now - HOUR_MS + i)).collect()).await;
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
    // On SQLite the steps are visible one by one; PostgreSQL may drop all
    // three months at once.
    if app.database_url.is_none() {
        assert!(seen_partial, "deleted in bounded steps, not at once");
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
    for (at, name) in [(old, "erased-old"), (young, "erased-young"), (now, "erased-now")] {
        app.store.record_audit(&record_at(at, name)).await.unwrap();
    }
    app.ingest(vec![at(old.millis())]).await;
    // Events kept forever (the default), audit records 400 days.
    let policy = RetentionPolicy {
        batch_size: 1,
        pause_ms: 0,
        ..RetentionPolicy::default()
    };
    catalytics::privacy::retention::run_once(app.store.as_ref(), &policy).await;
    let left = app
        .store
        .list_audit(&OrgId::parse(ORG).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(left, vec![record_at(young, "erased-young"), record_at(now, "erased-now")]);
    assert_eq!(app.rows(ORG).await.len(), 1, "events are not touched");
}

crate::both_backends!(
    expired_events_go_while_the_service_keeps_working,
    audit_records_have_their_own_retention,
);
