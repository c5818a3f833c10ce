//! The single SQLite writer, on a thread of its own, with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit (`fsync` of the
//! WAL) costs the same for ten events as for ten thousand. So ingestion
//! batches that arrive while a commit is in progress are queued, and the
//! next transaction takes all of them at once (up to [`GROUP_EVENTS`]).
//! Each caller still gets its own outcome, only after the shared commit; if
//! the transaction fails, every batch in it fails and none is stored, so
//! each batch stays atomic.

use super::ingest;
use crate::domain::Event;
use crate::privacy::Pseudonymizer;
use crate::store::{IngestOutcome, StoreError};
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most events committed in one group transaction.
const GROUP_EVENTS: usize = 50_000;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work for the writer thread.
enum Job {
    /// An ingestion batch; grouped with others.
    Ingest(Vec<Event>, Reply<IngestOutcome>),
    /// Any other write (grants), run alone.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `conn` to a new writer thread; batches are pseudonymized
    /// with `pseudonymizer` before they are stored (see `privacy`).
    pub fn spawn(conn: Connection, pseudonymizer: Pseudonymizer) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, &rx, &pseudonymizer))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs })
    }

    /// Stores a batch; resolves after its transaction committed.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Ingest(events, tx))?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs `f` on the writer connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Run(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        })))?;
        rx.await.map_err(|_| gone())?
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| gone())
    }
}

fn gone() -> StoreError {
    StoreError::Backend("the SQLite writer thread has stopped".into())
}

fn run(mut conn: Connection, jobs: &mpsc::Receiver<Job>, pseudonymizer: &Pseudonymizer) {
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
            Job::Run(f) => f(&mut conn),
            Job::Ingest(events, reply) => {
                let mut group = vec![(events, reply)];
                let mut size = group[0].0.len();
                while size < GROUP_EVENTS {
                    match jobs.try_recv() {
                        Ok(Job::Ingest(events, reply)) => {
                            size += events.len();
                            group.push((events, reply));
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, pseudonymizer, group);
            }
        }
    }
}

fn commit_group(
    conn: &mut Connection,
    pseudonymizer: &Pseudonymizer,
    group: Vec<(Vec<Event>, Reply<IngestOutcome>)>,
) {
    let (batches, replies): (Vec<Vec<Event>>, Vec<Reply<IngestOutcome>>) =
        group.into_iter().unzip();
    match ingest::ingest(conn, pseudonymizer, &batches) {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
    // Dropping the events happens here, after every caller was answered.
    drop(batches);
}
