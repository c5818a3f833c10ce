//! The command line: one binary, one subcommand per job. Every command
//! shares `--data-dir`, `--database-url` and `--config`, prints errors as one
//! line and exits non-zero on failure.

mod access;
mod demo;
mod import;
mod login_link;
mod serve;
mod token;

use crate::config::Settings;
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
    /// Data directory (SQLite file, local signing key).
    #[arg(long, global = true, env = "CATALYTICS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` selects PostgreSQL; default: SQLite in the data dir.
    #[arg(
        long,
        global = true,
        env = "CATALYTICS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Optional TOML settings file (see docs/operations.md).
    #[arg(long, global = true, env = "CATALYTICS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
}

/// Flags of `serve` that override settings.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Listen address (port 0 picks a free one; the bound address is printed).
    #[arg(long, env = "CATALYTICS_BIND", value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// The URL clients reach the service at, published in local mode's
    /// discovery document (default: from the bound address).
    #[arg(long, env = "CATALYTICS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// External token issuer URL (selects issuer mode).
    #[arg(long, env = "CATALYTICS_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// The issuer's JWKS URL (default: OpenID discovery).
    #[arg(long, env = "CATALYTICS_JWKS_URI", value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Required token audience.
    #[arg(long, env = "CATALYTICS_AUDIENCE", value_name = "AUD")]
    pub audience: Option<String>,
    /// Downloads allowed to stream at once.
    #[arg(long, env = "CATALYTICS_MAX_CONCURRENT_DOWNLOADS", value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// Downloads one organization may start per minute (default: unlimited).
    #[arg(
        long,
        env = "CATALYTICS_DOWNLOADS_PER_MINUTE_PER_ORG",
        value_name = "N"
    )]
    pub downloads_per_minute_per_org: Option<u32>,
}

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Listen address.
    #[arg(long, env = "CATALYTICS_BIND", value_name = "ADDR")]
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
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.global.settings()?;
    match cli.command {
        Command::Serve(args) => serve::run(settings, &args).await,
        Command::Demo(args) => demo::run(settings, &args, cli.global.data_dir.is_some()).await,
        Command::Token(args) => token::run(&settings, &args),
        Command::LoginLink(args) => login_link::run(&settings, &args),
        Command::Grant(args) => access::grant(&settings, &args).await,
        Command::Revoke(args) => access::revoke(&settings, &args).await,
        Command::Access { command } => access::list(&settings, &command).await,
        Command::Import(args) => import::run(&settings, &args).await,
        Command::Migrate => {
            crate::store::open(settings.database_url.as_deref(), &settings.data_dir).await?;
            println!("migrations applied");
            Ok(())
        }
    }
}
