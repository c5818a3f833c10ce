//! Faults caused for real against the real binary: a log sink on a full
//! file system or a closed pipe, a data directory on a file system that
//! fills up, a data directory the process may not write. Each shows the
//! documented answer, nothing acknowledged lost, and healing without a
//! restart.
//!
//! Mounting a tmpfs and switching users need root (CI runs as root); as
//! anyone else those tests print a loud SKIPPED line and pass.

use crate::helpers::*;
use catalytics::auth::local::LocalIssuer;
use catalytics::ingest::to_wire;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The unprivileged user and group the permission test runs the service as.
const NOBODY: u32 = 65534;

/// `true` when the test may go on; otherwise says loudly why not.
fn root_or_skip() -> bool {
    if crate::common::is_root() {
        return true;
    }
    crate::common::skip_loudly("needs root (tmpfs mounts, setpriv); it did not run");
    false
}

/// A tmpfs of a chosen size, mounted for the test and unmounted after.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

/// Starts `command serve` with its log (stderr) going to `stderr`, at
/// `info` level so that every request writes log lines.
fn start(mut command: Command, data_dir: &Path, stderr: Stdio) -> Server {
    command.env("RUST_LOG", "info");
    Server::start(command, data_dir, &[], stderr)
}

/// Events with distinct timestamps from `first` (milliseconds apart), so
/// the CSV's Timestamp column identifies each.
fn events(org: &str, first: usize, n: usize) -> Vec<Value> {
    (first..first + n)
        .map(|i| {
            let mut e = event(org, "2024-01-01T00:00:00.000Z");
            e.timestamp = catalytics::domain::Timestamp::from_millis(1_704_067_200_000 + i as i64);
            to_wire(&e)
        })
        .collect()
}

async fn assert_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        json_of(response).await,
        error_body(
            "ServiceUnavailable",
            "The service is temporarily unavailable. Retry later."
        )
    );
}

async fn ready_status(client: &reqwest::Client, addr: &str) -> u16 {
    client
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Timestamps in the organization's full download.
async fn downloaded(client: &reqwest::Client, addr: &str, token: &str) -> Vec<String> {
    let response = client
        .get(format!("http://{addr}{DOWNLOAD}?{}", wide()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, rows) = parse_csv(&response.bytes().await.unwrap());
    rows.into_iter().map(|r| r[0].clone()).collect()
}

fn wire_timestamps(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap().to_owned())
        .collect()
}

/// Tokens for an ingesting service and an administrator of `org`.
async fn tokens(data_dir: &Path, org: &str) -> (String, String) {
    let issuer = LocalIssuer::load_or_create(data_dir).unwrap().0;
    let store = catalytics::store::open(None, data_dir).await.unwrap();
    store
        .grant(&catalytics::domain::AccessGrant {
            org: catalytics::domain::OrgId::parse(org).unwrap(),
            user: catalytics::domain::UserId::parse("admin").unwrap(),
            grant: view_analytics(),
        })
        .await
        .unwrap();
    (
        issuer
            .sign(&service_claims("svc", "analytics:write"))
            .unwrap(),
        issuer
            .sign(&claims(org, "admin", "itwin-platform"))
            .unwrap(),
    )
}

/// Requests that each log lines keep succeeding.
async fn requests_succeed(client: &reqwest::Client, addr: &str, token: &str, n: usize) {
    for _ in 0..n {
        let r = client
            .get(format!("http://{addr}{DOWNLOAD}?{}", wide()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        let r = client
            .get(format!("http://{addr}/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn a_closed_log_pipe_costs_no_request() {
    let data = tempfile::tempdir().unwrap();
    let (_, reader) = tokens(data.path(), "org-l").await;
    let mut server = start(catalytics_bin(), data.path(), Stdio::piped());
    drop(server.child.stderr.take()); // the reading end goes away
    let client = reqwest::Client::new();
    requests_succeed(&client, &server.addr, &reader, 50).await;
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    // The operator learns that lines were lost.
    let text = client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let lost = scrape
        .samples
        .iter()
        .find(|s| s.metric == "catalytics_log_lines_lost_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => -1.0,
        });
    assert!(
        lost.is_some_and(|v| v > 0.0),
        "lost lines counted: {lost:?}"
    );
}

#[tokio::test]
async fn a_log_sink_on_a_full_disk_costs_no_request_and_resumes() {
    if !root_or_skip() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (_, reader) = tokens(data.path(), "org-l").await;
    let logs = Tmpfs::mount("256k");
    let log_path = logs.path().join("catalytics.log");
    let log = std::fs::File::create(&log_path).unwrap();
    fill(&logs.path().join("filler"));
    let server = start(catalytics_bin(), data.path(), Stdio::from(log));
    let client = reqwest::Client::new();
    requests_succeed(&client, &server.addr, &reader, 100).await;
    // Room again: logging resumes, and says what was lost.
    std::fs::remove_file(logs.path().join("filler")).unwrap();
    let mut text = String::new();
    for _ in 0..50 {
        requests_succeed(&client, &server.addr, &reader, 1).await;
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("log sink recovered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("log sink recovered"),
        "log after recovery: {text}"
    );
    assert!(text.contains("request"), "request lines are logged again");
}

#[tokio::test]
async fn a_full_data_disk_answers_503_and_heals_when_it_grows() {
    if !root_or_skip() {
        return;
    }
    let disk = Tmpfs::mount("1m");
    let data = disk.path().join("data");
    let (writer, reader) = tokens(&data, "org-f").await;
    let server = start(catalytics_bin(), &data, Stdio::null());
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let mut next = 0;
    // Fill the disk with batches, then with single events, until a single
    // event is refused and readiness agrees. Near full, a finished WAL
    // checkpoint can make room for a few more small writes; readiness then
    // rightly says 204, and the next single event shows it.
    let mut batch = 500;
    let mut refusals = 0;
    loop {
        assert!(next < 200_000, "the 1 MiB disk never filled");
        assert!(refusals < 100, "readiness never reported the full disk");
        let events = events("org-f", next, batch);
        next += batch;
        let response = post_events(&client, &server.addr, &writer, &events).await;
        if response.status() == 200 {
            acknowledged.extend(wire_timestamps(&events));
            continue;
        }
        assert_unavailable(response).await;
        refusals += 1;
        if batch > 1 {
            batch = (batch / 5).max(1);
            continue;
        }
        let ready = client
            .get(format!("http://{}/health/ready", server.addr))
            .send()
            .await
            .unwrap();
        if ready.status() == 503 {
            assert_unavailable(ready).await;
            break;
        }
    }
    assert!(!acknowledged.is_empty());
    // The disk grows: the same process takes writes again.
    disk.resize("64m");
    let more = events("org-f", next, 100);
    let response = post_events(&client, &server.addr, &writer, &more).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    acknowledged.extend(wire_timestamps(&more));
    assert_eq!(ready_status(&client, &server.addr).await, 204);
    let mut got = downloaded(&client, &server.addr, &reader).await;
    got.sort();
    acknowledged.sort();
    assert_eq!(got, acknowledged, "exactly the acknowledged events");
}

/// `chown -R` without following symlinks, as root.
fn chown_tree(path: &Path, owner: u32) {
    std::os::unix::fs::lchown(path, Some(owner), Some(owner)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), owner);
        }
    }
}

#[tokio::test]
async fn an_unwritable_data_dir_answers_503_and_heals_when_writable() {
    if !root_or_skip() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    // Everything the unprivileged user needs to reach is world-traversable:
    // a copy of the binary and the data dir under a 0755 directory.
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin: PathBuf = root.path().join("catalytics");
    std::fs::copy(env!("CARGO_BIN_EXE_catalytics"), &bin).unwrap();
    let data = root.path().join("data");
    // The store and key made by root; the key readable by the service user,
    // the directory and database not writable by it.
    let (writer, reader) = tokens(&data, "org-p").await;
    std::os::unix::fs::chown(
        data.join(catalytics::auth::local::KEY_FILE),
        Some(NOBODY),
        Some(NOBODY),
    )
    .unwrap();
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(&bin);
    let server = start(command, &data, Stdio::null());
    let client = reqwest::Client::new();
    let first = events("org-p", 0, 10);
    assert_unavailable(post_events(&client, &server.addr, &writer, &first).await).await;
    assert_eq!(ready_status(&client, &server.addr).await, 503);
    // Made writable: the running process heals.
    chown_tree(&data, NOBODY);
    let response = post_events(&client, &server.addr, &writer, &first).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(ready_status(&client, &server.addr).await, 204);
    let got = downloaded(&client, &server.addr, &reader).await;
    assert_eq!(got, wire_timestamps(&first));
}
