//! Test harness: `spawn_app` runs the real application on port 0 with a
//! fresh store; builders make events and tokens.

use catalytics::auth::local::LocalIssuer;
use catalytics::config::Settings;
use catalytics::domain::{
    AccessGrant, Catalog, Component, Event, EventId, EventKind, Grant, Name, OpaqueId, OrgId,
    Permission, Role, Timestamp, User, UserId,
};
use catalytics::startup::Application;
use catalytics::store::{self, Store};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tempfile::TempDir;

pub const DOWNLOAD: &str = "/library/components/analytics/download";

/// The store a test's app runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// A fresh database, made and dropped by [`on_postgres`].
    Postgres(String),
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs a test body with SQLite apps.
pub async fn on_sqlite(body: impl std::future::Future<Output = ()>) {
    BACKEND.scope(Backend::Sqlite, body).await
}

/// Runs a test body with PostgreSQL apps on a fresh database, dropped
/// afterwards even when the body panics; skips loudly without a server.
pub async fn on_postgres(body: impl std::future::Future<Output = ()>) {
    crate::common::PgDatabase::scoped(|db| BACKEND.scope(Backend::Postgres(db.url), body)).await
}

/// The PostgreSQL database of the running test, `None` on SQLite.
pub fn backend_database_url() -> Option<String> {
    match BACKEND.try_with(Backend::clone) {
        Ok(Backend::Postgres(url)) => Some(url),
        _ => None,
    }
}

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub data_dir: TempDir,
    /// The PostgreSQL database, `None` on SQLite (the file in `data_dir`).
    pub database_url: Option<String>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Wraps the real store, e.g. to inject faults.
pub type StoreWrapper = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store>>;

/// How to build an app: settings tweaks and an optional store wrapper.
pub struct AppOptions {
    pub settings: Box<dyn FnOnce(&mut Settings)>,
    pub wrap_store: StoreWrapper,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            settings: Box::new(|_| {}),
            wrap_store: Box::new(|s| s),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_owned(),
        ..Settings::default()
    };
    settings.database_url = backend_database_url();
    (options.settings)(&mut settings);
    let inner = store::open(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .unwrap();
    let store = (options.wrap_store)(Arc::clone(&inner));
    let app = Application::build_with_store(&settings, store)
        .await
        .unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        store: inner,
        data_dir,
        database_url: settings.database_url.clone(),
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// The local issuer of this app's data dir.
    pub fn issuer(&self) -> LocalIssuer {
        LocalIssuer::load_or_create(self.data_dir.path()).unwrap().0
    }

    /// A valid local token for `user` in `org` with `scope`.
    pub fn token(&self, org: &str, user: &str, scope: &str) -> String {
        self.issuer().sign(&claims(org, user, scope)).unwrap()
    }

    /// A local token with arbitrary claims.
    pub fn token_with(&self, claims: &Value) -> String {
        self.issuer().sign(claims).unwrap()
    }

    pub async fn get_download(
        &self,
        authorization: Option<&str>,
        query: &str,
    ) -> reqwest::Response {
        let mut req = self.client.get(self.url(&format!("{DOWNLOAD}?{query}")));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        req.send().await.unwrap()
    }

    /// Grants `Account Administrator` to `user` in `org`.
    pub async fn make_admin(&self, org: &str, user: &str) {
        self.grant(org, user, Grant::Role(Role::AccountAdministrator))
            .await;
    }

    pub async fn grant(&self, org: &str, user: &str, grant: Grant) {
        let g = AccessGrant {
            org: OrgId::parse(org).unwrap(),
            user: UserId::parse(user).unwrap(),
            grant,
        };
        self.store.grant(&g).await.unwrap();
    }

    /// An administrator's bearer header for `org`.
    pub async fn admin_bearer(&self, org: &str) -> String {
        let user = format!("admin-of-{org}");
        self.make_admin(org, &user).await;
        format!("Bearer {}", self.token(org, &user, "itwin-platform"))
    }

    /// Runs the real binary against this app's store (the app keeps
    /// running), e.g. `app.cli(&["erase", "--org", "o", "--user", "u"])`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = catalytics_bin();
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path());
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
        command.output().unwrap()
    }

    pub async fn ingest(&self, events: Vec<Event>) {
        self.store.ingest(events).await.unwrap();
    }
}

pub fn view_analytics() -> Grant {
    Grant::Permission(Permission::ViewAnalytics)
}

/// Standard claims for a local token valid for an hour.
pub fn claims(org: &str, user: &str, scope: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": catalytics::auth::local::LOCAL_ISSUER,
        "sub": user,
        "email": format!("{user}@example.com"),
        "org": org,
        "scope": scope,
        "iat": now,
        "exp": now + 3600,
    })
}

/// Claims of a multi-organization service token: no organization claim.
pub fn service_claims(user: &str, scope: &str) -> Value {
    let mut c = claims("unused", user, scope);
    c.as_object_mut().unwrap().remove("org");
    c
}

pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A whole error envelope, for exact comparisons.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

pub fn insufficient_permissions() -> Value {
    error_body(
        "InsufficientPermissions",
        "The user has insufficient permissions for the requested operation.",
    )
}

pub async fn json_of(response: reqwest::Response) -> Value {
    let ct = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/json");
    response.json().await.unwrap()
}

/// Asserts a whole 401 answer: its `WWW-Authenticate` challenge and its
/// error body.
pub async fn assert_unauthorized(
    response: reqwest::Response,
    challenge: &str,
    code: &str,
    message: &str,
    case: &str,
) {
    assert_eq!(response.status(), 401, "{case}");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some(challenge),
        "{case}"
    );
    assert_eq!(json_of(response).await, error_body(code, message), "{case}");
}

/// Asserts a 401 InvalidToken with its WWW-Authenticate header.
pub async fn assert_invalid_token(response: reqwest::Response, case: &str) {
    assert_unauthorized(
        response,
        "Bearer error=\"invalid_token\"",
        "InvalidToken",
        "Access token is invalid, expired or lacks the required scope.",
        case,
    )
    .await;
}

/// A full query string for a window.
pub fn window(start: &str, end: &str) -> String {
    format!("startDate={start}&endDate={end}")
}

pub const WIDE: (&str, &str) = ("2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z");

pub fn wide() -> String {
    window(WIDE.0, WIDE.1)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn opaque(s: &str) -> OpaqueId {
    OpaqueId::parse(s).unwrap()
}

/// A valid event with sensible defaults; tests change what they look at.
pub fn event(org: &str, ts: &str) -> Event {
    Event {
        id: EventId::from_uuid(uuid::Uuid::new_v4()),
        organization: OrgId::parse(org).unwrap(),
        timestamp: Timestamp::parse(ts).unwrap(),
        kind: EventKind::View,
        component: Component {
            id: opaque("component-1"),
            display_name: name("Gate Valve DN 100"),
            catalogs: vec![Catalog {
                id: opaque("cat-plant"),
                display_name: name("Plant Equipment"),
            }],
            category: Some(name("Valves")),
            manufacturer: Some(name("Velan")),
        },
        user: User {
            id: UserId::parse("user-1").unwrap(),
            email: name("user-1@example.com"),
        },
        application: Some(name("OpenPlant Modeler 10.11")),
        project_id: Some(opaque("project-1")),
    }
}

pub fn with_catalogs(mut e: Event, catalogs: &[(&str, &str)]) -> Event {
    e.component.catalogs = catalogs
        .iter()
        .map(|(id, n)| Catalog {
            id: opaque(id),
            display_name: name(n),
        })
        .collect();
    e
}

/// Reads a CSV body with a real CSV reader: header and records.
pub fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

pub const HEADER: [&str; 11] = [
    "Timestamp",
    "Event",
    "Component Id",
    "Component Name",
    "Catalogs",
    "Category",
    "Manufacturer",
    "Application",
    "Project Id",
    "User Id",
    "User Email",
];

/// A port that was free a moment ago, for a server another process starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, as a command to add arguments to.
pub fn catalytics_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_catalytics"))
}

/// A `serve` child process, killed when dropped (also when a test fails).
pub struct Server {
    pub child: std::process::Child,
    /// The address it printed.
    pub addr: String,
}

impl Server {
    /// [`spawn_serve`], killed on drop.
    pub fn spawn(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        let (child, addr) = spawn_serve(data_dir, extra);
        Self { child, addr }
    }

    /// [`start_serve`], killed on drop.
    pub fn start(
        command: std::process::Command,
        data_dir: &std::path::Path,
        extra: &[&str],
        stderr: std::process::Stdio,
    ) -> Self {
        let (child, addr) = start_serve(command, data_dir, extra, stderr);
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary's `serve` on port 0 with `extra` flags and returns
/// the child and the address it printed on its first line.
pub fn spawn_serve(data_dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    start_serve(
        catalytics_bin(),
        data_dir,
        extra,
        std::process::Stdio::null(),
    )
}

/// As [`spawn_serve`], with the program to run (the binary, or a wrapper
/// such as `setpriv … catalytics`) and where its log (stderr) goes.
pub fn start_serve(
    mut command: std::process::Command,
    data_dir: &std::path::Path,
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_owned();
    assert!(
        addr.parse::<SocketAddr>().is_ok(),
        "serve prints the bound address on its own line: {addr:?}"
    );
    (child, addr)
}

/// Posts `events` as one JSON batch to the service at `addr`.
pub async fn post_events(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    events: &[Value],
) -> reqwest::Response {
    client
        .post(format!("http://{addr}/library/components/analytics/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap()
}
