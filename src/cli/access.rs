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
        /// `table` (aligned columns, for people) or `json` (an array, for scripts).
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// Output of `access list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Columns padded to their widest value.
    Table,
    /// `[{"org","user","kind","name"}, …]`.
    Json,
}

/// One grant as `access list --format json` prints it.
#[derive(Debug, serde::Serialize)]
struct GrantRow {
    org: String,
    user: String,
    kind: String,
    name: String,
}

/// Lays rows out in columns padded to the widest cell (header included),
/// separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
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

use super::open_store as open;

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
    let AccessCommand::List { org, format } = command;
    let org = org
        .clone()
        .map(OrgId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--org {e}"))?;
    let grants = open(settings).await?.list_access(org.as_ref()).await?;
    let rows: Vec<GrantRow> = grants
        .iter()
        .map(|g| GrantRow {
            org: g.org.to_string(),
            user: g.user.to_string(),
            kind: g.grant.kind().to_string(),
            name: g.grant.name().to_string(),
        })
        .collect();
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| vec![r.org, r.user, r.kind, r.name])
                .collect();
            print!("{}", table(&["ORG", "USER", "KIND", "NAME"], &cells));
            if grants.is_empty() {
                eprintln!("(no grants)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_line_up_under_the_header() {
        let rows = vec![
            vec![
                "o".into(),
                "a-very-long-user-id".into(),
                "role".into(),
                "Co-Administrator".into(),
            ],
            vec![
                "org-2".into(),
                "bob".into(),
                "permission".into(),
                "View Analytics".into(),
            ],
        ];
        assert_eq!(
            table(&["ORG", "USER", "KIND", "NAME"], &rows),
            "ORG    USER                 KIND        NAME\n\
             o      a-very-long-user-id  role        Co-Administrator\n\
             org-2  bob                  permission  View Analytics\n"
        );
    }
}
