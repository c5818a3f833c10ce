//! `catalytics login-link`: a sign-in link for the admin page in local mode.
//!
//! The link carries a short-lived access token in the URL fragment
//! (`/#token=…`): browsers never send fragments to servers, so the token
//! reaches no access log or proxy, and the page removes it from the address
//! bar and history as soon as it has read it.

use crate::auth::local::{LocalIssuer, TokenRequest};
use crate::config::Settings;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `login-link`.
#[derive(Debug, Args)]
pub struct LoginLinkArgs {
    /// Organization id.
    #[arg(long)]
    pub org: String,
    /// User id; they need a role or the View Analytics permission there.
    #[arg(long)]
    pub user: String,
    /// Email shown on the page (optional).
    #[arg(long)]
    pub email: Option<String>,
    /// How long the link (and the sign-in it gives) lasts, e.g. `30m`, `8h`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Where the service is reached (default: the `public_url` setting, else
    /// http:// and the bind address).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// What a login link is made of.
pub struct LinkRequest<'a> {
    /// The page's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: &'a str,
    /// Organization id.
    pub org: &'a str,
    /// User id.
    pub user: &'a str,
    /// Email claim; may be empty.
    pub email: &'a str,
    /// Lifetime.
    pub ttl: Duration,
}

/// Prints a login link signed with the data dir's local key.
pub fn run(settings: &Settings, args: &LoginLinkArgs) -> anyhow::Result<()> {
    if settings.auth.issuer.is_some() {
        anyhow::bail!(
            "an issuer is configured: the admin page signs in through that issuer, not with a login link"
        );
    }
    let (issuer, _) = LocalIssuer::load_or_create(&settings.data_dir)?;
    let base_url = args
        .url
        .clone()
        .or_else(|| settings.public_url.clone())
        .unwrap_or_else(|| base_url(settings.bind));
    println!(
        "{}",
        link(
            &issuer,
            settings,
            &LinkRequest {
                base_url: &base_url,
                org: &args.org,
                user: &args.user,
                email: args.email.as_deref().unwrap_or(""),
                ttl: args.ttl,
            }
        )?
    );
    Ok(())
}

/// `http://ADDR` for a bind address; an unspecified IP becomes loopback.
pub fn base_url(bind: SocketAddr) -> String {
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Mints a token with the download scope and puts it in the fragment of
/// the page's URL.
pub fn link(
    issuer: &LocalIssuer,
    settings: &Settings,
    req: &LinkRequest<'_>,
) -> anyhow::Result<String> {
    let token = issuer.mint(&TokenRequest {
        org: Some(req.org.to_owned()),
        user: req.user.to_owned(),
        email: (!req.email.is_empty()).then(|| req.email.to_owned()),
        scope: settings.auth.download_scope.clone(),
        ttl: req.ttl,
    })?;
    Ok(format!(
        "{}/#token={token}",
        req.base_url.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_uses_loopback_for_unspecified_addresses() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("10.1.2.3:9000".parse().unwrap()),
            "http://10.1.2.3:9000"
        );
    }
}
