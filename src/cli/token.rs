//! `catalytics token`: a local-mode access token. With `--org` it acts in
//! that organization (downloads; ingestion of that organization's events
//! only). Without `--org`, and with the ingest scope only, it is a
//! multi-organization service token: it may report events of any
//! organization (DESIGN §3.1), as the component library backend does.

use crate::auth::local::{LocalIssuer, TokenRequest};
use crate::config::Settings;
use clap::Args;
use std::time::Duration;

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Organization id (`org` claim). Leave out, with `--scope` set to the
    /// ingest scope alone, for a service token that reports for every
    /// organization.
    #[arg(long)]
    pub org: Option<String>,
    /// User id (`sub` claim).
    #[arg(long)]
    pub user: String,
    /// Email (`email` claim).
    #[arg(long)]
    pub email: Option<String>,
    /// Space-separated scopes.
    #[arg(long, default_value = "itwin-platform")]
    pub scope: String,
    /// Lifetime, e.g. `1h`, `30m`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// Prints a token signed with the data dir's local key.
pub fn run(settings: &Settings, args: &TokenArgs) -> anyhow::Result<()> {
    if settings.auth.issuer.is_some() {
        anyhow::bail!(
            "an issuer is configured: tokens come from that issuer, not from `catalytics token`"
        );
    }
    let ingest_only = args
        .scope
        .split_whitespace()
        .all(|s| s == settings.auth.ingest_scope);
    if args.org.is_none() && !ingest_only {
        anyhow::bail!(
            "--org is required, except for a multi-organization service token (--scope {} alone)",
            settings.auth.ingest_scope
        );
    }
    let (issuer, _) = LocalIssuer::load_or_create(&settings.data_dir)?;
    let token = issuer.mint(&TokenRequest {
        org: args.org.clone(),
        user: args.user.clone(),
        email: args.email.clone(),
        scope: args.scope.clone(),
        ttl: args.ttl,
    })?;
    println!("{token}");
    Ok(())
}
