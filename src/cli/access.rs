//! `catalytics grant`, `revoke` and `access list`.

use crate::config::Settings;
use crate::domain::{AccessGrant, Grant, OrgId, Permission, Role, UserId};
use clap::{Args, Subcommand};

/// Flags of `grant` and `revoke`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["role", "permission"]))]
pub struct GrantArgs {
    /// Organization id.
    #[arg(long)]
    pub org: String,
    /// User id (the token's `sub`).
    #[arg(long)]
    pub user: String,
    /// `Account Administrator`, `Co-Administrator` or `CONNECT Services Administrator`.
    #[arg(long)]
    pub role: Option<String>,
    /// `View Analytics`.
    #[arg(long)]
    pub permission: Option<String>,
}

/// `access` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// List grants.
    List {
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
    },
}

impl GrantArgs {
    fn parse(&self) -> anyhow::Result<AccessGrant> {
        let grant = match (&self.role, &self.permission) {
            (Some(role), None) => Grant::Role(Role::parse(role).ok_or_else(|| {
                let known: Vec<_> = Role::ALL
                    .iter()
                    .map(|r| format!("{:?}", r.name()))
                    .collect();
                anyhow::anyhow!("unknown role {role:?}; known roles: {}", known.join(", "))
            })?),
            (None, Some(p)) => Grant::Permission(Permission::parse(p).ok_or_else(|| {
                let known: Vec<_> = Permission::ALL
                    .iter()
                    .map(|r| format!("{:?}", r.name()))
                    .collect();
                anyhow::anyhow!(
                    "unknown permission {p:?}; known permissions: {}",
                    known.join(", ")
                )
            })?),
            _ => anyhow::bail!("give exactly one of --role or --permission"),
        };
        Ok(AccessGrant {
            org: OrgId::parse(self.org.clone()).map_err(|e| anyhow::anyhow!("--org {e}"))?,
            user: UserId::parse(self.user.clone()).map_err(|e| anyhow::anyhow!("--user {e}"))?,
            grant,
        })
    }
}

async fn open(settings: &Settings) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
    Ok(crate::store::open(settings.database_url.as_deref(), &settings.data_dir).await?)
}

/// `catalytics grant`
pub async fn grant(settings: &Settings, args: &GrantArgs) -> anyhow::Result<()> {
    let g = args.parse()?;
    let added = open(settings).await?.grant(&g).await?;
    let state = if added { "granted" } else { "already held" };
    println!("{state}: {} in org {} for user {}", g.grant, g.org, g.user);
    Ok(())
}

/// `catalytics revoke`
pub async fn revoke(settings: &Settings, args: &GrantArgs) -> anyhow::Result<()> {
    let g = args.parse()?;
    let removed = open(settings).await?.revoke(&g).await?;
    let state = if removed { "revoked" } else { "was not held" };
    println!("{state}: {} in org {} for user {}", g.grant, g.org, g.user);
    Ok(())
}

/// `catalytics access list`
pub async fn list(settings: &Settings, command: &AccessCommand) -> anyhow::Result<()> {
    let AccessCommand::List { org } = command;
    let org = org
        .clone()
        .map(OrgId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--org {e}"))?;
    let grants = open(settings).await?.list_access(org.as_ref()).await?;
    println!("{:<38} {:<38} {:<10} NAME", "ORG", "USER", "KIND");
    for g in &grants {
        println!(
            "{:<38} {:<38} {:<10} {}",
            g.org,
            g.user,
            g.grant.kind(),
            g.grant.name()
        );
    }
    if grants.is_empty() {
        eprintln!("(no grants)");
    }
    Ok(())
}
