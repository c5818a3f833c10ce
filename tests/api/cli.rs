//! The command line as a newcomer meets it: each mistake gets one clear
//! line naming its cause once, `--help` shows every default, and `demo`
//! never writes into existing data and leaves nothing behind when it fails.

use crate::common::PgDatabase;
use catalytics::domain::{DateRange, OrgId, Timestamp};
use futures_util::StreamExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary with a clean `CATALYTICS_*` environment and no log lines,
/// so that stderr holds exactly what the command says to its user.
fn catalytics() -> Command {
    quiet(crate::helpers::catalytics_bin())
}

/// `cmd` without `CATALYTICS_*` variables and with logging off.
fn quiet(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("CATALYTICS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "off");
    cmd
}

/// Runs the binary with `args`.
fn run(args: &[&str]) -> Output {
    catalytics().args(args).output().unwrap()
}

/// Runs the binary with `args` and then `last` (a path).
fn run_then(args: &[&str], last: impl AsRef<std::ffi::OsStr>) -> Output {
    catalytics().args(args).arg(last).output().unwrap()
}

/// Runs the binary with `args` and `--data-dir dir`.
fn run_in(args: &[&str], dir: &Path) -> Output {
    catalytics()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts failure with exactly `expected` as the whole of stderr (one line).
fn assert_fails_with(out: &Output, expected: &str) {
    assert!(!out.status.success(), "must fail: {}", stderr(out));
    assert_eq!(stderr(out), format!("{expected}\n"));
}

/// A port some other socket holds for as long as the listener lives.
fn busy_port() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

#[test]
fn a_missing_config_file_is_named_once() {
    let out = run(&["--config", "/nonexistent/catalytics.toml", "migrate"]);
    assert_fails_with(
        &out,
        "error: cannot read config file /nonexistent/catalytics.toml: does not exist",
    );
}

#[test]
fn a_host_name_for_bind_gets_the_ip_hint() {
    let out = run(&["serve", "--bind", "localhost:8080"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "error: invalid value 'localhost:8080' for '--bind <ADDR>': \"localhost\" is not an IP address; \
             use an IP address such as 127.0.0.1 (this host only) or 0.0.0.0 (every interface), e.g. 127.0.0.1:8080"
        )
    );
}

#[test]
fn a_mistyped_database_url_names_every_accepted_scheme() {
    let out = run(&["migrate", "--database-url", "postgres//x"]);
    assert_fails_with(
        &out,
        "error: cannot open the store: store configuration: database URL \"postgres//x\" \
         must start with postgres://, postgresql:// or sqlite://",
    );
}

#[test]
fn a_limit_of_zero_is_refused_with_its_range() {
    let data = tempfile::tempdir().unwrap();
    let out = run_in(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--max-concurrent-downloads",
            "0",
        ],
        data.path(),
    );
    assert_fails_with(
        &out,
        "error: invalid max_concurrent_downloads = 0: must be between 1 and 10000",
    );
    let config = data.path().join("c.toml");
    std::fs::write(&config, "[limits]\ndownloads_per_minute_per_org = 0\n").unwrap();
    let out = run_then(&["serve", "--bind", "127.0.0.1:0", "--config"], &config);
    assert_fails_with(
        &out,
        "error: invalid downloads_per_minute_per_org = 0: must be between 1 and 1000000",
    );
}

#[test]
fn a_busy_port_suggests_port_zero() {
    let data = tempfile::tempdir().unwrap();
    let (_held, addr) = busy_port();
    let out = run_then(&["serve", "--bind", &addr, "--data-dir"], data.path());
    assert_fails_with(
        &out,
        &format!(
            "error: cannot listen on {addr}: address already in use; stop the process listening \
             there or choose another address, e.g. --bind 127.0.0.1:0 for any free port"
        ),
    );
}

/// Runs the binary as user `nobody`, for whom a root-owned directory is
/// not writable (the tests run as root, who may write anywhere).
fn as_nobody(args: &[&str], data_dir: &Path) -> Output {
    quiet(Command::new("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_catalytics"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// A root-owned directory that everyone may enter but only root may write.
fn read_only_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn an_unwritable_data_dir_says_permission_denied() {
    if !crate::common::is_root() || !crate::common::on_path("setpriv") {
        crate::common::skip_loudly("needs root and setpriv to run as another user");
        return;
    }
    let parent = read_only_dir();
    let missing = parent.path().join("data");
    let out = as_nobody(&["migrate"], &missing);
    assert_fails_with(
        &out,
        &format!(
            "error: cannot create data dir {}: permission denied",
            missing.display()
        ),
    );
    let out = as_nobody(
        &[
            "grant",
            "--org",
            "o",
            "--user",
            "u",
            "--role",
            "Co-Administrator",
        ],
        parent.path(),
    );
    assert_fails_with(
        &out,
        &format!(
            "error: data dir {} is not writable: permission denied",
            parent.path().display()
        ),
    );
}

#[test]
fn a_command_that_creates_the_data_dir_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new-data");
    let token = || {
        run_in(
            &[
                "token",
                "--org",
                "o",
                "--user",
                "u",
                "--email",
                "u@example.com",
            ],
            &dir,
        )
    };
    let first = token();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        stderr(&first),
        format!("created data dir {}\n", dir.display())
    );
    let again = token();
    assert!(again.status.success());
    assert_eq!(stderr(&again), "", "nothing to say the second time");
}

#[test]
fn help_shows_every_default() {
    let out = run(&["serve", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    let defaults = catalytics::config::Settings::default();
    for expected in [
        format!("[default: {}]", defaults.data_dir.display()),
        format!("[default: {}]", defaults.bind),
        format!("[default: {}]", defaults.limits.max_concurrent_downloads),
        "[default: text]".to_owned(),
        "[default: unlimited]".to_owned(),
        "[default: SQLite file in the data dir]".to_owned(),
    ] {
        assert!(help.contains(&expected), "{expected} missing from:\n{help}");
    }
}

#[test]
fn access_list_lines_up_and_speaks_json() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = run_in(args, data.path());
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "grant",
        "--org",
        "o1",
        "--user",
        "a-rather-long-user-id",
        "--role",
        "Co-Administrator",
    ]);
    run(&[
        "grant",
        "--org",
        "organization-2",
        "--user",
        "bob",
        "--permission",
        "View Analytics",
    ]);
    let table = run(&["access", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    // Every column starts at the same offset on every line.
    for column in ["USER", "KIND", "NAME"] {
        let at = lines[0].find(column).unwrap();
        for line in &lines[1..] {
            assert_ne!(line.as_bytes()[at], b' ', "{column} misaligned:\n{table}");
            assert_eq!(&line[at - 2..at], "  ", "{column} misaligned:\n{table}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&run(&["access", "list", "--format", "json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"org": "o1", "user": "a-rather-long-user-id", "kind": "role", "name": "Co-Administrator"},
            {"org": "organization-2", "user": "bob", "kind": "permission", "name": "View Analytics"},
        ])
    );
}

// ---- PostgreSQL start-up ----------------------------------------------------

#[test]
fn an_unknown_database_fails_at_once() {
    let Some(base) = crate::common::pg_base_url() else {
        return;
    };
    let name = format!("catalytics_missing_{:08x}", rand::random::<u32>());
    let url = crate::common::with_database(&base, &name);
    let started = Instant::now();
    let out = run(&["migrate", "--database-url", &url]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no retrying a database that does not exist"
    );
    let host = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    assert_fails_with(
        &out,
        &format!(
            "error: cannot open the store: store configuration: PostgreSQL at {host}/{name}: \
             database \"{name}\" does not exist"
        ),
    );
}

#[test]
fn an_unknown_role_fails_at_once() {
    let Some(base) = crate::common::pg_base_url() else {
        return;
    };
    let rest = base.split_once("://").unwrap().1;
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!("postgres://catalytics_nobody@{host_and_db}");
    let started = Instant::now();
    let out = run(&["migrate", "--database-url", &url]);
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with(": role \"catalytics_nobody\" does not exist\n"),
        "{err}"
    );
}

// ---- demo ----------------------------------------------------------------

#[test]
fn demo_refuses_a_data_dir_with_anything_in_it() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("keep.txt"), "mine").unwrap();
    let out = run_then(
        &["demo", "--bind", "127.0.0.1:0", "--data-dir"],
        data.path(),
    );
    assert_fails_with(
        &out,
        &format!(
            "error: demo needs a new or empty data dir, and {} is not empty; \
             leave out --data-dir (and CATALYTICS_DATA_DIR) for a fresh one",
            data.path().display()
        ),
    );
    let names: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec!["keep.txt"], "nothing added");
}

#[test]
fn demo_on_a_busy_port_makes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_held, addr) = busy_port();
    let given = tmp.path().join("demo-data");
    let out = run_in(&["demo", "--bind", &addr], &given);
    assert_fails_with(
        &out,
        &format!(
            "error: cannot listen on {addr}: address already in use; stop the process listening \
             there or choose another address, e.g. --bind 127.0.0.1:0 for any free port"
        ),
    );
    assert!(!given.exists(), "no data dir made");
    // Without --data-dir the demo would use the temp dir: nothing left there.
    let out = catalytics()
        .args(["demo", "--bind", &addr])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn demo_removes_its_data_dir_when_it_fails_later() {
    let Some(base) = crate::common::pg_base_url() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let url = crate::common::with_database(&base, "catalytics_missing_demo_db");
    let out = catalytics()
        .args(["demo", "--bind", "127.0.0.1:0", "--database-url", &url])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let made = err
        .lines()
        .find_map(|l| l.strip_prefix("created data dir "))
        .unwrap_or_else(|| panic!("says which dir it made: {err}"));
    assert!(
        err.contains(&format!("removed demo data in {made}")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temp dir left behind: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_a_postgres_database_that_holds_events() {
    PgDatabase::scoped(|db| async move { demo_refusal(&db.url).await }).await;
}

async fn demo_refusal(url: &str) {
    let store = catalytics::store::open(Some(url), Path::new("unused"))
        .await
        .unwrap();
    store
        .ingest(vec![crate::helpers::event(
            "org-x",
            "2024-01-01T00:00:00.000Z",
        )])
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = catalytics()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--events",
            "1000",
            "--database-url",
            url,
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    let refusal = format!(
        "error: demo needs an empty database, and {} already holds events; leave out \
         --database-url (and CATALYTICS_DATABASE_URL) to use SQLite in a fresh data dir",
        catalytics::config::redact_url(url)
    );
    assert!(!out.status.success());
    assert_eq!(err.lines().last(), Some(refusal.as_str()), "{err}");
    // Nothing written: the one event is still alone, no grant was added.
    let window = DateRange::new(
        Timestamp::from_millis(0),
        Timestamp::from_millis(i64::MAX / 2),
    )
    .unwrap();
    let mut stored = 0;
    let mut rows = store
        .export(&OrgId::parse("org-x").unwrap(), window)
        .await
        .unwrap()
        .rows;
    while let Some(batch) = rows.next().await {
        stored += batch.unwrap().len();
    }
    assert_eq!(stored, 1);
    assert!(store.list_access(None).await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temp data dir removed"
    );
}

#[test]
fn login_link_prints_one_link_with_a_one_time_code() {
    let data = tempfile::tempdir().unwrap();
    let out = run_in(
        &[
            "login-link",
            "--org",
            "org-cli",
            "--user",
            "alice",
            "--email",
            "alice@example.com",
            "--ttl",
            "10m",
            "--session-ttl",
            "2h",
            "--url",
            "https://analytics.example.com/",
        ],
        data.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (line, rest) = stdout.split_once('\n').unwrap();
    assert_eq!(rest, "", "one line: the link");
    let code = line
        .strip_prefix("https://analytics.example.com/#code=")
        .unwrap_or_else(|| panic!("the code travels in the fragment: {line}"));
    let issuer = catalytics::auth::local::LocalIssuer::load_or_create(data.path())
        .unwrap()
        .0;
    let before = Timestamp::now().millis();
    let verified = issuer.verify_login_code(code).unwrap();
    assert_eq!(verified.org.as_str(), "org-cli");
    assert_eq!(verified.user.as_str(), "alice");
    assert_eq!(verified.email.as_deref(), Some("alice@example.com"));
    assert_eq!(verified.session_ttl, Duration::from_secs(2 * 3600));
    let left = verified.valid_until.millis() - before;
    assert!(
        (598_000..=661_000).contains(&left),
        "10 min + leeway: {left}"
    );

    // Defaults: 15 minutes to open it, an 8-hour sign-in, the bind address.
    let out = run_in(&["login-link", "--org", "o", "--user", "u"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let bind = catalytics::config::Settings::default().bind;
    let code = line
        .trim_end()
        .strip_prefix(&format!("http://{bind}/#code="))
        .unwrap_or_else(|| panic!("{line}"));
    let verified = issuer.verify_login_code(code).unwrap();
    assert_eq!(verified.email, None);
    assert_eq!(verified.session_ttl, Duration::from_secs(8 * 3600));
    let left = verified.valid_until.millis() - Timestamp::now().millis();
    assert!(
        (898_000..=961_000).contains(&left),
        "15 min + leeway: {left}"
    );

    let help = String::from_utf8(run(&["login-link", "--help"]).stdout).unwrap();
    for expected in ["[default: 15m]", "[default: 8h]", "signs in once"] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let zero = run_in(
        &["login-link", "--org", "o", "--user", "u", "--ttl", "0s"],
        data.path(),
    );
    assert!(!zero.status.success());
    assert!(
        stderr(&zero).contains("must be at least one second"),
        "{}",
        stderr(&zero)
    );
}
