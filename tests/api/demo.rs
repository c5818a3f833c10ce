//! `catalytics demo` prints a curl command that works as pasted, and a
//! login link for the admin page next to it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_printed_curl_command_downloads_thousands_of_rows() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut child = crate::helpers::catalytics_bin()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--events",
            "20000",
            "--data-dir",
        ])
        .arg(data.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines.next().unwrap().unwrap();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "first line is the bound address: {addr}"
    );
    let mut lines = lines.map(Result::unwrap);
    let curl = lines
        .find(|l| l.starts_with("curl "))
        .expect("a curl command is printed");
    let said = lines.next().expect("the link is introduced");
    assert_eq!(
        said,
        "# Or open the admin page, signed in as the same administrator \
         (one-time link, valid 24h; the sign-in lasts 8h):"
    );
    let link = lines
        .next()
        .filter(|l| l.starts_with("http://"))
        .expect("a login link is printed after the curl command");
    let status = Command::new("sh")
        .arg("-c")
        .arg(&curl)
        .current_dir(work.path())
        .status()
        .unwrap();
    let summary_events = summarised_events(&addr, &link);
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.success(), "curl failed: {curl}");
    let body = std::fs::read(work.path().join("catalytics-demo.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(&body[..]);
    let rows = reader
        .records()
        .inspect(|r| assert!(r.is_ok(), "{r:?}"))
        .count();
    assert!(rows > 5000, "thousands of rows, got {rows}");
    assert_eq!(
        summary_events, rows as u64,
        "the link's token sees the same data"
    );
}

/// Follows the login link the way the page does: the page loads, redeems
/// the one-time code from the fragment for a token, and the token reads the
/// summary of the curl command's window. The link works once only.
fn summarised_events(addr: &str, link: &str) -> u64 {
    let (page, code) = link.split_once("/#code=").expect("code in the fragment");
    assert_eq!(page, format!("http://{addr}"));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = reqwest::Client::new();
        let html = client.get(format!("{page}/")).send().await.unwrap();
        assert_eq!(html.status(), 200);
        assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
        let redeem = || {
            client
                .post(format!("{page}/auth/login-link"))
                .json(&serde_json::json!({ "code": code }))
                .send()
        };
        let signed_in: serde_json::Value = redeem().await.unwrap().json().await.unwrap();
        assert_eq!(signed_in["expiresIn"], 8 * 3600);
        let token = signed_in["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(redeem().await.unwrap().status(), 401, "one time only");
        let now = time::OffsetDateTime::now_utc();
        let day =
            |d: time::OffsetDateTime| d.date().midnight().assume_utc().unix_timestamp() * 1000;
        let wire = |ms: i64| catalytics::domain::Timestamp::from_millis(ms).to_wire();
        let (start, end) = (
            day(now - time::Duration::days(90)),
            day(now + time::Duration::days(1)),
        );
        let summary: serde_json::Value = client
            .get(format!(
                "{page}/library/components/analytics/summary?startDate={}&endDate={}",
                wire(start),
                wire(end)
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let totals = &summary["totals"];
        ["View", "Download", "Place"]
            .iter()
            .map(|k| totals[k].as_u64().unwrap())
            .sum()
    })
}
