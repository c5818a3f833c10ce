//! `catalytics login-link`: a one-time sign-in link for the admin page in
//! local mode.
//!
//! The link carries a one-time sign-in code in the URL fragment
//! (`/#code=…`, see `auth::login_code`): browsers never send fragments to
//! servers, so the code reaches no access log or proxy. The page removes it
//! from the address bar and history at once and redeems it with
//! `POST /auth/login-link` for an access token it keeps in memory; a second
//! redemption is refused, so a link that leaked after use is worthless.

use crate::auth::local::LocalIssuer;
use crate::auth::login_code::LoginCodeRequest;
use crate::config::Settings;
use crate::domain::{OrgId, UserId};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `login-link`.
#[derive(Debug, Args)]
pub struct LoginLinkArgs {
    /// Organization id.
    #[arg(long, value_parser = parse_org)]
    pub org: OrgId,
    /// User id; they need a role or the View Analytics permission there.
    #[arg(long, value_parser = parse_user)]
    pub user: UserId,
    /// Email shown on the page (optional).
    #[arg(long)]
    pub email: Option<String>,
    /// How long the link may be opened, e.g. `15m`, `1h`. It signs in once:
    /// opened a second time, it is refused.
    #[arg(long, default_value = "15m", value_parser = positive_duration)]
    pub ttl: Duration,
    /// How long the sign-in lasts once the link is opened, e.g. `1h`, `8h`
    /// (the page forgets it earlier when reloaded or closed).
    #[arg(long, default_value = "8h", value_parser = positive_duration)]
    pub session_ttl: Duration,
    /// Where the service is reached (default: the `public_url` setting, else
    /// http:// and the bind address).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

fn parse_org(s: &str) -> Result<OrgId, String> {
    OrgId::parse(s).map_err(|e| format!("organization id {e}"))
}

fn parse_user(s: &str) -> Result<UserId, String> {
    UserId::parse(s).map_err(|e| format!("user id {e}"))
}

/// A duration of at least one second, e.g. `15m`.
fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.as_secs() == 0 {
        return Err("must be at least one second".into());
    }
    Ok(d)
}

/// What a login link is made of.
pub struct LinkRequest<'a> {
    /// The page's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: &'a str,
    /// Who signs in, where, and for how long.
    pub code: LoginCodeRequest,
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
            &LinkRequest {
                base_url: &base_url,
                code: LoginCodeRequest {
                    org: args.org.clone(),
                    user: args.user.clone(),
                    email: args.email.clone().filter(|e| !e.is_empty()),
                    link_ttl: args.ttl,
                    session_ttl: args.session_ttl,
                },
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

/// Mints a one-time sign-in code and puts it in the fragment of the page's
/// URL.
pub fn link(issuer: &LocalIssuer, req: &LinkRequest<'_>) -> anyhow::Result<String> {
    let code = issuer.mint_login_code(&req.code)?;
    Ok(format!(
        "{}/#code={code}",
        req.base_url.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_at_least_a_second() {
        assert_eq!(positive_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(positive_duration("1s"), Ok(Duration::from_secs(1)));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("500ms").is_err());
        assert!(positive_duration("soon").is_err());
    }

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
