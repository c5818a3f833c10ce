//! `catalytics demo` prints a curl command that works as pasted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_printed_curl_command_downloads_thousands_of_rows() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalytics"))
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
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines.next().unwrap().unwrap();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "first line is the bound address: {addr}"
    );
    let curl = lines
        .map(Result::unwrap)
        .find(|l| l.starts_with("curl "))
        .expect("a curl command is printed");
    assert!(started.elapsed() < Duration::from_secs(120));
    let status = Command::new("sh")
        .arg("-c")
        .arg(&curl)
        .current_dir(work.path())
        .status()
        .unwrap();
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
}
