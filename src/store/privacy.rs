//! Backend-independent pieces of erasure and the audit trail: the records
//! a store writes alongside grants and erasures, and reading stored
//! records back.

use crate::domain::{AccessGrant, AuditAction, AuditRecord, OrgId, Timestamp, UserId};

/// Name of the pseudonym secret in the `deployment_secrets` table.
pub(crate) const PSEUDONYM_SECRET: &str = "pseudonym-key";

/// The record of a grant (`revoked == false`) or revoke that changed
/// something; the command line is the only way to change grants.
pub(crate) fn access_record(grant: &AccessGrant, revoked: bool) -> AuditRecord {
    let (user, what) = (grant.user.clone(), grant.grant);
    AuditRecord {
        at: Timestamp::now(),
        org: grant.org.clone(),
        actor: None,
        action: if revoked {
            AuditAction::Revoke { user, grant: what }
        } else {
            AuditAction::Grant { user, grant: what }
        },
    }
}

/// The record of an erasure: the pseudonym only, never the erased id.
pub(crate) fn erasure_record(
    org: &OrgId,
    pseudonym: &UserId,
    events: u64,
    actor: Option<&UserId>,
) -> AuditRecord {
    AuditRecord {
        at: Timestamp::now(),
        org: org.clone(),
        actor: actor.cloned(),
        action: AuditAction::Erasure {
            pseudonym: pseudonym.clone(),
            events,
        },
    }
}

/// Reads stored records back; one this version cannot read (written by a
/// newer one) is logged and skipped rather than failing the listing.
pub(crate) fn decode_audit<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<AuditRecord> {
    texts
        .into_iter()
        .filter_map(|t| match AuditRecord::from_json_str(t) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an audit record");
                None
            }
        })
        .collect()
}
