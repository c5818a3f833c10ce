//! `catalytics erase` and `catalytics audit list` (see `docs/privacy.md`).

use crate::config::Settings;
use crate::domain::{AuditAction, AuditRecord, OrgId, Timestamp, UserId};
use clap::{Args, Subcommand, ValueEnum};
use std::sync::Arc;

/// Flags of `erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Organization id.
    #[arg(long)]
    pub org: String,
    /// The user id to erase (as in the events' `user.id`).
    #[arg(long)]
    pub user: String,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print an organization's audit trail, oldest first.
    List(AuditListArgs),
}

/// Flags of `audit list`.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Organization id.
    #[arg(long)]
    pub org: String,
    /// Only records from this instant (`2024-01-01T00:00:00.000Z`) or this
    /// long ago (`7d`, `12h`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Timestamp>,
    /// `text` (a table) or `json` (one array of records).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output format of `audit list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// `--since`: an instant in the contract's format, or a duration back
/// from now.
fn parse_since(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse(s) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!("expected yyyy-MM-ddTHH:mm:ss.fffZ or a duration such as 7d, got {s:?}")
    })?;
    let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
    Ok(Timestamp::from_millis(
        Timestamp::now().millis().saturating_sub(ago),
    ))
}

async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn crate::store::Store>> {
    Ok(crate::store::open(settings.database_url.as_deref(), &settings.data_dir).await?)
}

fn org(s: &str) -> anyhow::Result<OrgId> {
    OrgId::parse(s).map_err(|e| anyhow::anyhow!("--org {e}"))
}

/// `catalytics erase`
pub async fn erase(settings: &Settings, args: &EraseArgs) -> anyhow::Result<()> {
    let org = org(&args.org)?;
    let user = UserId::parse(args.user.clone()).map_err(|e| anyhow::anyhow!("--user {e}"))?;
    let outcome = open(settings).await?.erase_user(&org, &user, None).await?;
    println!(
        "erased: {} events in org {org} now carry {}",
        outcome.events, outcome.pseudonym
    );
    Ok(())
}

/// `catalytics audit list`
pub async fn audit(settings: &Settings, command: &AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List(args) = command;
    let records = open(settings)
        .await?
        .list_audit(&org(&args.org)?, args.since)
        .await?;
    match args.format {
        Format::Json => {
            let list: Vec<_> = records.iter().map(AuditRecord::to_json).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Text => {
            println!("{:<24} {:<8} {:<24} DETAILS", "AT", "ACTION", "ACTOR");
            for r in &records {
                let actor = r.actor.as_ref().map_or("(command line)", UserId::as_str);
                println!(
                    "{:<24} {:<8} {:<24} {}",
                    r.at,
                    r.action.name(),
                    actor,
                    details(&r.action)
                );
            }
            if records.is_empty() {
                eprintln!("(no audit records)");
            }
        }
    }
    Ok(())
}

/// The action-specific part of a text line.
fn details(action: &AuditAction) -> String {
    match action {
        AuditAction::Download(t) | AuditAction::Summary(t) => format!(
            "{}..{} rows={} bytes={} {}",
            t.window.start(),
            t.window.end(),
            t.rows,
            t.bytes,
            t.outcome.as_str()
        ),
        AuditAction::Erasure { pseudonym, events } => format!("{pseudonym} events={events}"),
        AuditAction::Grant { user, grant } | AuditAction::Revoke { user, grant } => {
            format!("{grant} user={user}")
        }
    }
}
