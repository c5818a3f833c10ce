//! The real binary as a child process: `serve` prints its address, an
//! acknowledged batch survives SIGKILL, `import` loads files idempotently.

use crate::helpers::*;
use catalytics::auth::local::LocalIssuer;
use catalytics::domain::{DateRange, OrgId, Timestamp};
use catalytics::ingest::to_wire;
use catalytics::store;
use futures_util::StreamExt;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};

/// Starts `serve` on port 0 and returns the child and its printed address.
fn serve(data_dir: &Path) -> (Child, String) {
    spawn_serve(data_dir, &[])
}

async fn stored_count(data_dir: &Path, org: &str) -> usize {
    let store = store::open(None, data_dir).await.unwrap();
    let range = DateRange::new(
        Timestamp::from_millis(0),
        Timestamp::from_millis(i64::MAX / 2),
    )
    .unwrap();
    let mut rows = store
        .export(&OrgId::parse(org).unwrap(), range)
        .await
        .unwrap()
        .rows;
    let mut n = 0;
    while let Some(batch) = rows.next().await {
        n += batch.unwrap().len();
    }
    n
}

#[tokio::test]
async fn an_acknowledged_batch_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(data.path());
    let issuer = LocalIssuer::load_or_create(data.path()).unwrap().0;
    let token = issuer
        .sign(&service_claims("svc", "analytics:write"))
        .unwrap();
    let events: Vec<_> = (0..1000)
        .map(|i| {
            to_wire(&event(
                "org-d",
                &format!("2024-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60),
            ))
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/library/components/analytics/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    child.kill().unwrap(); // SIGKILL, the moment the 200 is in
    child.wait().unwrap();
    assert_eq!(status, 200);
    assert_eq!(stored_count(data.path(), "org-d").await, 1000);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(data.path());
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn write_ndjson(path: &Path, n: usize, bad_line: Option<usize>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        if Some(i + 1) == bad_line {
            writeln!(f, "{{\"id\": \"nope\"}}").unwrap();
            continue;
        }
        let ts = Timestamp::from_millis(1_700_000_000_000 + i as i64 * 1000).to_wire();
        writeln!(f, "{}", to_wire(&event("org-i", &ts))).unwrap();
    }
}

fn import(data_dir: &Path, file: &Path) -> (bool, String, String) {
    let out = catalytics_bin()
        .arg("import")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn import_is_idempotent_and_reports_a_summary() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("events.ndjson");
    write_ndjson(&file, 25_000, None);
    let (ok, stdout, _) = import(data.path(), &file);
    assert!(ok);
    assert!(
        stdout.contains("25000 lines, 25000 accepted, 0 duplicates, 0 conflicts, 0 rejected"),
        "{stdout}"
    );
    let (ok, stdout, _) = import(data.path(), &file);
    assert!(ok);
    assert!(
        stdout.contains("25000 lines, 0 accepted, 25000 duplicates, 0 conflicts, 0 rejected"),
        "{stdout}"
    );
    assert_eq!(stored_count(data.path(), "org-i").await, 25_000);
}

#[tokio::test]
async fn import_reports_bad_lines_by_number() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("events.ndjson");
    write_ndjson(&file, 100, Some(7));
    let (ok, stdout, stderr) = import(data.path(), &file);
    assert!(!ok, "a rejected line makes the command fail");
    assert!(
        stderr.contains("line 7: rejected: line 7.id: Property 'id' must be a UUID."),
        "{stderr}"
    );
    assert!(
        stdout.contains("100 lines, 99 accepted, 0 duplicates, 0 conflicts, 1 rejected"),
        "{stdout}"
    );
    assert_eq!(stored_count(data.path(), "org-i").await, 99);
}

#[tokio::test]
async fn import_counts_duplicates_and_conflicts_and_fails_only_for_bad_lines() {
    let data = tempfile::tempdir().unwrap();
    let at = |i: i64| Timestamp::from_millis(1_700_000_000_000 + i * 1000).to_wire();
    let originals: Vec<_> = (0..6).map(|i| event("org-i", &at(i))).collect();
    let write = |name: &str, lines: &[String]| {
        let path = data.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let line = |e: &catalytics::domain::Event| to_wire(e).to_string();
    let first = write(
        "first.ndjson",
        &originals.iter().map(line).collect::<Vec<_>>(),
    );
    assert!(import(data.path(), &first).0);

    // Three re-sent as they were (one renamed: names are not facts), two
    // with another timestamp (conflicts), one new.
    let mut renamed = originals[2].clone();
    renamed.component.display_name = catalytics::domain::Name::parse("=HIJACKED").unwrap();
    let mut moved = [originals[3].clone(), originals[4].clone()];
    for e in &mut moved {
        e.timestamp = Timestamp::from_millis(e.timestamp.millis() + 1);
    }
    let second: Vec<String> = [&originals[0], &originals[1], &renamed, &moved[0], &moved[1]]
        .into_iter()
        .map(line)
        .chain([line(&event("org-i", &at(100)))])
        .collect();
    let (ok, stdout, stderr) = import(data.path(), &write("second.ndjson", &second));
    assert!(ok, "conflicts are reported, not failures: {stderr}");
    assert!(
        stdout.contains("6 lines, 1 accepted, 3 duplicates, 2 conflicts, 0 rejected"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "2 events conflict with stored events of the same id and were not stored; their ids: {}, {}",
            moved[0].id, moved[1].id
        )),
        "{stderr}"
    );
    assert_eq!(stored_count(data.path(), "org-i").await, 7);

    let third = write(
        "third.ndjson",
        &[line(&moved[0]), "{\"id\": \"nope\"}".to_owned()],
    );
    let (ok, stdout, _) = import(data.path(), &third);
    assert!(!ok, "a rejected line makes the command fail");
    assert!(
        stdout.contains("2 lines, 0 accepted, 0 duplicates, 1 conflicts, 1 rejected"),
        "{stdout}"
    );
}

/// The claims of a printed token (its payload, not verified).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn cli_grants_tokens_and_lists_access() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = catalytics_bin()
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, out, _) = run(&[
        "grant",
        "--org",
        "o1",
        "--user",
        "alice",
        "--role",
        "Co-Administrator",
    ]);
    assert!(ok && out.starts_with("granted"), "{out}");
    let (ok, out, _) = run(&[
        "grant",
        "--org",
        "o1",
        "--user",
        "alice",
        "--role",
        "Co-Administrator",
    ]);
    assert!(ok && out.starts_with("already held"), "{out}");
    let (ok, _, err) = run(&[
        "grant", "--org", "o1", "--user", "alice", "--role", "Janitor",
    ]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("unknown role \"Janitor\""), "{err}");
    let (ok, out, _) = run(&["access", "list", "--org", "o1"]);
    assert!(
        ok && out.contains("alice") && out.contains("Co-Administrator"),
        "{out}"
    );
    let (ok, out, _) = run(&[
        "revoke",
        "--org",
        "o1",
        "--user",
        "alice",
        "--role",
        "Co-Administrator",
    ]);
    assert!(ok && out.starts_with("revoked"), "{out}");
    let (ok, token, _) = run(&[
        "token", "--org", "o1", "--user", "alice", "--email", "a@x.com", "--ttl", "5m",
    ]);
    assert!(ok);
    let claims = claims_of(&token);
    assert_eq!(claims["org"], "o1");
    assert_eq!(claims["scope"], "itwin-platform");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // Without --org: a multi-organization service token, for ingestion only.
    let (ok, token, err) = run(&[
        "token",
        "--user",
        "library-backend",
        "--scope",
        "analytics:write",
    ]);
    assert!(ok, "{err}");
    let claims = claims_of(&token);
    assert_eq!(claims.get("org"), None, "{claims}");
    assert_eq!(claims["scope"], "analytics:write");
    let (ok, _, err) = run(&["token", "--user", "alice", "--email", "a@x.com"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("--org is required"), "{err}");
    let (ok, _, err) = run(&["serve", "--bind", "not-an-address"]);
    assert!(
        !ok && err.starts_with("error: invalid value 'not-an-address' for '--bind <ADDR>'"),
        "{err}"
    );
}
