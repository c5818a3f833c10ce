//! The audit trail's appender on PostgreSQL. Every download and summary
//! adds a record, so under load one `INSERT` and one commit (a WAL flush)
//! per request cost more than the download itself. Records are handed to
//! one task that writes whatever has queued up in one statement: alone, a
//! record is written at once; under load, many share a round trip and a
//! commit. Each caller still learns whether its own record was stored.

use crate::domain::AuditRecord;
use crate::store::StoreError;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

/// Most records written by one statement.
const MAX_BATCH: usize = 512;
/// Records waiting for the writer; beyond this, callers wait to enqueue.
const QUEUE: usize = 4096;

const INSERT_SQL: &str = "
INSERT INTO audit_log (org_id, at, record)
SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])";

struct Pending {
    org: String,
    at: i64,
    record: String,
    stored: oneshot::Sender<Result<(), StoreError>>,
}

/// Appends audit records in batches (see the module docs).
#[derive(Clone)]
pub struct AuditAppender {
    queue: mpsc::Sender<Pending>,
}

impl AuditAppender {
    /// Starts the writing task on the current runtime; it ends when the
    /// last appender is dropped.
    pub fn start(pool: Pool) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, pending));
        Self { queue }
    }

    /// Stores `record`; returns once it is committed (or failed).
    pub async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let (stored, outcome) = oneshot::channel();
        let pending = Pending {
            org: record.org.as_str().to_owned(),
            at: record.at.millis(),
            record: record.to_json_string(),
            stored,
        };
        let stopped = || StoreError::Backend("the audit writer stopped".into());
        self.queue.send(pending).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn write_batches(pool: Pool, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcome = insert(&pool, &batch).await;
        for p in batch.drain(..) {
            let _ = p.stored.send(outcome.clone());
        }
    }
}

async fn insert(pool: &Pool, batch: &[Pending]) -> Result<(), StoreError> {
    let orgs: Vec<&str> = batch.iter().map(|p| p.org.as_str()).collect();
    let ats: Vec<i64> = batch.iter().map(|p| p.at).collect();
    let records: Vec<&str> = batch.iter().map(|p| p.record.as_str()).collect();
    let client = pool.get().await?;
    let insert = client.prepare_cached(INSERT_SQL).await?;
    client.execute(&insert, &[&orgs, &ats, &records]).await?;
    Ok(())
}
