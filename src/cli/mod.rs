//! The command line: one binary, one subcommand per job. Every command
//! shares `--data-dir`, `--database-url`, `--config` and `--log-format`,
//! prints errors as one line ([`one_line`]) and exits non-zero on failure.
//!
//! Settings are resolved in one place, [`resolve_settings`]: defaults, the
//! config file, `CATALYTICS_*` variables and flags, then one validation, so
//! an invalid value fails at start-up with its valid range whatever layer
//! it came from. `--help` shows every default (the help texts spell them;
//! a test keeps them equal to the values in `config`).

mod access;
mod data_dir;
mod demo;
mod import;
mod login_link;
mod privacy;
mod serve;
mod token;

pub use data_dir::{prepare as prepare_data_dir, Access as DataDirAccess};

use crate::config::{parse_bind, Settings};
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// catalytics — component library usage analytics, downloadable as CSV.
#[derive(Debug, Parser)]
#[command(name = "catalytics", version, about)]
pub struct Cli {
    /// Options every command shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory (SQLite file, local signing key); created when missing
    /// [default: ./catalytics-data]
    #[arg(long, global = true, env = "CATALYTICS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` (or `postgresql://…`) selects PostgreSQL, `sqlite://PATH`
    /// a SQLite file [default: SQLite file in the data dir]
    #[arg(
        long,
        global = true,
        env = "CATALYTICS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Optional TOML settings file (see docs/operations.md) [default: none]
    #[arg(long, global = true, env = "CATALYTICS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `text` (colours only on a terminal) or `json`
    /// (one object per line, for collectors).
    #[arg(
        long,
        global = true,
        env = "CATALYTICS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Fresh demo data, a ready-to-paste curl command, then serve.
    Demo(DemoArgs),
    /// Print a local-mode access token.
    Token(token::TokenArgs),
    /// Print a sign-in link for the admin page (local mode).
    LoginLink(login_link::LoginLinkArgs),
    /// Give a user a role or permission in an organization.
    Grant(access::GrantArgs),
    /// Take a role or permission away.
    Revoke(access::GrantArgs),
    /// Inspect access grants.
    Access {
        /// What to do with grants.
        #[command(subcommand)]
        command: access::AccessCommand,
    },
    /// Load NDJSON events (one per line) straight into the store.
    Import(import::ImportArgs),
    /// Apply schema migrations and exit.
    Migrate,
    /// Erase a user: their events stay countable under a pseudonym.
    Erase(privacy::EraseArgs),
    /// Inspect the audit trail.
    Audit {
        /// What to do with the trail.
        #[command(subcommand)]
        command: privacy::AuditCommand,
    },
}

/// Flags of `serve` that override settings.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Listen address, an IP address and a port (port 0 picks a free one;
    /// the bound address is printed) [default: 127.0.0.1:8080]
    #[arg(long, env = "CATALYTICS_BIND", value_name = "ADDR", value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
    /// The URL clients reach the service at, published in local mode's
    /// discovery document [default: http://<bound address>]
    #[arg(long, env = "CATALYTICS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// External token issuer URL (selects issuer mode) [default: none: local
    /// mode, tokens from `catalytics token`]
    #[arg(long, env = "CATALYTICS_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// The issuer's JWKS URL [default: found by OpenID discovery]
    #[arg(long, env = "CATALYTICS_JWKS_URI", value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Required token audience [default: none: `aud` not checked]
    #[arg(long, env = "CATALYTICS_AUDIENCE", value_name = "AUD")]
    pub audience: Option<String>,
    /// Downloads allowed to stream at once, 1 to 10000 (more wait up to
    /// `download_queue_wait`, then get 429) [default: 64]
    #[arg(long, env = "CATALYTICS_MAX_CONCURRENT_DOWNLOADS", value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// Downloads one organization may start per minute, 1 to 1000000
    /// [default: unlimited]
    #[arg(
        long,
        env = "CATALYTICS_DOWNLOADS_PER_MINUTE_PER_ORG",
        value_name = "N"
    )]
    pub downloads_per_minute_per_org: Option<u32>,
    /// PostgreSQL connections per process (downloads use all but four).
    #[arg(long, env = "CATALYTICS_DATABASE_POOL_SIZE", value_name = "N")]
    pub database_pool_size: Option<usize>,
    /// Delete events older than this many days (default: keep everything).
    #[arg(long, env = "CATALYTICS_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<std::num::NonZeroU32>,
    /// Delete audit records older than this many days (default 400).
    #[arg(long, env = "CATALYTICS_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<std::num::NonZeroU32>,
}

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Listen address, an IP address and a port (port 0 picks a free one)
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "CATALYTICS_BIND", value_name = "ADDR", value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
    /// Number of events to generate.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Random seed, for reproducible data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl GlobalArgs {
    /// Settings from the config file, with these flags (and their env
    /// variables) laid over it.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            settings.data_dir = dir.clone();
        }
        if let Some(url) = self.database_url.as_ref().filter(|u| !u.is_empty()) {
            settings.database_url = Some(url.clone());
        }
        Ok(settings)
    }
}

impl ServeArgs {
    /// Lays the flags over `settings`.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(bind) = self.bind {
            settings.bind = bind;
        }
        if let Some(size) = self.database_pool_size {
            settings.database_pool_size = size;
        }
        if let Some(url) = &self.public_url {
            settings.public_url = Some(url.clone());
        }
        if let Some(issuer) = &self.issuer {
            settings.auth.issuer = Some(issuer.clone());
        }
        if let Some(uri) = &self.jwks_uri {
            settings.auth.jwks_uri = Some(uri.clone());
        }
        if let Some(aud) = &self.audience {
            settings.auth.audience = Some(aud.clone());
        }
        if let Some(n) = self.max_concurrent_downloads {
            settings.limits.max_concurrent_downloads = n;
        }
        if let Some(n) = self.downloads_per_minute_per_org {
            settings.limits.downloads_per_minute_per_org = Some(n);
        }
        if let Some(days) = self.retention_days {
            settings.retention.days = Some(days);
        }
        if let Some(days) = self.audit_retention_days {
            settings.retention.audit_days = Some(days);
        }
    }
}

/// The settings a command runs with: defaults, config file, environment
/// and flags (a flag wins over its variable, both over the file), checked
/// once. The only place layers are combined.
pub fn resolve_settings(global: &GlobalArgs, command: &Command) -> anyhow::Result<Settings> {
    let mut settings = global.settings()?;
    match command {
        Command::Serve(args) => args.apply(&mut settings),
        Command::Demo(args) => {
            if let Some(bind) = args.bind {
                settings.bind = bind;
            }
        }
        _ => {}
    }
    settings.validate()?;
    Ok(settings)
}

/// Whether `command` keeps anything in the data dir with these settings:
/// the SQLite file (no database URL) or the local signing key.
fn uses_data_dir(settings: &Settings, command: &Command) -> bool {
    let sqlite_in_dir = settings.database_url.as_deref().unwrap_or("").is_empty();
    let local_mode = settings.auth.issuer.is_none();
    match command {
        // The demo makes (and checks) its own data dir.
        Command::Demo(_) => false,
        Command::Serve(_) => sqlite_in_dir || local_mode,
        Command::Token(_) => local_mode,
        _ => sqlite_in_dir,
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = resolve_settings(&cli.global, &cli.command)?;
    if uses_data_dir(&settings, &cli.command) {
        let access = match cli.command {
            Command::Serve(_) => data_dir::Access::WriteWhenPossible,
            _ => data_dir::Access::Write,
        };
        data_dir::prepare(&settings.data_dir, access)?;
    }
    match cli.command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Demo(args) => demo::run(settings, &args, cli.global.data_dir.is_some()).await,
        Command::Token(args) => token::run(&settings, &args),
        Command::LoginLink(args) => login_link::run(&settings, &args),
        Command::Grant(args) => access::grant(&settings, &args).await,
        Command::Revoke(args) => access::revoke(&settings, &args).await,
        Command::Access { command } => access::list(&settings, &command).await,
        Command::Import(args) => import::run(&settings, &args).await,
        Command::Erase(args) => privacy::erase(&settings, &args).await,
        Command::Audit { command } => privacy::audit(&settings, &command).await,
        Command::Migrate => {
            open_store(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
    }
}

/// Opens the configured store for a command, naming it in the error.
pub(crate) async fn open_store(
    settings: &Settings,
) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
    use anyhow::Context;
    crate::store::open(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .context("cannot open the store")
}

/// An error and its causes as one line: `what: why: why…`, each cause once
/// (a message that already contains its cause does not repeat it), and
/// I/O causes in plain words ("does not exist", "permission denied").
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let raw = cause.to_string();
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => data_dir::io_reason(io),
            None => raw.clone(),
        };
        if line.contains(&raw) || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[derive(Debug, thiserror::Error)]
    #[error("key file k: {source}")]
    struct KeyError {
        source: std::io::Error,
    }

    #[test]
    fn one_line_names_each_cause_once() {
        let missing = || std::io::Error::from_raw_os_error(2);
        let cases = [
            (
                Err::<(), _>(missing()).context("cannot read config file c.toml"),
                "cannot read config file c.toml: does not exist",
            ),
            (
                Err::<(), _>(KeyError { source: missing() }).context("local mode"),
                "local mode: key file k: No such file or directory (os error 2)",
            ),
            (
                Err::<(), _>(anyhow::anyhow!("a\nb")).context("outer"),
                "outer: a b",
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(one_line(&result.unwrap_err()), expected);
        }
    }
}
