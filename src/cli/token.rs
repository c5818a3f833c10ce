//! `catalytics token`

use crate::auth::local::{LocalIssuer, TokenRequest};
use crate::config::Settings;
use clap::Args;
use std::time::Duration;

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Organization id (`org` claim).
    #[arg(long)]
    pub org: String,
    /// User id (`sub` claim).
    #[arg(long)]
    pub user: String,
    /// Email (`email` claim).
    #[arg(long)]
    pub email: String,
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
