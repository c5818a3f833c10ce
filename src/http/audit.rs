//! Audit records of reads (downloads, summaries): a [`ReadAudit`] is made
//! once a read passed authorization and its parameters, counts what is
//! sent, and records the outcome when it is dropped — `complete` when the
//! body ran to its end, `failed` when the store failed, `aborted` when the
//! body was dropped early (the client went away).

use crate::domain::UserId;
use crate::domain::{AuditAction, AuditRecord, DateRange, OrgId, Outcome, Timestamp, Transfer};
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which kind of read is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The CSV download.
    Download,
    /// The usage summary.
    Summary,
}

/// Counts one read and records it when the last handle is dropped. Cheap
/// to clone: the row counter and the body counter share it.
#[derive(Clone)]
pub struct ReadAudit(Arc<Tally>);

struct Tally {
    store: Arc<dyn Store>,
    org: OrgId,
    actor: UserId,
    window: DateRange,
    read: Read,
    rows: AtomicU64,
    bytes: AtomicU64,
    outcome: Mutex<Option<Outcome>>,
}

impl ReadAudit {
    /// Starts auditing a read of `org`'s `window` by `actor`.
    pub fn start(
        store: Arc<dyn Store>,
        org: OrgId,
        actor: UserId,
        window: DateRange,
        read: Read,
    ) -> Self {
        Self(Arc::new(Tally {
            store,
            org,
            actor,
            window,
            read,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            outcome: Mutex::new(None),
        }))
    }

    /// Sets the outcome once; the first one set wins (a failure followed by
    /// the body's drop stays a failure).
    fn settle(&self, outcome: Outcome) {
        if let Ok(mut slot) = self.0.outcome.lock() {
            slot.get_or_insert(outcome);
        }
    }

    /// The read failed before anything was sent.
    pub fn failed(&self) {
        self.settle(Outcome::Failed);
    }

    /// A read answered in one piece (e.g. a JSON summary): `rows` items,
    /// `bytes` of body, complete.
    pub fn completed(&self, rows: u64, bytes: u64) {
        self.add(rows, bytes);
        self.settle(Outcome::Complete);
    }

    /// One chunk of a streamed export handed to the body: `rows` rows in
    /// `bytes` bytes. The one counting point of a download, for its record
    /// and for the export metrics alike.
    pub fn sent(&self, rows: usize, bytes: usize) {
        self.add(rows as u64, bytes as u64);
        crate::metrics::exported(rows, bytes);
    }

    /// A streamed body ran to its end.
    pub fn ended(&self) {
        self.settle(Outcome::Complete);
    }

    fn add(&self, rows: u64, bytes: u64) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .get_mut()
            .ok()
            .and_then(|o| *o)
            .unwrap_or(Outcome::Aborted);
        let transfer = Transfer {
            window: self.window,
            rows: *self.rows.get_mut(),
            bytes: *self.bytes.get_mut(),
            outcome,
        };
        let record = AuditRecord {
            at: Timestamp::now(),
            org: self.org.clone(),
            actor: Some(self.actor.clone()),
            action: match self.read {
                Read::Download => AuditAction::Download(transfer),
                Read::Summary => AuditAction::Summary(transfer),
            },
        };
        let store = Arc::clone(&self.store);
        // Drop cannot wait; the write goes on in the background. Outside a
        // runtime (never, in the service) the record is only logged.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = store.record_audit(&record).await {
                        tracing::error!(error = %e, action = record.action.name(), "cannot write an audit record");
                    }
                });
            }
            Err(_) => tracing::error!(
                action = record.action.name(),
                "no runtime to write an audit record"
            ),
        }
    }
}
