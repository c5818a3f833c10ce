//! The CSV itself, read back with a real CSV reader.

use crate::helpers::*;
use catalytics::domain::{EventKind, Name, OpaqueId, UserId};

async fn download_csv(app: &TestApp, bearer: &str, query: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let response = app.get_download(Some(bearer), query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let body = response.bytes().await.unwrap();
    assert!(!body.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    parse_csv(&body)
}

async fn an_empty_window_is_the_header_alone() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..], format!("{}\r\n", HEADER.join(",")).as_bytes());
}

async fn rows_carry_every_column_in_contract_order() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let mut e = event("org-a", "2024-03-04T05:06:07.089Z");
    e.kind = EventKind::Place;
    let mut bare = event("org-a", "2024-03-04T05:06:08.000Z");
    bare.component.id = OpaqueId::parse("component-2").unwrap();
    bare.component.display_name = Name::parse("Unlisted").unwrap();
    bare.component.catalogs.clear();
    bare.component.category = None;
    bare.component.manufacturer = None;
    bare.application = None;
    bare.project_id = None;
    bare.kind = EventKind::Download;
    app.ingest(vec![e, bare]).await;
    let (header, rows) = download_csv(&app, &bearer, &wide()).await;
    assert_eq!(header, HEADER);
    assert_eq!(
        rows,
        vec![
            vec![
                "2024-03-04T05:06:07.089Z",
                "Place",
                "component-1",
                "Gate Valve DN 100",
                "Plant Equipment",
                "Valves",
                "Velan",
                "OpenPlant Modeler 10.11",
                "project-1",
                "user-1",
                "user-1@example.com",
            ],
            vec![
                "2024-03-04T05:06:08.000Z",
                "Download",
                "component-2",
                "Unlisted",
                "",
                "",
                "",
                "",
                "",
                "user-1",
                "user-1@example.com",
            ],
        ]
    );
}

async fn the_window_is_half_open() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let at = |ts: &str| event("org-a", ts);
    app.ingest(vec![
        at("2024-01-31T23:59:59.999Z"),
        at("2024-02-01T00:00:00.000Z"),
        at("2024-02-14T12:00:00.000Z"),
        at("2024-02-29T23:59:59.999Z"),
        at("2024-03-01T00:00:00.000Z"),
    ])
    .await;
    let (_, rows) = download_csv(
        &app,
        &bearer,
        &window("2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
    )
    .await;
    let stamps: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        stamps,
        [
            "2024-02-01T00:00:00.000Z",
            "2024-02-14T12:00:00.000Z",
            "2024-02-29T23:59:59.999Z"
        ]
    );
    // Consecutive windows partition the events.
    let (_, before) = download_csv(
        &app,
        &bearer,
        &window("2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"),
    )
    .await;
    let (_, after) = download_csv(
        &app,
        &bearer,
        &window("2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
    )
    .await;
    assert_eq!(before.len() + rows.len() + after.len(), 5);
}

async fn rows_are_ordered_by_timestamp_then_event_id() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let mut events = Vec::new();
    for ts in [
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T09:00:00.000Z",
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00.000Z",
    ] {
        let mut e = event("org-a", ts);
        e.user.id = UserId::parse(e.id.to_string()).unwrap(); // expose the id in the CSV
        events.push(e);
    }
    let mut expected: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.timestamp.to_wire(), e.id.to_string()))
        .collect();
    expected.sort();
    // Ingest in two batches, the later timestamps first.
    app.ingest(events.split_off(2)).await;
    app.ingest(events).await;
    let (_, rows) = download_csv(&app, &bearer, &wide()).await;
    let got: Vec<(String, String)> = rows.iter().map(|r| (r[0].clone(), r[9].clone())).collect();
    assert_eq!(got, expected);
}

async fn catalogs_are_sorted_and_joined() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let e = with_catalogs(
        event("org-a", "2024-01-01T00:00:00.000Z"),
        &[
            ("c3", "Structural Library"),
            ("c1", "MEP Library"),
            ("c2", "Architectural Standard"),
        ],
    );
    app.ingest(vec![e]).await;
    let (_, rows) = download_csv(&app, &bearer, &wide()).await;
    assert_eq!(
        rows[0][4],
        "Architectural Standard; MEP Library; Structural Library"
    );
}

async fn awkward_text_round_trips_and_formulas_are_defused() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let names = [
        ("plain, with comma", "plain, with comma"),
        ("say \"hello\"", "say \"hello\""),
        ("two\nlines", "two\nlines"),
        ("crlf\r\ninside", "crlf\r\ninside"),
        (
            "emoji 🚪 and 日本語 and ünïcödé",
            "emoji 🚪 and 日本語 and ünïcödé",
        ),
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tleading tab", "'\tleading tab"),
        ("\rleading cr", "'\rleading cr"),
        ("safe=inside", "safe=inside"),
    ];
    let mut events = Vec::new();
    for (i, (raw, _)) in names.iter().enumerate() {
        let mut e = event("org-a", &format!("2024-01-01T00:00:{i:02}.000Z"));
        e.component.id = OpaqueId::parse(format!("component-{i}")).unwrap();
        e.component.display_name = Name::parse(*raw).unwrap();
        e.component.manufacturer = Some(Name::parse(*raw).unwrap());
        e.user.email = Name::parse(*raw).unwrap();
        e.user.id = UserId::parse(format!("user-{i}")).unwrap();
        events.push(e);
    }
    // An id column is guarded too.
    let mut id_case = event("org-a", "2024-01-01T00:01:00.000Z");
    id_case.component.id = OpaqueId::parse("=cmd|' /C calc'!A0").unwrap();
    id_case.user.id = UserId::parse("-user").unwrap();
    events.push(id_case);
    app.ingest(events).await;
    let (_, rows) = download_csv(&app, &bearer, &wide()).await;
    for (row, (_, expected)) in rows.iter().zip(names.iter()) {
        assert_eq!(row[3], *expected, "component name");
        assert_eq!(row[6], *expected, "manufacturer");
        assert_eq!(row[10], *expected, "email");
    }
    assert_eq!(rows.last().unwrap()[2], "'=cmd|' /C calc'!A0");
    assert_eq!(rows.last().unwrap()[9], "'-user");
}

async fn organizations_never_see_each_other() {
    let app = spawn_app().await;
    let bearer_a = app.admin_bearer("org-a").await;
    let bearer_b = app.admin_bearer("org-b").await;
    let mut a = event("org-a", "2024-01-01T00:00:00.000Z");
    a.component.display_name = Name::parse("Only A").unwrap();
    let mut b = event("org-b", "2024-01-01T00:00:00.000Z");
    b.component.display_name = Name::parse("Only B").unwrap(); // same component id, other org
    app.ingest(vec![a, b]).await;
    let (_, rows_a) = download_csv(&app, &bearer_a, &wide()).await;
    let (_, rows_b) = download_csv(&app, &bearer_b, &wide()).await;
    assert_eq!(rows_a.len(), 1);
    assert_eq!(rows_a[0][3], "Only A");
    assert_eq!(rows_b.len(), 1);
    assert_eq!(rows_b[0][3], "Only B");
    let (_, rows_c) = download_csv(&app, &app.admin_bearer("org-c").await, &wide()).await;
    assert!(rows_c.is_empty());
}

async fn any_accept_header_is_served() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    for accept in [
        "application/vnd.bentley.itwin-platform.v1+json",
        "text/csv",
        "*/*",
        "application/xml",
    ] {
        let response = app
            .client
            .get(app.url(&format!("{DOWNLOAD}?{}", wide())))
            .header("Authorization", &bearer)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accept}");
    }
}

/// Names are remembered between downloads (per process, per organization):
/// a download after a rename, a new component or user, or a changed
/// catalog, category or manufacturer shows the current names on every row,
/// and so does the next one, served from what was remembered.
async fn names_changed_after_a_download_show_in_the_next() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    app.ingest(vec![event("org-a", "2024-01-01T00:00:00.000Z")])
        .await;
    let (_, before) = download_csv(&app, &bearer, &wide()).await;
    assert_eq!(
        before[0][3..=6],
        ["Gate Valve DN 100", "Plant Equipment", "Valves", "Velan"]
    );

    let mut renamed = with_catalogs(
        event("org-a", "2024-01-02T00:00:00.000Z"),
        &[("cat-plant", "Plant Kit"), ("cat-new", "Added")],
    );
    renamed.component.display_name = Name::parse("Gate Valve DN 150").unwrap();
    renamed.component.category = Some(Name::parse("Fittings").unwrap());
    renamed.component.manufacturer = Some(Name::parse("Orbinox").unwrap());
    renamed.user.email = Name::parse("renamed@example.com").unwrap();
    let mut added = with_catalogs(
        event("org-a", "2024-01-03T00:00:00.000Z"),
        &[("cat-plant", "Plant Kit")],
    );
    added.component.id = OpaqueId::parse("component-2").unwrap();
    added.component.display_name = Name::parse("Check Valve").unwrap();
    added.user.id = UserId::parse("user-2").unwrap();
    added.user.email = Name::parse("user-2@example.com").unwrap();
    added.application = Some(Name::parse("New App").unwrap());
    let current =
        |component: &str, name: &str, catalogs: &str, category: &str, manufacturer: &str| {
            [component, name, catalogs, category, manufacturer].map(str::to_owned)
        };
    let first = current(
        "component-1",
        "Gate Valve DN 150",
        "Added; Plant Kit",
        "Fittings",
        "Orbinox",
    );
    // Renames only: no key is new, so only the change itself can tell.
    app.ingest(vec![renamed]).await;
    for _ in 0..2 {
        let (_, rows) = download_csv(&app, &bearer, &wide()).await;
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert_eq!(row[2..=6], first, "{row:?}");
            assert_eq!(row[9..=10], ["user-1", "renamed@example.com"], "{row:?}");
        }
    }
    // New keys: a component, a user, an application.
    app.ingest(vec![added]).await;
    for _ in 0..2 {
        let (_, rows) = download_csv(&app, &bearer, &wide()).await;
        assert_eq!(rows.len(), 3);
        for row in &rows[..2] {
            assert_eq!(row[2..=6], first, "{row:?}");
        }
        let second = current("component-2", "Check Valve", "Plant Kit", "Valves", "Velan");
        assert_eq!(rows[2][2..=6], second, "{:?}", rows[2]);
        assert_eq!(rows[2][7], "New App");
        assert_eq!(rows[2][9..=10], ["user-2", "user-2@example.com"]);
    }
}

crate::both_backends!(
    an_empty_window_is_the_header_alone,
    rows_carry_every_column_in_contract_order,
    the_window_is_half_open,
    rows_are_ordered_by_timestamp_then_event_id,
    catalogs_are_sorted_and_joined,
    awkward_text_round_trips_and_formulas_are_defused,
    organizations_never_see_each_other,
    any_accept_header_is_served,
    names_changed_after_a_download_show_in_the_next,
);
