//! Shared helpers for the store tests: a fresh store per test on either
//! backend, and terse builders for events.
//!
//! PostgreSQL tests need `CATALYTICS_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`): each test creates its own
//! database `catalytics_test_<random>` there and drops it afterwards. When
//! the variable is unset each says on the terminal that it was skipped, and
//! the test binary ends with a count of them — unless
//! `CATALYTICS_TEST_REQUIRE_ALL` is set (as CI does), which makes every
//! skip a failure.

#![allow(dead_code, unused_macros)]

use catalytics::domain::{
    Catalog, Component, DateRange, Event, EventId, EventKind, Name, OpaqueId, OrgId, Timestamp,
    User, UserId,
};
use catalytics::store::{ExportRow, Store};
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use uuid::Uuid;

/// The variable that points the PostgreSQL tests at a server.
pub const PG_URL_VAR: &str = "CATALYTICS_TEST_DATABASE_URL";

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// Runs `body` against a fresh SQLite store in a temporary directory.
pub async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = catalytics::store::open(None, dir.path())
        .await
        .expect("open SQLite store");
    body(store).await;
}

/// Runs `body` against a fresh PostgreSQL database, dropped afterwards even
/// when `body` panics; skips (loudly) without a test server.
pub async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()>,
{
    PgDatabase::scoped(|db| async move {
        let store = catalytics::store::open(Some(&db.url), std::path::Path::new("unused"))
            .await
            .expect("open PostgreSQL store");
        body(store).await;
    })
    .await;
}

/// The test server's URL, or `None` after reporting the calling test as
/// skipped.
pub fn pg_base_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            report_skip();
            None
        }
    }
}

/// How many PostgreSQL tests of this test binary were skipped.
static SKIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts the calling PostgreSQL test as skipped and says so (see
/// [`skip_loudly`]); the count is printed when the test binary exits,
/// after the harness's own summary, which counts these tests as passed.
fn report_skip() {
    skip_loudly(&format!(
        "{PG_URL_VAR} is not set, so it did not run against PostgreSQL"
    ));
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function without captures.
        unsafe {
            libc::atexit(print_skip_summary);
        }
    });
    SKIPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Whether an executable named `tool` is on `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The variable that turns every skip into a failure: CI sets it, since it
/// installs and starts everything the tests need.
pub const REQUIRE_ALL_VAR: &str = "CATALYTICS_TEST_REQUIRE_ALL";

/// Says on the terminal, past the harness's capture, that the calling test
/// did not run and why (for tests that need a server, tool or privilege the
/// machine may lack). With [`REQUIRE_ALL_VAR`] set the test fails instead.
/// Written straight to the process's stderr in one write, so that it shows
/// under a plain `cargo test` and lines of parallel tests do not interleave.
pub fn skip_loudly(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if std::env::var_os(REQUIRE_ALL_VAR).is_some_and(|v| !v.is_empty()) {
        panic!("{test} would be skipped, but {REQUIRE_ALL_VAR} is set: {why}");
    }
    let line = format!("*** SKIPPED {test}: {why} ***\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether the tests run as root (needed for tmpfs mounts and setpriv).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

extern "C" fn print_skip_summary() {
    let n = SKIPPED.load(std::sync::atomic::Ordering::Relaxed);
    let line = format!(
        "\n*** SKIPPED: {n} PostgreSQL tests of this binary did not run (reported as passed above); \
         set {PG_URL_VAR}=postgres://USER@HOST:5432/postgres to run them ***\n\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A throw-away database on the test server.
#[derive(Clone)]
pub struct PgDatabase {
    /// The server URL the database was created through.
    pub base: String,
    /// The database's name.
    pub name: String,
    /// A URL that opens it.
    pub url: String,
}

impl PgDatabase {
    /// Creates `catalytics_test_<random>`, or `None` without a test server.
    pub async fn create() -> Option<Self> {
        let base = pg_base_url()?;
        let name = format!("catalytics_test_{:016x}", rand::random::<u64>());
        // A linguistic default collation (as production databases often
        // have) so that any ordering that forgets COLLATE "C" shows up;
        // plain CREATE DATABASE where the server has no ICU.
        let client = admin(&base).await;
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if client.batch_execute(&icu).await.is_err() {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
        }
        let url = with_database(&base, &name);
        Some(Self { base, name, url })
    }

    /// Runs `body` on a fresh database, dropped afterwards even when `body`
    /// panics; skips loudly without a test server.
    pub async fn scoped<F, Fut>(body: F)
    where
        F: FnOnce(PgDatabase) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Some(db) = Self::create().await else {
            return;
        };
        let outcome = AssertUnwindSafe(body(db.clone())).catch_unwind().await;
        db.drop_database().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_database(&self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.base).await.batch_execute(&sql).await {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A plain connection to the server for administration.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the PostgreSQL test server");
    tokio::spawn(conn);
    client
}

/// `url` with its database path replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    format!("{}/{db}{query}", &head[..host_end])
}

/// Defines each listed `async fn(DynStore)` as a test on both backends.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_postgres(super::$name).await;
                }
            )*
        }
    };
}

// ---- builders --------------------------------------------------------------

/// A name (test literals are valid).
pub fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

/// An opaque id.
pub fn oid(s: &str) -> OpaqueId {
    OpaqueId::parse(s).expect("valid id")
}

/// An organization id.
pub fn org(s: &str) -> OrgId {
    OrgId::parse(s).expect("valid org")
}

/// A user id.
pub fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("valid user")
}

/// A catalog.
pub fn catalog(id: &str, display: &str) -> Catalog {
    Catalog {
        id: oid(id),
        display_name: name(display),
    }
}

/// A minimal event: a View of component `c1` ("Component 1", no catalogs,
/// category or manufacturer) by user `u1`, with a fresh random id.
pub fn event(org_id: &str, ts: i64) -> Event {
    Event {
        id: EventId::from_uuid(Uuid::new_v4()),
        organization: org(org_id),
        timestamp: Timestamp::from_millis(ts),
        kind: EventKind::View,
        component: Component {
            id: oid("c1"),
            display_name: name("Component 1"),
            catalogs: vec![],
            category: None,
            manufacturer: None,
        },
        user: User {
            id: uid("u1"),
            email: name("u1@example.com"),
        },
        application: None,
        project_id: None,
    }
}

/// An event with a chosen id.
pub fn event_with_id(org_id: &str, ts: i64, id: u128) -> Event {
    Event {
        id: EventId::from_uuid(Uuid::from_u128(id)),
        ..event(org_id, ts)
    }
}

/// `[start, end)` in milliseconds.
pub fn range(start: i64, end: i64) -> DateRange {
    DateRange::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).expect("range")
}

/// A window covering every timestamp the tests use.
pub fn everything() -> DateRange {
    range(0, 4_102_444_800_000)
}

/// The CSV bytes (header and rows) a download of `window` would carry;
/// panics on any store error.
pub async fn export_csv(store: &DynStore, org_id: &str, window: DateRange) -> Vec<u8> {
    let export = store.export(&org(org_id), window).await.expect("export");
    let mut writer = catalytics::export::CsvWriter::new(export.dictionary);
    let mut out = writer.header().to_vec();
    let mut stream = export.rows;
    while let Some(batch) = stream.next().await {
        out.extend_from_slice(&writer.rows(&batch.expect("batch")).expect("names"));
    }
    out
}

/// Exports the whole window and collects it; panics on any store error.
pub async fn export_all(store: &DynStore, org_id: &str, window: DateRange) -> Vec<ExportRow> {
    let export = store
        .export(&org(org_id), window)
        .await
        .expect("export starts");
    let mut stream = export.rows;
    let mut rows = Vec::new();
    while let Some(batch) = stream.next().await {
        for row in batch.expect("export batch") {
            rows.push(export.dictionary.resolve(&row).expect("row resolves"));
        }
    }
    rows
}
