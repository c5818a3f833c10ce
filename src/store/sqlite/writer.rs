//! The single SQLite writer, on a thread of its own, with group commit and
//! self-healing.
//!
//! SQLite allows one writer at a time, and a durable commit (`fsync` of the
//! WAL) costs the same for ten events as for ten thousand. So ingestion
//! batches that arrive while a commit is in progress are queued, and the
//! next transaction takes all of them at once (up to [`GROUP_EVENTS`]).
//! Each caller still gets its own outcome, only after the shared commit; if
//! the transaction fails, every batch in it fails and none is stored, so
//! each batch stays atomic.
//!
//! The writer thread is the one place that cannot be parallelized, so work
//! that needs no connection stays off it: callers hash their events' facts
//! before queueing a batch, and the batch goes back to its caller with the
//! outcome, so its memory is freed there too.
//!
//! Healing: when a write fails because the store is unavailable (disk full,
//! file or directory read-only, file unopenable), the connection is closed
//! and the store marked unhealthy; the next job opens a fresh connection
//! (which re-runs the read-only check and pending migrations), so the store
//! recovers by itself once the cause is gone, without a restart. While
//! unhealthy, [`Writer::probe`] tries a small durable write, which is what
//! readiness reports.

use super::ingest::{self, Batch};
use crate::domain::Event;
use crate::store::{IngestOutcome, StoreError};
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Most events committed in one group transaction.
const GROUP_EVENTS: usize = 50_000;

/// The outcome of a batch, and the batch itself, handed back so that its
/// memory is freed by the caller rather than on the writer thread.
type IngestReply = oneshot::Sender<(Result<IngestOutcome, StoreError>, Batch)>;

/// Opens a writer connection ready for use (settings, migrations applied,
/// not read-only), or says why it cannot.
pub type Opener = Box<dyn Fn() -> Result<Connection, StoreError> + Send>;

/// A write run alone on the connection (or told why there is none).
type WriteJob =
    Box<dyn FnOnce(Result<&mut Connection, StoreError>) -> Result<(), StoreError> + Send>;

/// Work for the writer thread.
enum Job {
    /// An ingestion batch; grouped with others.
    Ingest(Batch, IngestReply),
    /// Any other write (grants, the health probe), run alone; answers its
    /// caller and returns its outcome for the health record.
    Run(WriteJob),
}

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread with `conn` (or none yet, when the store
    /// could not be opened for writing: the first job tries `open`).
    pub fn spawn(conn: Option<Connection>, open: Opener) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::channel();
        let healthy = Arc::new(AtomicBool::new(conn.is_some()));
        let state = WriterState {
            conn,
            open,
            healthy: Arc::clone(&healthy),
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(state, &rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs, healthy })
    }

    /// Whether the last write went through.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Stores a batch; resolves after its transaction committed.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Ingest(Batch::new(events), tx))?;
        let (outcome, batch) = rx.await.map_err(|_| gone())?;
        drop(batch);
        outcome
    }

    /// Runs `f` on the writer connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Run(Box::new(move |conn| {
            let result = conn.and_then(f);
            let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
            let _ = tx.send(result);
            outcome
        })))?;
        rx.await.map_err(|_| gone())?
    }

    /// A small durable write: succeeds only when writes go through again.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO store_probe (id, probed_at) VALUES (1, ?1)",
                [crate::domain::Timestamp::now().millis()],
            )?;
            Ok(())
        })
        .await
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| gone())
    }
}

fn gone() -> StoreError {
    StoreError::Backend("the SQLite writer thread has stopped".into())
}

/// The writer thread's connection, reopened after unavailability.
struct WriterState {
    conn: Option<Connection>,
    open: Opener,
    healthy: Arc<AtomicBool>,
}

impl WriterState {
    /// The connection, opening a fresh one when the last was given up.
    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_none() {
            let conn = (self.open)().inspect_err(|e| self.failed(e))?;
            tracing::info!("SQLite writer connection reopened");
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(gone)
    }

    /// Records the outcome of a write: an unavailable store closes the
    /// connection so that the next job starts afresh.
    fn record<T>(&mut self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("SQLite writes go through again");
                }
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: &StoreError) {
        if let StoreError::Unavailable(cause) = e {
            if self.healthy.swap(false, Ordering::Relaxed) {
                tracing::error!(%cause, "SQLite writes fail; answering 503 until they go through again");
            }
            self.conn = None;
        }
    }
}

fn run(mut state: WriterState, jobs: &mpsc::Receiver<Job>) {
    let mut pending: Option<Job> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return, // every handle dropped: the store is closed
            },
        };
        match job {
            Job::Run(f) => {
                let outcome = f(state.connection());
                state.record(&outcome);
            }
            Job::Ingest(batch, reply) => {
                let mut size = batch.events.len();
                let mut group = vec![(batch, reply)];
                while size < GROUP_EVENTS {
                    match jobs.try_recv() {
                        Ok(Job::Ingest(batch, reply)) => {
                            size += batch.events.len();
                            group.push((batch, reply));
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut state, group);
            }
        }
    }
}

fn commit_group(state: &mut WriterState, group: Vec<(Batch, IngestReply)>) {
    let (batches, replies): (Vec<Batch>, Vec<IngestReply>) = group.into_iter().unzip();
    let result = state
        .connection()
        .and_then(|conn| ingest::ingest(conn, &batches));
    state.record(&result);
    let outcomes: Vec<Result<IngestOutcome, StoreError>> = match result {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => replies.iter().map(|_| Err(e.clone())).collect(),
    };
    for ((reply, outcome), batch) in replies.into_iter().zip(outcomes).zip(batches) {
        // A caller that went away leaves its batch to be freed here.
        let _ = reply.send((outcome, batch));
    }
}
