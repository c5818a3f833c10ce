//! The admin page in a real browser: the real binary, seeded through its
//! own CLI, driven by `tests/browser/*.mjs` (Playwright's `playwright-core`
//! on Debian's Chromium). Skips loudly when node, the npm packages or
//! Chromium are missing; `.ci/run` installs all three.
//!
//! Screenshots land in `target/browser-screenshots/` (CI artifacts).

use crate::helpers::{catalytics_bin, event, free_port, Server};
use catalytics::domain::{EventKind, Name, OpaqueId, Timestamp, UserId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const DAY_MS: i64 = 86_400_000;
const ORG: &str = "org-browser";

/// Where the browser tooling lives, or why the tests cannot run.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    dir: PathBuf,
}

fn tools() -> Result<Tools, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = PathBuf::from(
        std::env::var("CATALYTICS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    let node = PathBuf::from("node");
    match Command::new(&node).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not installed (apt-get install nodejs npm)".into()),
    }
    if !chromium.exists() {
        return Err(format!(
            "{} does not exist (apt-get install chromium, or set CATALYTICS_CHROMIUM)",
            chromium.display()
        ));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(
            "playwright-core is not installed (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser)"
                .into(),
        );
    }
    Ok(Tools {
        node,
        chromium,
        dir,
    })
}

/// `None` after saying loudly why the browser tests did not run.
fn tools_or_skip() -> Option<Tools> {
    tools()
        .map_err(|why| crate::common::skip_loudly(&format!("the browser tests did not run: {why}")))
        .ok()
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `script` with the scenario in its environment; fails the test with
/// the script's output when it fails.
fn run_node(tools: &Tools, script: &str, scenario: &Value) {
    let output = Command::new(&tools.node)
        .arg(tools.dir.join(script))
        .current_dir(&tools.dir)
        .env("SCENARIO", scenario.to_string())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{script} failed:\n{text}");
}

fn catalytics(data_dir: &Path, args: &[&str]) -> String {
    let output = catalytics_bin()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "catalytics {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A UTC window `[today − (days−1), tomorrow)`, as the page's presets make.
fn last_days(days: i64, today: i64) -> (i64, i64) {
    (today - (days - 1) * DAY_MS, today + DAY_MS)
}

/// Totals (by kind, distinct users and components) of `events` in a window.
fn totals(events: &[(i64, EventKind, String, String)], (start, end): (i64, i64)) -> Value {
    let mut kinds: BTreeMap<&str, u64> = [("View", 0), ("Download", 0), ("Place", 0)].into();
    let (mut users, mut components) = (BTreeSet::new(), BTreeSet::new());
    for (_, kind, component, user) in events.iter().filter(|e| e.0 >= start && e.0 < end) {
        *kinds.get_mut(kind.as_str()).unwrap() += 1;
        components.insert(component);
        users.insert(user);
    }
    json!({"View": kinds["View"], "Download": kinds["Download"], "Place": kinds["Place"],
           "users": users.len(), "components": components.len()})
}

/// Seeds 40 days of usage of `org` ending now through `catalytics import`;
/// returns (timestamp, kind, component, user) of every event.
fn seed(data_dir: &Path, org: &str, now: i64) -> Vec<(i64, EventKind, String, String)> {
    let kinds = [EventKind::View, EventKind::Download, EventKind::Place];
    let mut ndjson = String::new();
    let mut seeded = Vec::new();
    for i in 0..1200i64 {
        let ts = now - 40 * DAY_MS + i * (40 * DAY_MS / 1200);
        // Busier recently, and component c01 busiest overall.
        let component = if i % 4 == 0 { 1 } else { 2 + (i * 7 % 13) };
        let user = 1 + (i * 5 % 9);
        let mut e = event(org, "2024-01-01T00:00:00.000Z");
        e.timestamp = Timestamp::from_millis(ts);
        e.kind = kinds[(i % 3) as usize];
        e.component.id = OpaqueId::parse(format!("c{component:02}")).unwrap();
        e.component.display_name = Name::parse(format!("Pump Assembly {component}")).unwrap();
        e.user.id = UserId::parse(format!("user-{user}")).unwrap();
        e.user.email = Name::parse(format!("user-{user}@example.com")).unwrap();
        ndjson.push_str(&catalytics::ingest::to_wire(&e).to_string());
        ndjson.push('\n');
        seeded.push((
            ts,
            e.kind,
            e.component.id.to_string(),
            e.user.id.to_string(),
        ));
    }
    let file = data_dir.join("seed.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    catalytics(data_dir, &["import", file.to_str().unwrap()]);
    seeded
}

#[test]
fn admin_page_in_chromium_local_sign_in() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let now = Timestamp::now().millis();
    let today = now - now.rem_euclid(DAY_MS);
    let events = seed(data.path(), ORG, now);
    catalytics(
        data.path(),
        &[
            "grant",
            "--org",
            ORG,
            "--user",
            "admin",
            "--permission",
            "View Analytics",
        ],
    );
    let server = Server::spawn(data.path(), &[]);
    let addr = &server.addr;
    let base_url = format!("http://{addr}");
    let link = |user: &str| {
        catalytics(
            data.path(),
            &[
                "login-link",
                "--org",
                ORG,
                "--user",
                user,
                "--email",
                &format!("{user}@example.com"),
                "--url",
                &base_url,
            ],
        )
    };
    let last7 = last_days(7, today);
    let wire = |ms: i64| Timestamp::from_millis(ms).to_wire();
    let scenario = json!({
        "chromium": tools.chromium,
        "baseUrl": base_url,
        "loginLink": link("admin"),
        "noPermissionLink": link("someone-else"),
        // What `curl` users hold: compared with the page's download.
        "apiToken": catalytics(data.path(), &["token", "--org", ORG, "--user", "admin"]),
        "screenshots": screenshots_dir(),
        "expected": {
            "last30": {"totals": totals(&events, last_days(30, today)), "topComponent": "c01"},
            "last7": {"totals": totals(&events, last7), "startDate": wire(last7.0), "endDate": wire(last7.1)},
        },
    });
    run_node(&tools, "admin.mjs", &scenario);
}

#[test]
fn admin_page_in_chromium_issuer_sign_in() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let org = "org-oidc";
    let data = tempfile::tempdir().unwrap();
    let now = Timestamp::now().millis();
    let today = now - now.rem_euclid(DAY_MS);
    let events = seed(data.path(), org, now);
    catalytics(
        data.path(),
        &[
            "grant",
            "--org",
            org,
            "--user",
            "alice",
            "--permission",
            "View Analytics",
        ],
    );
    let config = data.path().join("catalytics.toml");
    std::fs::write(&config, "[ui]\nclient_id = \"catalytics-admin\"\n").unwrap();
    let issuer_port = free_port();
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let server = Server::spawn(
        data.path(),
        &[
            "--issuer",
            &issuer,
            "--audience",
            "catalytics",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let scenario = json!({
        "chromium": tools.chromium,
        "baseUrl": format!("http://{}", server.addr),
        "issuerPort": issuer_port,
        "clientId": "catalytics-admin",
        "audience": "catalytics",
        "org": org,
        "user": "alice",
        "screenshots": screenshots_dir(),
        "expected": {"last30": {"totals": totals(&events, last_days(30, today))}},
    });
    run_node(&tools, "oidc.mjs", &scenario);
}
