//! The README's "Running it" section, run as written: its `sh` blocks are
//! extracted from README.md and run in order by one bash, in a fresh
//! directory, with the binary under test first on `PATH` (the section's
//! `cargo …` install line is the only one left out, since this test has
//! the binary already). The one other change is the port: 127.0.0.1:8080
//! becomes a free port, as other test runs may hold 8080.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The `sh` blocks of the `## Running it` section (up to the next heading
/// of any level), without `cargo` lines.
fn running_it_script(readme: &str) -> String {
    let (_, section) = readme
        .split_once("\n## Running it\n")
        .expect("README has a \"Running it\" section");
    let mut script = String::new();
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (false, l) if l.starts_with('#') => break,
            (true, "```") => in_block = false,
            (true, l) if l.starts_with("cargo ") => {}
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

#[test]
fn the_running_it_section_works_as_pasted() {
    if !crate::common::on_path("curl") {
        crate::common::skip_loudly("the README's commands need curl, which is not installed");
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let script = running_it_script(&readme);
    assert!(script.contains("export CATALYTICS_DATA_DIR="), "{script}");
    assert!(
        script
            .lines()
            .filter(|l| l.contains("curl "))
            .all(|l| l.contains("--fail-with-body")),
        "every curl fails loudly:\n{script}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = script.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));

    let work = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_catalytics"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env_remove("CATALYTICS_DATA_DIR")
        .env_remove("CATALYTICS_DATABASE_URL")
        .env_remove("CATALYTICS_CONFIG")
        .env_remove("CATALYTICS_BIND")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a failure half-way cannot leave
        // the background service running.
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: signals the process group this test made.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README's commands failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(r#"{"accepted":2,"duplicates":0,"conflicts":0,"conflicting":[]}"#),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "created data dir {}",
            work.path().join("catalytics-data").display()
        )),
        "{stderr}"
    );
    let body = std::fs::read(work.path().join("usage.csv")).unwrap();
    let (header, rows) = crate::helpers::parse_csv(&body);
    assert_eq!(header, crate::helpers::HEADER);
    let kinds: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[9].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("2024-01-15T09:30:00.000Z", "View", "bob"),
            ("2024-01-15T09:31:00.000Z", "Place", "bob"),
        ]
    );
}

/// The settings files shown in the docs load and pass validation as written.
#[test]
fn documented_settings_files_are_valid() {
    for doc in ["docs/operations.md", "docs/first-hour.md"] {
        let text =
            std::fs::read_to_string(format!("{}/{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let blocks: Vec<&str> = text
            .split("```toml\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap())
            .collect();
        assert!(!blocks.is_empty(), "{doc} shows a settings file");
        for block in blocks {
            let settings: catalytics::config::Settings =
                toml::from_str(block).unwrap_or_else(|e| panic!("{doc}: {e}\n{block}"));
            settings
                .validate()
                .unwrap_or_else(|e| panic!("{doc}: {e}\n{block}"));
        }
    }
}
