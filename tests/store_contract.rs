//! The storage contract: one set of test bodies, run against every backend
//! (`sqlite::*` and `postgres::*`). The PostgreSQL half needs
//! `CATALYTICS_TEST_DATABASE_URL`; see `tests/common/mod.rs`.

// Test code states its expectations with `expect`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[macro_use]
mod common;

use catalytics::domain::{AccessGrant, Event, EventKind, Grant, Permission, Role, Timestamp};
use catalytics::store::{ExportRow, IngestOutcome};
use common::*;

contract_tests!(
    round_trip_keeps_every_column,
    empty_batch_is_a_no_op,
    window_is_half_open,
    rows_are_ordered_by_timestamp_then_id,
    duplicates_within_and_across_batches_are_stored_once,
    conflicts_are_counted_named_and_not_stored,
    concurrent_identical_batches_are_stored_once,
    newest_event_timestamp_wins_names,
    names_changed_after_a_download_show_in_the_next,
    ties_go_to_the_later_event,
    catalogs_label_is_sorted_by_bytes_and_joined,
    catalog_rename_relabels_components_outside_the_batch,
    membership_changes_follow_the_newest_version,
    grants_can_be_given_listed_and_revoked,
    organizations_are_isolated,
    unknown_organization_exports_nothing,
    purging_events_is_bounded_and_spares_the_rest,
    erasure_is_scoped_to_one_organization,
    erasure_racing_ingestion_never_lets_the_id_back,
    a_resent_event_of_an_erased_user_is_a_duplicate,
);

fn outcome(accepted: u64, duplicates: u64) -> IngestOutcome {
    IngestOutcome {
        accepted,
        duplicates,
        ..IngestOutcome::default()
    }
}

async fn round_trip_keeps_every_column(store: DynStore) {
    let mut full = event_with_id("org-1", 1_700_000_000_123, 1);
    full.kind = EventKind::Place;
    full.component.id = oid("comp-A");
    full.component.display_name = name("Pump, \"centrifugal\" 50 mm");
    full.component.catalogs = vec![catalog("cat-2", "Plant"), catalog("cat-1", "HVAC")];
    full.component.category = Some(name("Pumps"));
    full.component.manufacturer = Some(name("Grundfos"));
    full.user.id = uid("user-9");
    full.user.email = name("=cmd@example.com");
    full.application = Some(name("OpenBuildings Designer 10.12"));
    full.project_id = Some(oid("proj-7"));
    let mut bare = event_with_id("org-1", 1_700_000_000_124, 2);
    bare.kind = EventKind::Download;
    bare.component.id = oid("comp-B");
    bare.component.display_name = name("Valve ü 漢字");

    let got = store.ingest(vec![full, bare]).await.expect("ingest");
    assert_eq!(got, outcome(2, 0));
    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(
        rows,
        vec![
            ExportRow {
                timestamp: Timestamp::from_millis(1_700_000_000_123),
                kind: EventKind::Place,
                component_id: "comp-A".into(),
                component_name: "Pump, \"centrifugal\" 50 mm".into(),
                catalogs: Some("HVAC; Plant".into()),
                category: Some("Pumps".into()),
                manufacturer: Some("Grundfos".into()),
                application: Some("OpenBuildings Designer 10.12".into()),
                project_id: Some("proj-7".into()),
                user_id: "user-9".into(),
                user_email: "=cmd@example.com".into(),
            },
            ExportRow {
                timestamp: Timestamp::from_millis(1_700_000_000_124),
                kind: EventKind::Download,
                component_id: "comp-B".into(),
                component_name: "Valve ü 漢字".into(),
                catalogs: None,
                category: None,
                manufacturer: None,
                application: None,
                project_id: None,
                user_id: "u1".into(),
                user_email: "u1@example.com".into(),
            },
        ]
    );
}

async fn empty_batch_is_a_no_op(store: DynStore) {
    assert_eq!(store.ingest(vec![]).await.expect("ingest"), outcome(0, 0));
    assert!(export_all(&store, "org-1", everything()).await.is_empty());
}

async fn window_is_half_open(store: DynStore) {
    let events = [999, 1000, 1500, 1999, 2000]
        .map(|ts| event("org-1", ts))
        .to_vec();
    store.ingest(events).await.expect("ingest");
    let ts: Vec<i64> = export_all(&store, "org-1", range(1000, 2000))
        .await
        .iter()
        .map(|r| r.timestamp.millis())
        .collect();
    assert_eq!(ts, vec![1000, 1500, 1999]);
    // Consecutive windows never count an event twice.
    let before = export_all(&store, "org-1", range(0, 1500)).await.len();
    let after = export_all(&store, "org-1", range(1500, 3000)).await.len();
    assert_eq!(before + after, 5);
}

async fn rows_are_ordered_by_timestamp_then_id(store: DynStore) {
    // Ids chosen so that byte order differs from insertion order and from
    // signed comparisons of their halves.
    let ids: [u128; 4] = [
        0xff00_0000_0000_0000_0000_0000_0000_0000,
        0x0000_0000_0000_0000_ff00_0000_0000_0001,
        0x8000_0000_0000_0000_0000_0000_0000_0000,
        0x0000_0000_0000_0000_0000_0000_0000_0002,
    ];
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        events.push(event_with_id("org-1", 5000, *id));
        events.push(event_with_id("org-1", 4000 + i as i64, id + 1));
    }
    events.reverse();
    store.ingest(events.clone()).await.expect("ingest");
    let mut expected: Vec<(i64, uuid::Uuid)> = events
        .iter()
        .map(|e| (e.timestamp.millis(), *e.id.as_uuid()))
        .collect();
    expected.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
    let expected_ts: Vec<i64> = expected.iter().map(|e| e.0).collect();
    let rows = export_all(&store, "org-1", everything()).await;
    let ts: Vec<i64> = rows.iter().map(|r| r.timestamp.millis()).collect();
    assert_eq!(ts, expected_ts);
    // The ids are not exported; tell same-timestamp rows apart by user.
    // (Other ids in the same order: an id names one event in one organization.)
    let mut tagged = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut e = event_with_id("org-2", 5000, id + 0x100);
        e.user.id = uid(&format!("user-{i}"));
        tagged.push(e);
    }
    tagged.reverse();
    store.ingest(tagged).await.expect("ingest");
    let users: Vec<String> = export_all(&store, "org-2", everything())
        .await
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    // Byte order of the ids: 0x00..02, 0x00..ff.., 0x80.., 0xff..
    assert_eq!(users, vec!["user-3", "user-1", "user-2", "user-0"]);
}

async fn duplicates_within_and_across_batches_are_stored_once(store: DynStore) {
    let first = event_with_id("org-1", 1000, 7);
    let mut repeat = first.clone();
    repeat.component.display_name = name("=HIJACKED");
    repeat.user.email = name("hijacked@example.com");
    let other = event_with_id("org-1", 2000, 8);
    let got = store
        .ingest(vec![first.clone(), repeat.clone(), other.clone()])
        .await
        .expect("ingest");
    assert_eq!(got, outcome(2, 1));
    let got = store
        .ingest(vec![other, repeat, event_with_id("org-1", 4000, 9)])
        .await
        .expect("ingest");
    assert_eq!(got, outcome(1, 2));
    let rows = export_all(&store, "org-1", everything()).await;
    let ts: Vec<i64> = rows.iter().map(|r| r.timestamp.millis()).collect();
    assert_eq!(ts, vec![1000, 2000, 4000]);
    // A duplicate changes nothing: the names are the stored events'.
    assert!(rows
        .iter()
        .all(|r| r.component_name == first.component.display_name.as_str()));
    assert!(rows
        .iter()
        .all(|r| r.user_email == first.user.email.as_str()));
}

async fn conflicts_are_counted_named_and_not_stored(store: DynStore) {
    let first = event_with_id("org-1", 1000, 7);
    store.ingest(vec![first.clone()]).await.expect("ingest");
    let mut later = event_with_id("org-1", 3000, 7);
    later.component.display_name = name("=HIJACKED");
    let mut placed = first.clone();
    placed.kind = EventKind::Place;
    let elsewhere = event_with_id("org-2", 1000, 7);
    let mut in_batch = event_with_id("org-1", 5000, 10);
    let mut in_batch_again = in_batch.clone();
    in_batch.component.id = oid("c-first");
    in_batch_again.component.id = oid("c-second");
    in_batch_again.component.display_name = name("Never stored");
    let got = store
        .ingest(vec![
            later,
            placed,
            elsewhere,
            in_batch,
            in_batch_again.clone(),
        ])
        .await
        .expect("ingest");
    assert_eq!(
        got,
        IngestOutcome {
            accepted: 1,
            duplicates: 0,
            conflicts: 4,
            conflicting: vec![first.id, first.id, first.id, in_batch_again.id],
        }
    );
    let rows = export_all(&store, "org-1", everything()).await;
    let stored: Vec<(i64, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.timestamp.millis(),
                r.component_id.as_str(),
                r.component_name.as_str(),
            )
        })
        .collect();
    let name = first.component.display_name.as_str();
    assert_eq!(
        stored,
        vec![
            (1000, first.component.id.as_str(), name),
            (5000, "c-first", name)
        ]
    );
    assert!(export_all(&store, "org-2", everything()).await.is_empty());
}

async fn concurrent_identical_batches_are_stored_once(store: DynStore) {
    let batch: Vec<_> = (0..300)
        .map(|i| {
            let mut e = event("org-1", 10_000 + i);
            e.component.id = oid(&format!("c{}", i % 17));
            e.component.catalogs = vec![catalog(&format!("k{}", i % 5), "Catalog")];
            e.user.id = uid(&format!("u{}", i % 7));
            e.application = Some(name(&format!("App {}", i % 3)));
            e
        })
        .collect();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move { store.ingest(batch).await })
        })
        .collect();
    let mut total = IngestOutcome::default();
    for t in tasks {
        total += t.await.expect("task").expect("ingest");
    }
    assert_eq!(total, outcome(300, 1500));
    assert_eq!(export_all(&store, "org-1", everything()).await.len(), 300);
}

/// Downloads reuse rendered names across requests (SQLite caches them per
/// organization): every kind of change must still show in the next one.
async fn names_changed_after_a_download_show_in_the_next(store: DynStore) {
    let mut first = event("org-1", 1000);
    first.component.catalogs = vec![catalog("k1", "Catalog")];
    first.component.category = Some(name("Category"));
    store.ingest(vec![first]).await.expect("ingest");
    let before = export_all(&store, "org-1", everything()).await;
    assert_eq!(before.len(), 1);
    // Another organization's download must not be served from this one's names.
    let mut elsewhere = event("org-2", 1000);
    elsewhere.component.display_name = name("Elsewhere");
    store.ingest(vec![elsewhere]).await.expect("ingest");
    assert_eq!(
        export_all(&store, "org-2", everything()).await[0].component_name,
        "Elsewhere"
    );

    let mut renamed = event("org-1", 2000);
    renamed.component.display_name = name("Renamed");
    renamed.component.catalogs = vec![catalog("k1", "Catalog renamed")];
    renamed.component.category = Some(name("Other category"));
    renamed.component.manufacturer = Some(name("Maker"));
    renamed.user.email = name("renamed@example.com");
    let mut added = event("org-1", 3000);
    added.component.id = oid("comp-new");
    added.component.display_name = name("New component");
    added.user.id = uid("user-new");
    added.user.email = name("new@example.com");
    added.application = Some(name("New application"));
    added.project_id = Some(oid("project-new"));
    store.ingest(vec![renamed, added]).await.expect("ingest");

    let after = export_all(&store, "org-1", everything()).await;
    assert_eq!(after.len(), 3);
    for row in &after[..2] {
        assert_eq!(row.component_name, "Renamed");
        assert_eq!(row.catalogs.as_deref(), Some("Catalog renamed"));
        assert_eq!(row.category.as_deref(), Some("Other category"));
        assert_eq!(row.manufacturer.as_deref(), Some("Maker"));
        assert_eq!(row.user_email, "renamed@example.com");
    }
    assert_eq!(after[2].component_id, "comp-new");
    assert_eq!(after[2].component_name, "New component");
    assert_eq!(after[2].user_id, "user-new");
    assert_eq!(after[2].user_email, "new@example.com");
    assert_eq!(after[2].application.as_deref(), Some("New application"));
    assert_eq!(after[2].project_id.as_deref(), Some("project-new"));
}

async fn newest_event_timestamp_wins_names(store: DynStore) {
    let mut newer = event("org-1", 2000);
    newer.component.display_name = name("New name");
    newer.component.category = Some(name("New category"));
    newer.component.manufacturer = Some(name("New maker"));
    newer.component.catalogs = vec![catalog("k1", "New catalog")];
    newer.user.email = name("new@example.com");
    store.ingest(vec![newer]).await.expect("ingest");

    // An older event arriving later never overwrites names.
    let mut older = event("org-1", 1000);
    older.component.display_name = name("Old name");
    older.component.category = Some(name("Old category"));
    older.component.manufacturer = None;
    older.component.catalogs = vec![catalog("k1", "Old catalog"), catalog("k2", "Other")];
    older.user.email = name("old@example.com");
    store.ingest(vec![older]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.component_name, "New name");
        assert_eq!(r.category.as_deref(), Some("New category"));
        assert_eq!(r.manufacturer.as_deref(), Some("New maker"));
        assert_eq!(r.catalogs.as_deref(), Some("New catalog"));
        assert_eq!(r.user_email, "new@example.com");
    }

    // Within one batch too: the newest event wins, whatever its position.
    let mut newest = event("org-1", 3000);
    newest.component.display_name = name("Newest name");
    newest.component.category = Some(name("New category"));
    newest.component.manufacturer = Some(name("New maker"));
    newest.component.catalogs = vec![catalog("k1", "New catalog")];
    newest.user.email = name("newest@example.com");
    let mut stale = event("org-1", 2500);
    stale.component.display_name = name("Stale name");
    stale.user.email = name("stale@example.com");
    store.ingest(vec![newest, stale]).await.expect("ingest");

    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.component_name, "Newest name");
        assert_eq!(r.category.as_deref(), Some("New category"));
        assert_eq!(r.manufacturer.as_deref(), Some("New maker"));
        assert_eq!(r.catalogs.as_deref(), Some("New catalog"));
        assert_eq!(r.user_email, "newest@example.com");
    }
}

async fn ties_go_to_the_later_event(store: DynStore) {
    let mut a = event("org-1", 1000);
    a.component.display_name = name("First");
    a.user.email = name("first@example.com");
    let mut b = event("org-1", 1000);
    b.component.display_name = name("Second");
    b.user.email = name("second@example.com");
    store.ingest(vec![a, b]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert!(rows.iter().all(|r| r.component_name == "Second"));
    assert!(rows.iter().all(|r| r.user_email == "second@example.com"));
    // Across batches, an event with the same timestamp arriving later wins.
    let mut c = event("org-1", 1000);
    c.component.display_name = name("Third");
    store.ingest(vec![c]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert!(rows.iter().all(|r| r.component_name == "Third"));
}

async fn catalogs_label_is_sorted_by_bytes_and_joined(store: DynStore) {
    let mut e = event("org-1", 1000);
    e.component.catalogs = vec![
        catalog("k1", "b"),
        catalog("k2", "Ä"),
        catalog("k3", "B"),
        catalog("k4", "a"),
        catalog("k5", "a b"),
        catalog("k1", "b"), // listed twice: one membership
    ];
    store.ingest(vec![e]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(rows[0].catalogs.as_deref(), Some("B; a; a b; b; Ä"));
}

async fn catalog_rename_relabels_components_outside_the_batch(store: DynStore) {
    let mut first = event("org-1", 1000);
    first.component.id = oid("c1");
    first.component.catalogs = vec![catalog("k1", "Doors"), catalog("k2", "Windows")];
    store.ingest(vec![first]).await.expect("ingest");
    let mut second = event("org-1", 2000);
    second.component.id = oid("c2");
    second.component.display_name = name("Component 2");
    second.component.catalogs = vec![catalog("k1", "Zed doors")];
    store.ingest(vec![second]).await.expect("ingest");
    let labels: Vec<Option<String>> = export_all(&store, "org-1", everything())
        .await
        .into_iter()
        .map(|r| r.catalogs)
        .collect();
    assert_eq!(
        labels,
        vec![
            Some("Windows; Zed doors".to_owned()),
            Some("Zed doors".to_owned())
        ]
    );
}

async fn membership_changes_follow_the_newest_version(store: DynStore) {
    let mut e = event("org-1", 1000);
    e.component.catalogs = vec![catalog("k1", "One"), catalog("k2", "Two")];
    store.ingest(vec![e]).await.expect("ingest");
    let mut e = event("org-1", 2000);
    e.component.catalogs = vec![catalog("k2", "Two"), catalog("k3", "Three")];
    store.ingest(vec![e]).await.expect("ingest");
    let mut late = event("org-1", 1500);
    late.component.catalogs = vec![catalog("k1", "One")];
    store.ingest(vec![late]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert!(rows
        .iter()
        .all(|r| r.catalogs.as_deref() == Some("Three; Two")));
    let mut none = event("org-1", 3000);
    none.component.catalogs = vec![];
    store.ingest(vec![none]).await.expect("ingest");
    let rows = export_all(&store, "org-1", everything()).await;
    assert!(rows.iter().all(|r| r.catalogs.is_none()));
}

async fn grants_can_be_given_listed_and_revoked(store: DynStore) {
    let admin = AccessGrant {
        org: org("org-1"),
        user: uid("alice"),
        grant: Grant::Role(Role::CoAdministrator),
    };
    let viewer = AccessGrant {
        org: org("org-1"),
        user: uid("bob"),
        grant: Grant::Permission(Permission::ViewAnalytics),
    };
    let elsewhere = AccessGrant {
        org: org("org-0"),
        user: uid("alice"),
        grant: Grant::Role(Role::AccountAdministrator),
    };
    assert!(!store
        .may_view_analytics(&org("org-1"), &uid("alice"))
        .await
        .expect("check"));
    for g in [&viewer, &admin, &elsewhere] {
        assert!(store.grant(g).await.expect("grant"));
    }
    assert!(!store.grant(&admin).await.expect("grant again"));
    assert!(store
        .may_view_analytics(&org("org-1"), &uid("alice"))
        .await
        .expect("check"));
    assert!(store
        .may_view_analytics(&org("org-1"), &uid("bob"))
        .await
        .expect("check"));
    assert!(!store
        .may_view_analytics(&org("org-2"), &uid("alice"))
        .await
        .expect("check"));
    assert_eq!(
        store.list_access(None).await.expect("list"),
        vec![elsewhere.clone(), admin.clone(), viewer.clone()]
    );
    assert_eq!(
        store.list_access(Some(&org("org-1"))).await.expect("list"),
        vec![admin.clone(), viewer.clone()]
    );
    assert!(store.revoke(&admin).await.expect("revoke"));
    assert!(!store.revoke(&admin).await.expect("revoke again"));
    assert!(!store
        .may_view_analytics(&org("org-1"), &uid("alice"))
        .await
        .expect("check"));
    assert_eq!(
        store.list_access(Some(&org("org-1"))).await.expect("list"),
        vec![viewer]
    );
    store.ping().await.expect("ping");
}

async fn organizations_are_isolated(store: DynStore) {
    let mut a = event("org-a", 1000);
    a.component.display_name = name("A's name");
    a.user.email = name("a@example.com");
    a.component.catalogs = vec![catalog("k1", "A catalog")];
    let mut b = event("org-b", 1000);
    b.component.display_name = name("B's name");
    b.user.email = name("b@example.com");
    b.component.catalogs = vec![catalog("k1", "B catalog")];
    let b2 = later(&b);
    store.ingest(vec![a, b, b2]).await.expect("ingest");
    let rows_a = export_all(&store, "org-a", everything()).await;
    let rows_b = export_all(&store, "org-b", everything()).await;
    assert_eq!(rows_a.len(), 1);
    assert_eq!(rows_a[0].component_name, "A's name");
    assert_eq!(rows_a[0].user_email, "a@example.com");
    assert_eq!(rows_a[0].catalogs.as_deref(), Some("A catalog"));
    assert_eq!(rows_b.len(), 2);
    assert!(rows_b.iter().all(|r| r.component_name == "B's name"));
    assert!(rows_b
        .iter()
        .all(|r| r.catalogs.as_deref() == Some("B catalog")));
}

/// A second event like `e`, a second later.
fn later(e: &Event) -> Event {
    let mut next = event(e.organization.as_str(), e.timestamp.millis() + 1000);
    next.component = e.component.clone();
    next.user = e.user.clone();
    next
}

async fn unknown_organization_exports_nothing(store: DynStore) {
    store
        .ingest(vec![event("org-1", 1000)])
        .await
        .expect("ingest");
    assert!(export_all(&store, "nobody", everything()).await.is_empty());
}

// ---- backend parity ---------------------------------------------------------

/// The same events give the same CSV bytes on both backends, including
/// when PostgreSQL ingests them from many concurrent tasks.
mod parity {
    use crate::common::*;
    use catalytics::demo::DemoLibrary;
    use catalytics::domain::{Event, EventKind, Timestamp};

    /// Names that stress quoting, the injection guard and byte ordering.
    fn awkward_events() -> Vec<Event> {
        let names = [
            "=SUM(A1)",
            "+1",
            "-minus",
            "@at",
            "\ttab",
            "comma, inside",
            "quote \" inside",
            "line\nbreak",
            "crlf\r\nbreak",
            "Ünïcødé 漢字 😀",
            "Z",
            "a",
        ];
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut e = event("org-awkward", 1_000_000 + i as i64);
                e.kind = EventKind::ALL[i % 3];
                e.component.id = oid(&format!("c{}", i % 4));
                e.component.display_name = name(n);
                e.component.catalogs = vec![
                    catalog(&format!("k{i}"), n),
                    catalog("shared", names[(i + 5) % names.len()]),
                ];
                e.component.category = (i % 2 == 0).then(|| name(n));
                e.component.manufacturer = (i % 3 == 0).then(|| name(n));
                e.user.id = uid(&format!("user {i}"));
                e.user.email = name(n);
                e.application = (i % 4 != 1).then(|| name(n));
                e.project_id = (i % 5 != 2).then(|| oid(&format!("p,{i}")));
                e
            })
            .collect()
    }

    /// Demo batches with distinct timestamps, so "newest wins" has a single
    /// answer whatever order concurrent batches commit in.
    fn demo_batches() -> (String, Vec<Vec<Event>>) {
        let lib = DemoLibrary::generate(11, 60, 15);
        let now = Timestamp::from_millis(1_735_689_600_000);
        let mut seen = std::collections::HashSet::new();
        let batches = lib
            .events(5, 6_000, 30, now)
            .map(|batch| {
                batch
                    .into_iter()
                    .filter(|e| seen.insert(e.timestamp))
                    .collect::<Vec<_>>()
            })
            .collect();
        (lib.org.as_str().to_owned(), batches)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn csv_is_byte_identical_on_both_backends() {
        run_postgres(|pg| async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let lite = catalytics::store::open(None, dir.path())
                .await
                .expect("open SQLite");
            let (demo_org, batches) = demo_batches();
            for batch in batches.iter().chain(std::iter::once(&awkward_events())) {
                let a = lite.ingest(batch.clone()).await.expect("SQLite ingest");
                let b = pg.ingest(batch.clone()).await.expect("PostgreSQL ingest");
                assert_eq!(a, b);
            }
            for (org_id, window) in [
                (demo_org.as_str(), everything()),
                (
                    demo_org.as_str(),
                    range(1_734_000_000_000, 1_735_000_000_000),
                ),
                ("org-awkward", everything()),
            ] {
                let expected = export_csv(&lite, org_id, window).await;
                assert!(expected.len() > 200, "the window should not be empty");
                assert!(expected == export_csv(&pg, org_id, window).await);
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_postgres_ingestion_matches_sequential_sqlite() {
        run_postgres(|pg| async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let lite = catalytics::store::open(None, dir.path())
                .await
                .expect("open SQLite");
            let (demo_org, batches) = demo_batches();
            // Sequential SQLite gives the reference answer.
            for batch in &batches {
                lite.ingest(batch.clone()).await.expect("SQLite ingest");
            }
            // PostgreSQL: every batch twice, from concurrent tasks, in two
            // different orders, so the batches race on the same dimension rows.
            let mut tasks = Vec::new();
            for round in 0..2 {
                for (i, batch) in batches.iter().enumerate() {
                    let (pg, batch) = (pg.clone(), batch.clone());
                    let delay = if round == 0 { i } else { batches.len() - i };
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
                        pg.ingest(batch).await
                    }));
                }
            }
            let mut accepted = 0;
            for t in tasks {
                accepted += t.await.expect("task").expect("PostgreSQL ingest").accepted;
            }
            let total: usize = batches.iter().map(Vec::len).sum();
            assert_eq!(accepted, total as u64);
            assert!(
                export_csv(&lite, &demo_org, everything()).await
                    == export_csv(&pg, &demo_org, everything()).await
            );
        })
        .await;
    }
}

// ---- PostgreSQL operations --------------------------------------------------

/// Outage, recovery and connection release: PostgreSQL-only behaviour.
mod pg_operations {
    use crate::common::*;
    use catalytics::store::postgres::{PgStore, POOL_SIZE};
    use catalytics::store::{Store, StoreError};
    use futures_util::StreamExt;
    use std::time::{Duration, Instant};

    fn renamed(ts: i64, component_name: &str) -> catalytics::domain::Event {
        let mut e = event("org-1", ts);
        e.component.display_name = name(component_name);
        e
    }

    async fn change_rows(client: &tokio_postgres::Client) -> (i64, i64) {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM dictionary_changes),
                        (SELECT COALESCE(sum(pruned), 0)::bigint FROM dictionary_pruned)",
                &[],
            )
            .await
            .expect("count change rows");
        (row.get(0), row.get(1))
    }

    async fn component_names(store: &PgStore) -> Vec<String> {
        let shared: DynStore = std::sync::Arc::new(store.clone());
        let rows = export_all(&shared, "org-1", everything()).await;
        rows.into_iter().map(|r| r.component_name).collect()
    }

    /// A prune moves the change rows into the organization's count: the
    /// version (what cached names are checked against) stays, a later
    /// rename still moves it and shows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_the_dictionary_change_log_keeps_versions() {
        PgDatabase::scoped(|db| async move {
            let store = PgStore::open(&db.url).await.expect("open");
            let client = admin(&db.url).await;
            for (i, n) in ["A", "B", "C"].into_iter().enumerate() {
                let e = renamed(1000 * (i as i64 + 1), n);
                store.ingest(vec![e]).await.expect("ingest");
            }
            let (logged, pruned) = change_rows(&client).await;
            assert!(logged >= 2 && pruned == 0, "{logged} change rows");
            let version = store.dictionary_version(&org("org-1")).await.unwrap();
            assert!(version.is_some_and(|v| v >= 2), "{version:?}");
            assert_eq!(component_names(&store).await, ["C"; 3]);

            let moved = store.prune_dictionary_changes().await.unwrap();
            assert_eq!(moved, logged as u64);
            assert_eq!(
                change_rows(&client).await,
                (0, logged),
                "rows deleted, counted"
            );
            let now = store.dictionary_version(&org("org-1")).await.unwrap();
            assert_eq!(now, version);
            assert_eq!(component_names(&store).await, ["C"; 3]);

            store
                .ingest(vec![renamed(5000, "D")])
                .await
                .expect("ingest");
            let after = store.dictionary_version(&org("org-1")).await.unwrap();
            assert!(after > version, "{after:?} after {version:?}");
            assert_eq!(component_names(&store).await, ["D"; 4]);
            assert!(store.prune_dictionary_changes().await.unwrap() >= 1);
            let now = store.dictionary_version(&org("org-1")).await.unwrap();
            assert_eq!(now, after);
            assert_eq!(change_rows(&client).await.0, 0);
        })
        .await;
    }

    /// Renames, prunes and version reads at once: a reader never sees the
    /// version go back, and the last rename always shows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_racing_renames_never_moves_a_version_back() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        PgDatabase::scoped(|db| async move {
            let store = PgStore::open(&db.url).await.expect("open");
            let start = renamed(1000, "start");
            store.ingest(vec![start]).await.expect("ingest");
            let done = std::sync::Arc::new(AtomicBool::new(false));
            let renamer = tokio::spawn({
                let (store, done) = (store.clone(), done.clone());
                async move {
                    for i in 0..40 {
                        let e = renamed(2000 + i, &format!("name {i}"));
                        store.ingest(vec![e]).await.expect("ingest");
                    }
                    done.store(true, SeqCst);
                }
            });
            let pruner = tokio::spawn({
                let (store, done) = (store.clone(), done.clone());
                async move {
                    let mut moved = 0;
                    while !done.load(SeqCst) {
                        moved += store.prune_dictionary_changes().await.expect("prune");
                    }
                    moved
                }
            });
            let mut last = 0;
            while !done.load(SeqCst) {
                let v = store.dictionary_version(&org("org-1")).await.unwrap();
                let v = v.unwrap_or(0);
                assert!(v >= last, "version went back from {last} to {v}");
                last = v;
            }
            renamer.await.unwrap();
            pruner.await.unwrap();
            let before = store.dictionary_version(&org("org-1")).await.unwrap();
            assert!(before.is_some_and(|v| v >= 40 && v >= last), "{before:?}");
            store.prune_dictionary_changes().await.unwrap();
            let now = store.dictionary_version(&org("org-1")).await.unwrap();
            assert_eq!(now, before);
            assert!(component_names(&store).await.iter().all(|n| n == "name 39"));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_errors_never_quote_row_values() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let client = admin(&db.url).await;
        client
            .batch_execute("CREATE TABLE people (email text CHECK (email = ''))")
            .await
            .expect("create");
        let failed = client
            .execute("INSERT INTO people VALUES ('alice@example.com')", &[])
            .await
            .expect_err("check violation");
        let detail = failed
            .as_db_error()
            .and_then(|d| d.detail())
            .map(str::to_owned);
        drop(client);
        db.drop_database().await;
        assert!(
            detail.is_some_and(|d| d.contains("alice@example.com")),
            "the server quotes the row in DETAIL"
        );
        let logged = StoreError::from(failed).to_string();
        assert!(logged.contains("violates check constraint"), "{logged}");
        assert!(logged.contains("SQLSTATE 23514"), "{logged}");
        assert!(!logged.contains("alice@example.com"), "{logged}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_waited_for() {
        // Port 1 on the loopback: nothing listens, connections are refused.
        let url = "postgres://catalytics:secret@127.0.0.1:1/nothing";
        let started = Instant::now();
        let err = PgStore::open_with_startup_wait(url, Duration::ZERO)
            .await
            .err()
            .expect("no server");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(!err.to_string().contains("secret"));

        let started = Instant::now();
        let err = PgStore::open_with_startup_wait(url, Duration::from_millis(1500))
            .await
            .err()
            .expect("no server");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(700), "{waited:?}");
        assert!(waited < Duration::from_secs(6), "{waited:?}");
    }

    #[tokio::test]
    async fn a_bad_url_is_a_configuration_error() {
        let err =
            catalytics::store::open(Some("postgres://x:secret@host:notaport/db"), ".".as_ref())
                .await
                .err()
                .expect("bad URL");
        assert!(matches!(err, StoreError::Config(_)), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_starting_together_migrate_once() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { PgStore::open(&url).await.map(|_| ()) })
            })
            .collect();
        let mut results = Vec::new();
        for open in opens {
            results.push(open.await);
        }
        let versions: Vec<i64> = admin(&db.url)
            .await
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        db.drop_database().await;
        for r in results {
            r.expect("task").expect("open");
        }
        // Each migration recorded once, whatever else later versions add.
        let mut once = versions.clone();
        once.dedup();
        assert_eq!(once, versions);
        assert!(versions.starts_with(&[1, 2]), "{versions:?}");
    }

    async fn terminate_connections(base: &str, db: &str) -> i64 {
        admin(base)
            .await
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .await
            .expect("terminate")
            .get(0)
    }

    async fn connections(base: &str, db: &str) -> i64 {
        admin(base)
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .expect("count")
            .get(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_recovers_after_the_server_drops_its_connections() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let result = tokio::spawn({
            let (base, name, url) = (db.base.clone(), db.name.clone(), db.url.clone());
            async move {
                let store = PgStore::open(&url).await.expect("open");
                store
                    .ingest(vec![event("org-1", 1000)])
                    .await
                    .expect("ingest");
                assert!(terminate_connections(&base, &name).await >= 1);
                // Give the driver a moment to notice the closed sockets.
                tokio::time::sleep(Duration::from_millis(100)).await;
                store.ping().await.expect("ping after the outage");
                store
                    .ingest(vec![event("org-1", 2000)])
                    .await
                    .expect("ingest after the outage");
                let store: DynStore = std::sync::Arc::new(store);
                assert_eq!(export_all(&store, "org-1", everything()).await.len(), 2);
            }
        })
        .await;
        db.drop_database().await;
        result.expect("test body");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_an_export_releases_its_connection() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let result = tokio::spawn({
            let (base, name, url) = (db.base.clone(), db.name.clone(), db.url.clone());
            async move {
                let store: DynStore = std::sync::Arc::new(PgStore::open(&url).await.expect("open"));
                let batch: Vec<_> = (0..3000).map(|i| event("org-1", 1000 + i)).collect();
                store.ingest(batch).await.expect("ingest");
                // Far more abandoned downloads than the pool has connections:
                // a leak would make these wait and then fail as unavailable.
                for _ in 0..(3 * POOL_SIZE) {
                    let mut stream = store
                        .export(&org("org-1"), everything())
                        .await
                        .expect("export")
                        .rows;
                    let first = stream.next().await.expect("a batch").expect("rows");
                    assert!(!first.is_empty());
                    drop(stream);
                }
                assert_eq!(export_all(&store, "org-1", everything()).await.len(), 3000);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let open = connections(&base, &name).await;
                assert!(open <= POOL_SIZE as i64, "{open} connections open");
            }
        })
        .await;
        db.drop_database().await;
        result.expect("test body");
    }
}

// ---- Differential ---------------------------------------------------------------

/// Seeded random batches (renames, catalog changes, ties, duplicates,
/// conflicts, late events, several organizations) go into a SQLite and a
/// PostgreSQL store: every answer is identical, and so is every download.
mod differential {
    use crate::common::*;
    use catalytics::domain::{Event, EventKind};
    use catalytics::store::IngestOutcome;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const SEED: u64 = 0x0000_c0ff_ee31;
    const BATCHES: usize = 300;
    const ORGS: [&str; 3] = ["org-1", "org-2", "org-3"];
    const NAMES: [&str; 8] = [
        "Valve",
        "Pump",
        "=Formula",
        "Ünïcødé",
        "a, b",
        "Zed",
        "\"q\"",
        "line\nbreak",
    ];

    struct Generator {
        rng: StdRng,
        sent: Vec<Event>,
        next_id: u128,
    }

    impl Generator {
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.rng.random_range(0..from.len())]
        }

        fn maybe_name(&mut self) -> Option<catalytics::domain::Name> {
            self.rng.random_bool(0.7).then(|| name(self.pick(&NAMES)))
        }

        /// A new event: few components, catalogs, users and timestamps, so
        /// renames, ties and late events are frequent.
        fn new_event(&mut self) -> Event {
            self.next_id += 1;
            let org = self.pick(&ORGS);
            let ts = 1_700_000_000_000 + self.rng.random_range(0..40) * 1000;
            let mut e = event_with_id(org, ts, self.next_id);
            e.kind = EventKind::ALL[self.rng.random_range(0..3)];
            e.component.id = oid(&format!("c{}", self.rng.random_range(0..6)));
            e.component.display_name = name(self.pick(&NAMES));
            e.component.catalogs = (0..self.rng.random_range(0..4))
                .map(|_| {
                    let id = format!("k{}", self.rng.random_range(0..5));
                    catalog(&id, self.pick(&NAMES))
                })
                .collect();
            e.component.category = self.maybe_name();
            e.component.manufacturer = self.maybe_name();
            e.user.id = uid(&format!("u{}", self.rng.random_range(0..4)));
            e.user.email = name(&format!("{}@example.com", self.pick(&["a", "b", "c"])));
            e.application = self.maybe_name();
            e.project_id = self
                .rng
                .random_bool(0.5)
                .then(|| oid(self.pick(&["p1", "p2"])));
            e
        }

        /// A re-send of `e`: the same facts (a duplicate, perhaps with new
        /// names) or one fact changed (a conflict).
        fn resend(&mut self, e: &Event) -> Event {
            let mut again = e.clone();
            match self.rng.random_range(0..8) {
                0 => {
                    again.timestamp =
                        catalytics::domain::Timestamp::from_millis(e.timestamp.millis() + 1)
                }
                1 => again.kind = EventKind::ALL[(e.kind as usize) % 3],
                2 => again.component.id = oid("c-conflict"),
                3 => again.user.id = uid("u-conflict"),
                4 => again.organization = org(self.pick(&ORGS)),
                _ => {
                    again.component.display_name = name(self.pick(&NAMES));
                    again.user.email = name("resent@example.com");
                    again.component.catalogs.clear();
                }
            }
            again
        }

        fn batch(&mut self) -> Vec<Event> {
            let mut batch: Vec<Event> = Vec::new();
            for _ in 0..self.rng.random_range(0..30) {
                let roll = self.rng.random_range(0..10);
                let e = if roll < 2 && !self.sent.is_empty() {
                    let i = self.rng.random_range(0..self.sent.len());
                    let earlier = self.sent[i].clone();
                    self.resend(&earlier)
                } else if roll == 2 && !batch.is_empty() {
                    let i = self.rng.random_range(0..batch.len());
                    let earlier = batch[i].clone();
                    self.resend(&earlier)
                } else {
                    self.new_event()
                };
                batch.push(e);
            }
            self.sent.extend(batch.iter().cloned());
            batch
        }
    }

    async fn assert_same_downloads(lite: &DynStore, pg: &DynStore, after: usize) {
        for org_id in ORGS {
            let expected = export_csv(lite, org_id, everything()).await;
            let got = export_csv(pg, org_id, everything()).await;
            assert!(
                expected == got,
                "{org_id} after {after} batches:\n{}\n---\n{}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&got)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_batches_give_identical_answers_and_downloads() {
        run_postgres(|pg| async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let lite = catalytics::store::open(None, dir.path())
                .await
                .expect("open SQLite");
            let mut generator = Generator {
                rng: StdRng::seed_from_u64(SEED),
                sent: Vec::new(),
                next_id: 0,
            };
            let mut total = IngestOutcome::default();
            for i in 0..BATCHES {
                let batch = generator.batch();
                let a = lite.ingest(batch.clone()).await.expect("SQLite ingest");
                let b = pg.ingest(batch).await.expect("PostgreSQL ingest");
                assert_eq!(a, b, "answers to batch {i} (seed {SEED:#x})");
                total += a;
                if i % 50 == 49 {
                    assert_same_downloads(&lite, &pg, i + 1).await;
                }
            }
            assert_same_downloads(&lite, &pg, BATCHES).await;
            assert!(
                total.accepted > 2000 && total.duplicates > 100 && total.conflicts > 100,
                "the batches exercise every rule: {total:?}"
            );
        })
        .await;
    }
}

// ---- Upgrade ------------------------------------------------------------------

/// A store written by schema version 1 (no fingerprints) upgrades in
/// place, on SQLite and on PostgreSQL: its events stay idempotent, and new
/// events are checked for conflicts.
mod upgrade {
    use crate::common::*;
    use catalytics::domain::Timestamp;
    use catalytics::store::{ExportRow, IngestOutcome};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_stored_before_fingerprints_stay_idempotent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v1.sqlite3");
        let stored = event_with_id("org-1", 1000, 7);
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);",
            )
            .expect("migrations table");
            conn.execute_batch(include_str!("../src/store/sqlite/migrations/0001_init.sql"))
                .expect("version 1");
            conn.execute_batch(&format!(
                "INSERT INTO organizations (org_key, org_id) VALUES (1, 'org-1');
                 INSERT INTO components (component_key, org_key, external_id, display_name, catalog_ids, name_ts)
                 VALUES (1, 1, '{}', 'Stored name', '', 1000);
                 INSERT INTO users (user_key, org_key, external_id, email, name_ts)
                 VALUES (1, 1, '{}', 'stored@example.com', 1000);",
                stored.component.id, stored.user.id
            ))
            .expect("dimensions");
            conn.execute(
                "INSERT INTO events (org_key, ts, id, kind, component_key, user_key) VALUES (1, 1000, ?1, 1, 1, 1)",
                [stored.id.as_uuid().as_bytes().as_slice()],
            )
            .expect("event");
        }
        let url = format!("sqlite://{}", path.display());
        let store = catalytics::store::open(Some(&url), dir.path())
            .await
            .expect("upgrade");
        let mut renamed = stored.clone();
        renamed.component.display_name = name("=HIJACKED");
        let mut moved = stored.clone();
        moved.timestamp = catalytics::domain::Timestamp::from_millis(2000);
        let got = store.ingest(vec![renamed, moved]).await.expect("ingest");
        let duplicates = IngestOutcome {
            duplicates: 2,
            ..IngestOutcome::default()
        };
        assert_eq!(got, duplicates, "no facts kept: both are duplicates");
        let rows = export_all(&store, "org-1", everything()).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].component_name, "Stored name");

        let fresh = event_with_id("org-1", 3000, 8);
        let mut conflict = fresh.clone();
        conflict.timestamp = catalytics::domain::Timestamp::from_millis(3001);
        let got = store
            .ingest(vec![fresh.clone(), conflict])
            .await
            .expect("ingest");
        assert_eq!(
            got,
            IngestOutcome {
                accepted: 1,
                conflicts: 1,
                conflicting: vec![fresh.id],
                ..IngestOutcome::default()
            }
        );
    }

    /// A PostgreSQL database written by schema version 1 (no fingerprints,
    /// events not partitioned, idempotency by organization and id) upgrades
    /// in place when the store opens: its events stay downloadable, a
    /// re-send of one is a duplicate (not a conflict, not a new row), and
    /// new events are checked for conflicts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_events_stored_at_version_1_stay_idempotent() {
        PgDatabase::scoped(|db| async move {
            let stored = event_with_id("org-1", 1000, 7);
            let client = admin(&db.url).await;
            client
                .batch_execute(
                    "CREATE TABLE schema_migrations (
                         version    bigint PRIMARY KEY,
                         applied_at timestamptz NOT NULL DEFAULT now()
                     );
                     INSERT INTO schema_migrations (version) VALUES (1);",
                )
                .await
                .expect("migrations table");
            client
                .batch_execute(include_str!("../src/store/postgres/migrations/0001_init.sql"))
                .await
                .expect("version 1");
            // Rows as version 1 stored them, keys from their identities.
            client
                .batch_execute(&format!(
                    "INSERT INTO organizations (org_id) VALUES ('org-1');
                     INSERT INTO components (org_key, external_id, display_name, catalog_ids, name_ts)
                     SELECT org_key, '{component}', 'Stored name', '', 1000 FROM organizations;
                     INSERT INTO users (org_key, external_id, email, name_ts)
                     SELECT org_key, '{user}', 'stored@example.com', 1000 FROM organizations;
                     INSERT INTO event_ids (org_key, id) SELECT org_key, '{id}' FROM organizations;
                     INSERT INTO events (org_key, ts, id, kind, component_key, user_key)
                     SELECT o.org_key, 1000, '{id}', {kind}, c.component_key, u.user_key
                     FROM organizations o, components c, users u;",
                    component = stored.component.id,
                    user = stored.user.id,
                    id = stored.id.as_uuid(),
                    kind = stored.kind.code(),
                ))
                .await
                .expect("version 1 rows");
            drop(client);

            let store = catalytics::store::open(Some(&db.url), std::path::Path::new("unused"))
                .await
                .expect("upgrade");
            let versions: Vec<i64> = admin(&db.url)
                .await
                .query("SELECT version FROM schema_migrations ORDER BY version", &[])
                .await
                .expect("versions")
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert!(versions.len() > 1 && versions[0] == 1, "{versions:?}");
            let row = ExportRow {
                timestamp: Timestamp::from_millis(1000),
                kind: stored.kind,
                component_id: stored.component.id.to_string(),
                component_name: "Stored name".into(),
                catalogs: None,
                category: None,
                manufacturer: None,
                application: None,
                project_id: None,
                user_id: stored.user.id.to_string(),
                user_email: "stored@example.com".into(),
            };
            assert_eq!(export_all(&store, "org-1", everything()).await, vec![row.clone()]);

            let mut renamed = stored.clone();
            renamed.component.display_name = name("=HIJACKED");
            let got = store
                .ingest(vec![stored.clone(), renamed])
                .await
                .expect("ingest");
            let duplicates = IngestOutcome {
                duplicates: 2,
                ..IngestOutcome::default()
            };
            assert_eq!(got, duplicates, "stored at version 1: a duplicate");
            assert_eq!(export_all(&store, "org-1", everything()).await, vec![row]);

            let fresh = event_with_id("org-1", 3000, 8);
            let mut conflict = fresh.clone();
            conflict.timestamp = Timestamp::from_millis(3001);
            let got = store
                .ingest(vec![fresh.clone(), conflict])
                .await
                .expect("ingest");
            let expected = IngestOutcome {
                accepted: 1,
                conflicts: 1,
                conflicting: vec![fresh.id],
                ..IngestOutcome::default()
            };
            assert_eq!(got, expected);
            assert_eq!(export_all(&store, "org-1", everything()).await.len(), 2);
        })
        .await;
    }
}

async fn purging_events_is_bounded_and_spares_the_rest(store: DynStore) {
    let old = 1_700_000_000_000; // November 2023
    let mut events: Vec<Event> = (0..5)
        .map(|i| event_with_id("org-1", old + i, i as u128 + 1))
        .collect();
    events.push(event_with_id("org-2", old, 10));
    events.push(event_with_id("org-1", old + 1_000_000, 11));
    store.ingest(events).await.expect("ingest");
    let before = Timestamp::from_millis(old + 500_000);
    let first = store.purge_events(before, 4).await.expect("purge");
    assert_eq!((first.rows, first.more), (4, true));
    let second = store.purge_events(before, 4).await.expect("purge");
    assert_eq!((second.rows, second.more), (2, false));
    let third = store.purge_events(before, 4).await.expect("purge");
    assert_eq!((third.rows, third.more), (0, false));
    assert_eq!(export_all(&store, "org-1", everything()).await.len(), 1);
    assert!(export_all(&store, "org-2", everything()).await.is_empty());
    // The idempotency ids went with the rows: a re-sent expired event is
    // stored again (and goes at the next run).
    let again = store
        .ingest(vec![event_with_id("org-1", old, 1)])
        .await
        .expect("ingest");
    assert_eq!(again, outcome(1, 0));
}

async fn erasure_is_scoped_to_one_organization(store: DynStore) {
    let mut a = event_with_id("org-1", 1_700_000_000_000, 1);
    a.user.id = uid("shared-id");
    let mut b = event_with_id("org-2", 1_700_000_000_000, 2);
    b.user.id = uid("shared-id");
    store.ingest(vec![a, b]).await.expect("ingest");
    let erased = store
        .erase_user(&org("org-1"), &uid("shared-id"), None)
        .await
        .expect("erase");
    assert_eq!(erased.events, 1);
    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(
        (rows[0].user_id.as_str(), rows[0].user_email.as_str()),
        (erased.pseudonym.as_str(), "")
    );
    let other = store
        .erase_user(&org("org-2"), &uid("shared-id"), None)
        .await
        .expect("erase");
    assert_ne!(
        other.pseudonym, erased.pseudonym,
        "pseudonyms are per organization"
    );
    let unknown = store
        .erase_user(&org("org-9"), &uid("nobody"), None)
        .await
        .expect("erase in an unknown organization");
    assert_eq!(unknown.events, 0);
}

async fn erasure_racing_ingestion_never_lets_the_id_back(store: DynStore) {
    let writer = store.clone();
    let ingesting = tokio::spawn(async move {
        for i in 0..60u128 {
            let mut e = event_with_id("org-1", 1_700_000_000_000 + i as i64, i + 1);
            e.user.id = uid("racer");
            e.user.email = name("racer@example.com");
            writer.ingest(vec![e]).await.expect("ingest");
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let erased = store
        .erase_user(&org("org-1"), &uid("racer"), None)
        .await
        .expect("erase");
    ingesting.await.expect("ingestion task");
    let rows = export_all(&store, "org-1", everything()).await;
    assert_eq!(rows.len(), 60);
    for row in rows {
        assert_eq!(
            (row.user_id.as_str(), row.user_email.as_str()),
            (erased.pseudonym.as_str(), "")
        );
    }
}

async fn a_resent_event_of_an_erased_user_is_a_duplicate(store: DynStore) {
    let mut e = event_with_id("org-1", 1_700_000_000_000, 1);
    e.user.id = uid("leaver");
    store.ingest(vec![e.clone()]).await.expect("ingest");
    store
        .erase_user(&org("org-1"), &uid("leaver"), None)
        .await
        .expect("erase");
    // Its stored fingerprint (which hashed the real id) is gone, so the
    // re-sent event is neither stored again nor reported as a conflict.
    let again = store.ingest(vec![e]).await.expect("ingest");
    assert_eq!(again, outcome(0, 1));
    assert_eq!(export_all(&store, "org-1", everything()).await.len(), 1);
}
