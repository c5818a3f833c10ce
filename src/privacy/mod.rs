//! Privacy and governance rules that are not tied to one store or to HTTP:
//! the keyed pseudonyms of erased users ([`pseudonym`]) and the retention
//! task that deletes expired events and audit records ([`retention`]).
//! The audit trail's record type lives in [`crate::domain::AuditRecord`];
//! what each part stores and for how long is in `docs/privacy.md`.

pub mod pseudonym;
pub mod retention;

pub use pseudonym::{Pseudonymizer, PSEUDONYM_PREFIX};
pub use retention::{Retention, RetentionPolicy};
