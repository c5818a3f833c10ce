//! `catalytics demo`: a fresh data dir with a realistic organization, a
//! token for its administrator, a curl command that works as pasted, then
//! the service itself.

use super::DemoArgs;
use crate::auth::local::{LocalIssuer, TokenRequest};
use crate::config::Settings;
use crate::demo::DemoLibrary;
use crate::domain::{AccessGrant, Grant, Role, Timestamp};
use crate::http::DOWNLOAD_PATH;
use crate::ingest::{parse_event, to_wire};
use crate::startup::{shutdown_signal, Application};
use crate::store::IngestOutcome;
use anyhow::Context;
use std::io::Write;
use std::time::{Duration, Instant};

const DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// Runs the demo. A data dir given on the command line must be new or
/// empty (the demo never mixes into real data); otherwise a new directory
/// is made under the system temp dir.
pub async fn run(
    mut settings: Settings,
    args: &DemoArgs,
    data_dir_given: bool,
) -> anyhow::Result<()> {
    if data_dir_given {
        let dir = &settings.data_dir;
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(_) => true,
        };
        anyhow::ensure!(
            empty,
            "demo needs a new or empty data dir, and {} is not empty",
            dir.display()
        );
    } else {
        settings.data_dir = std::env::temp_dir().join(format!(
            "catalytics-demo-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
    }
    if let Some(bind) = args.bind {
        settings.bind = bind;
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    eprintln!("demo data dir: {}", settings.data_dir.display());

    let store = crate::store::open(settings.database_url.as_deref(), &settings.data_dir).await?;
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
        org: library.org.to_string(),
        user: admin.id.to_string(),
        email: admin.email.to_string(),
        scope: "itwin-platform analytics:write".into(),
        ttl: Duration::from_secs(24 * 3600),
    })?;

    let app = Application::build_with_store(&settings, store).await?;
    let shutdown = shutdown_signal();
    let addr = app.local_addr()?;
    let midnight = now.millis() - now.millis().rem_euclid(DAY_MS);
    let start = Timestamp::from_millis(midnight - DAYS * DAY_MS);
    let end = Timestamp::from_millis(midnight + DAY_MS);
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
        &settings,
        &super::login_link::LinkRequest {
            base_url: &super::login_link::base_url(addr),
            org: library.org.as_str(),
            user: admin.id.as_str(),
            email: admin.email.as_str(),
            ttl: Duration::from_secs(24 * 3600),
        },
    )?;
    writeln!(
        out,
        "# Or open the admin page, signed in as the same administrator (link valid 24h):"
    )?;
    writeln!(out, "{link}")?;
    out.flush()?;
    drop(out);
    app.run_until(shutdown).await?;
    Ok(())
}
