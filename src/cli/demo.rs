//! `catalytics demo`: a fresh data dir with a realistic organization, a
//! token for its administrator, a curl command that works as pasted, then
//! the service itself.

use super::DemoArgs;
use crate::auth::local::{LocalIssuer, TokenRequest};
use crate::auth::login_code::LoginCodeRequest;
use crate::config::Settings;
use crate::demo::DemoLibrary;
use crate::domain::{AccessGrant, Grant, Role, Timestamp};
use crate::http::DOWNLOAD_PATH;
use crate::ingest::{parse_event, to_wire};
use crate::startup::{shutdown_signal, Application};
use crate::store::IngestOutcome;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// Runs the demo. It never writes into existing data: a data dir given on
/// the command line must be new or empty (otherwise a new directory is made
/// under the system temp dir), and a database that already holds events is
/// refused. The port is bound before anything is made, and whatever the
/// demo made is removed again when it fails before serving.
pub async fn run(
    mut settings: Settings,
    args: &DemoArgs,
    data_dir_given: bool,
) -> anyhow::Result<()> {
    if data_dir_given {
        ensure_new_or_empty(&settings.data_dir)?;
    } else {
        settings.data_dir = std::env::temp_dir().join(format!(
            "catalytics-demo-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
    }
    let listener = crate::startup::bind(settings.bind).await?;
    let made = Made::data_dir(&settings.data_dir)?;
    let (app, shutdown) = prepare(settings, args, listener).await?;
    made.keep();
    app.run_until(shutdown).await?;
    Ok(())
}

/// Refuses a data dir that holds anything.
fn ensure_new_or_empty(dir: &Path) -> anyhow::Result<()> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("cannot read data dir {}", dir.display())),
    };
    anyhow::ensure!(
        empty,
        "demo needs a new or empty data dir, and {} is not empty; \
         leave out --data-dir (and CATALYTICS_DATA_DIR) for a fresh one",
        dir.display()
    );
    Ok(())
}

/// What the demo made on disk, removed on drop unless kept.
struct Made {
    dir: PathBuf,
    /// The directory itself was created (else only its contents are ours).
    created: bool,
    keep: bool,
}

impl Made {
    fn data_dir(dir: &Path) -> anyhow::Result<Self> {
        let created = super::prepare_data_dir(dir, super::DataDirAccess::Write)?;
        Ok(Self {
            dir: dir.to_owned(),
            created,
            keep: false,
        })
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let removed = if self.created {
            std::fs::remove_dir_all(&self.dir)
        } else {
            std::fs::read_dir(&self.dir).and_then(|entries| {
                entries.flatten().try_for_each(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    }
                })
            })
        };
        match removed {
            Ok(()) => eprintln!("removed demo data in {}", self.dir.display()),
            Err(e) => eprintln!("could not remove demo data in {}: {e}", self.dir.display()),
        }
    }
}

/// Everything between binding and serving: store, data, grant, token, the
/// printed curl command. Returns the application and its shutdown signal,
/// installed just before the address is printed.
async fn prepare(
    settings: Settings,
    args: &DemoArgs,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<(
    Application,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let store = super::open_store(&settings).await?;
    if settings.database_url.is_some() && store.holds_events().await? {
        anyhow::bail!(
            "demo needs an empty database, and {} already holds events; \
             leave out --database-url (and CATALYTICS_DATABASE_URL) to use SQLite in a fresh data dir",
            crate::config::redact_url(settings.database_url.as_deref().unwrap_or_default())
        );
    }
    let library = DemoLibrary::generate(args.seed, 200, 50);
    let now = Timestamp::now();
    let started = Instant::now();
    let mut total = IngestOutcome::default();
    for batch in library.events(args.seed, args.events, DAYS, now) {
        // Through the wire form and the ingestion parser, like any reporter.
        let events = batch
            .iter()
            .enumerate()
            .map(|(i, e)| parse_event(&to_wire(e), &format!("events[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|details| anyhow::anyhow!("generated an invalid event: {details:?}"))?;
        total += store.ingest(events).await?;
    }
    eprintln!(
        "generated {} events ({} components, {} users) in {:.1}s",
        total.accepted,
        library.components.len(),
        library.users.len(),
        started.elapsed().as_secs_f64()
    );

    let admin = &library.users[0];
    store
        .grant(&AccessGrant {
            org: library.org.clone(),
            user: admin.id.clone(),
            grant: Grant::Role(Role::AccountAdministrator),
        })
        .await?;
    let (issuer, _) = LocalIssuer::load_or_create(&settings.data_dir)?;
    let token = issuer.mint(&TokenRequest {
        org: Some(library.org.to_string()),
        user: admin.id.to_string(),
        email: Some(admin.email.to_string()),
        scope: "itwin-platform analytics:write".into(),
        ttl: Duration::from_secs(24 * 3600),
    })?;

    let app = Application::build_on(&settings, store, listener).await?;
    let addr = app.local_addr()?;
    let midnight = now.millis() - now.millis().rem_euclid(DAY_MS);
    let start = Timestamp::from_millis(midnight - DAYS * DAY_MS);
    let end = Timestamp::from_millis(midnight + DAY_MS);
    let shutdown = shutdown_signal();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr}")?;
    writeln!(
        out,
        "# Download the last {DAYS} days of the demo organization's usage (token valid 24h):"
    )?;
    writeln!(
        out,
        "curl -fsS -H 'Authorization: Bearer {token}' -H 'Accept: application/vnd.bentley.itwin-platform.v1+json' \
         -o catalytics-demo.csv 'http://{addr}{DOWNLOAD_PATH}?startDate={start}&endDate={end}' && wc -l catalytics-demo.csv"
    )?;
    let link = super::login_link::link(
        &issuer,
        &super::login_link::LinkRequest {
            base_url: &super::login_link::base_url(addr),
            code: LoginCodeRequest {
                org: library.org.clone(),
                user: admin.id.clone(),
                email: Some(admin.email.to_string()),
                link_ttl: Duration::from_secs(24 * 3600),
                session_ttl: Duration::from_secs(8 * 3600),
            },
        },
    )?;
    writeln!(
        out,
        "# Or open the admin page, signed in as the same administrator (one-time link, valid 24h; the sign-in lasts 8h):"
    )?;
    writeln!(out, "{link}")?;
    out.flush()?;
    Ok((app, shutdown))
}
