//! The audit trail: who read an organization's analytics (and how much of
//! it), who erased a user, who changed access. Kept apart from the events
//! and retained on its own schedule (see `docs/privacy.md`).

use super::{DateRange, Grant, OrgId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// How a read of analytics (a download or a summary) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every byte was handed to the connection.
    Complete,
    /// The client went away before the end.
    Aborted,
    /// The service could not produce the whole answer (store failure).
    Failed,
}

impl Outcome {
    /// `complete`, `aborted` or `failed`, as in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }
}

/// What a read covered and how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The requested window.
    pub window: DateRange,
    /// Data rows sent (the CSV header row is not counted).
    pub rows: u64,
    /// Body bytes sent.
    pub bytes: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAction {
    /// A CSV download that passed authorization.
    Download(Transfer),
    /// A usage summary that passed authorization.
    Summary(Transfer),
    /// A user's events were pseudonymized. Only the pseudonym is kept: the
    /// trail must not undo the erasure it records.
    Erasure {
        /// `erased-<16 hex>`.
        pseudonym: UserId,
        /// Events the request changed (0 when repeated).
        events: u64,
    },
    /// `grant` added a role or permission.
    Grant {
        /// Who received it.
        user: UserId,
        /// What.
        grant: Grant,
    },
    /// `revoke` removed one.
    Revoke {
        /// Who lost it.
        user: UserId,
        /// What.
        grant: Grant,
    },
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened (a read: when it ended).
    pub at: Timestamp,
    /// The organization concerned.
    pub org: OrgId,
    /// The authenticated user who acted; `None` for the command line,
    /// which has no identity beyond the operator's shell.
    pub actor: Option<UserId>,
    /// What was done.
    pub action: AuditAction,
}

/// The one JSON form of a record: what `audit list --format json` prints
/// and what the stores keep. Flat, so it reads well in a log pipeline.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditJson {
    at: String,
    organization: String,
    actor: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pseudonym: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// A stored record this version cannot read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable audit record: {0}")]
pub struct AuditDecodeError(String);

fn bad(what: &str) -> AuditDecodeError {
    AuditDecodeError(what.to_owned())
}

impl AuditAction {
    /// The action's name in the trail: `download`, `summary`, `erasure`,
    /// `grant`, `revoke`.
    pub fn name(&self) -> &'static str {
        match self {
            AuditAction::Download(_) => "download",
            AuditAction::Summary(_) => "summary",
            AuditAction::Erasure { .. } => "erasure",
            AuditAction::Grant { .. } => "grant",
            AuditAction::Revoke { .. } => "revoke",
        }
    }
}

impl AuditRecord {
    /// The record as a JSON value (the form `audit list --format json`
    /// prints).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire()).unwrap_or(serde_json::Value::Null)
    }

    /// The record as one JSON text, for storage.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }

    /// Reads a stored JSON text back.
    pub fn from_json_str(s: &str) -> Result<Self, AuditDecodeError> {
        let wire: AuditJson = serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?;
        Self::from_wire(wire)
    }

    fn to_wire(&self) -> AuditJson {
        let mut out = AuditJson {
            at: self.at.to_wire(),
            organization: self.org.to_string(),
            actor: self.actor.as_ref().map(ToString::to_string),
            action: self.action.name().to_owned(),
            start_date: None,
            end_date: None,
            rows: None,
            bytes: None,
            outcome: None,
            pseudonym: None,
            events: None,
            user: None,
            kind: None,
            name: None,
        };
        match &self.action {
            AuditAction::Download(t) | AuditAction::Summary(t) => {
                out.start_date = Some(t.window.start().to_wire());
                out.end_date = Some(t.window.end().to_wire());
                out.rows = Some(t.rows);
                out.bytes = Some(t.bytes);
                out.outcome = Some(t.outcome);
            }
            AuditAction::Erasure { pseudonym, events } => {
                out.pseudonym = Some(pseudonym.to_string());
                out.events = Some(*events);
            }
            AuditAction::Grant { user, grant } | AuditAction::Revoke { user, grant } => {
                out.user = Some(user.to_string());
                out.kind = Some(grant.kind().to_owned());
                out.name = Some(grant.name().to_owned());
            }
        }
        out
    }

    fn from_wire(w: AuditJson) -> Result<Self, AuditDecodeError> {
        let ts = |s: Option<String>, what: &str| {
            s.and_then(|s| Timestamp::parse(&s).ok())
                .ok_or_else(|| bad(what))
        };
        let user = |s: Option<String>, what: &str| {
            s.and_then(|s| UserId::parse(s).ok())
                .ok_or_else(|| bad(what))
        };
        let transfer = |w: &mut AuditJson| -> Result<Transfer, AuditDecodeError> {
            let window = DateRange::new(
                ts(w.start_date.take(), "startDate")?,
                ts(w.end_date.take(), "endDate")?,
            )
            .map_err(|_| bad("window"))?;
            Ok(Transfer {
                window,
                rows: w.rows.ok_or_else(|| bad("rows"))?,
                bytes: w.bytes.ok_or_else(|| bad("bytes"))?,
                outcome: w.outcome.ok_or_else(|| bad("outcome"))?,
            })
        };
        let mut w = w;
        let grant = |w: &mut AuditJson| {
            Grant::from_stored(
                w.kind.as_deref().unwrap_or_default(),
                w.name.as_deref().unwrap_or_default(),
            )
            .ok_or_else(|| bad("grant"))
        };
        let action = match w.action.as_str() {
            "download" => AuditAction::Download(transfer(&mut w)?),
            "summary" => AuditAction::Summary(transfer(&mut w)?),
            "erasure" => AuditAction::Erasure {
                pseudonym: user(w.pseudonym.take(), "pseudonym")?,
                events: w.events.ok_or_else(|| bad("events"))?,
            },
            "grant" => AuditAction::Grant {
                grant: grant(&mut w)?,
                user: user(w.user.take(), "user")?,
            },
            "revoke" => AuditAction::Revoke {
                grant: grant(&mut w)?,
                user: user(w.user.take(), "user")?,
            },
            other => return Err(bad(&format!("unknown action {other:?}"))),
        };
        Ok(Self {
            at: ts(Some(w.at), "at")?,
            org: OrgId::parse(w.organization).map_err(|_| bad("organization"))?,
            actor: w
                .actor
                .map(UserId::parse)
                .transpose()
                .map_err(|_| bad("actor"))?,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn every_action_round_trips_through_its_json_form() {
        let window = DateRange::new(
            ts("2024-01-01T00:00:00.000Z"),
            ts("2024-02-01T00:00:00.000Z"),
        )
        .unwrap();
        let transfer = Transfer {
            window,
            rows: 4,
            bytes: 512,
            outcome: Outcome::Aborted,
        };
        let user = UserId::parse("u-1").unwrap();
        let grant = Grant::Role(Role::CoAdministrator);
        for (action, actor) in [
            (AuditAction::Download(transfer), Some(user.clone())),
            (AuditAction::Summary(transfer), Some(user.clone())),
            (
                AuditAction::Erasure {
                    pseudonym: UserId::parse("erased-0123456789abcdef").unwrap(),
                    events: 3,
                },
                None,
            ),
            (
                AuditAction::Grant {
                    user: user.clone(),
                    grant,
                },
                None,
            ),
            (
                AuditAction::Revoke {
                    user: user.clone(),
                    grant,
                },
                None,
            ),
        ] {
            let record = AuditRecord {
                at: ts("2024-03-01T10:00:00.000Z"),
                org: OrgId::parse("org-1").unwrap(),
                actor,
                action,
            };
            let text = record.to_json_string();
            assert_eq!(AuditRecord::from_json_str(&text), Ok(record), "{text}");
        }
    }

    #[test]
    fn a_download_reads_as_flat_json() {
        let record = AuditRecord {
            at: ts("2024-03-01T10:00:00.000Z"),
            org: OrgId::parse("org-1").unwrap(),
            actor: Some(UserId::parse("u-1").unwrap()),
            action: AuditAction::Download(Transfer {
                window: DateRange::new(
                    ts("2024-01-01T00:00:00.000Z"),
                    ts("2024-02-01T00:00:00.000Z"),
                )
                .unwrap(),
                rows: 4,
                bytes: 512,
                outcome: Outcome::Complete,
            }),
        };
        assert_eq!(
            record.to_json(),
            serde_json::json!({
                "at": "2024-03-01T10:00:00.000Z", "organization": "org-1", "actor": "u-1",
                "action": "download", "startDate": "2024-01-01T00:00:00.000Z",
                "endDate": "2024-02-01T00:00:00.000Z", "rows": 4, "bytes": 512,
                "outcome": "complete"
            })
        );
    }

    #[test]
    fn unknown_or_incomplete_records_are_refused() {
        for text in [
            "{}",
            r#"{"at":"2024-03-01T10:00:00.000Z","organization":"o","actor":null,"action":"teleport"}"#,
            r#"{"at":"2024-03-01T10:00:00.000Z","organization":"o","actor":null,"action":"download"}"#,
            r#"{"at":"yesterday","organization":"o","actor":null,"action":"erasure","pseudonym":"p","events":1}"#,
        ] {
            assert!(AuditRecord::from_json_str(text).is_err(), "{text}");
        }
    }
}
