//! The shape of an export, shared by every backend and the CSV writer:
//! narrow integer rows plus the organization's [`Dictionary`] of names.

use super::StoreError;
use crate::domain::{EventKind, Timestamp};
use crate::export::Dictionary;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

/// One stored event as the export reads it: what happened, when, and the
/// surrogate keys of its dimensions (resolved through the [`Dictionary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRow {
    /// `Timestamp`
    pub timestamp: Timestamp,
    /// `Event`
    pub kind: EventKind,
    /// The component's key.
    pub component: i64,
    /// The acting user's key.
    pub user: i64,
    /// The application's key, if one was reported.
    pub application: Option<i64>,
    /// The project's key, if one was reported.
    pub project: Option<i64>,
}

/// One CSV row, column for column (see `docs/api.md`), for callers that
/// want values rather than CSV ([`Dictionary::resolve`]). Optional columns
/// are `None` when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// `Timestamp`
    pub timestamp: Timestamp,
    /// `Event`
    pub kind: EventKind,
    /// `Component Id`
    pub component_id: String,
    /// `Component Name`
    pub component_name: String,
    /// `Catalogs`: sorted names joined with `; `, already assembled by the store.
    pub catalogs: Option<String>,
    /// `Category`
    pub category: Option<String>,
    /// `Manufacturer`
    pub manufacturer: Option<String>,
    /// `Application`
    pub application: Option<String>,
    /// `Project Id`
    pub project_id: Option<String>,
    /// `User Id`
    pub user_id: String,
    /// `User Email`
    pub user_email: String,
}

/// Rows travel in batches so that channel and writer costs are amortised.
pub type RowBatch = Vec<EventRow>;

/// The row stream: batches in order, an `Err` item if the store fails
/// part-way, and nothing after an error.
pub type RowStream = BoxStream<'static, Result<RowBatch, StoreError>>;

/// A started export: the names every row of `rows` refers to, read in the
/// same snapshot as the rows (or newer), and the rows themselves.
pub struct Export {
    /// The organization's names, rendered.
    pub dictionary: Arc<Dictionary>,
    /// The events of the window, in order.
    pub rows: RowStream,
}

impl Export {
    /// An export whose rows were all read already (a small window): they
    /// are handed to the writer in [`BATCH_ROWS`] batches, and an empty
    /// window still yields one (empty) batch.
    pub(crate) fn whole(dictionary: Arc<Dictionary>, rows: Vec<EventRow>) -> Self {
        let batches: Vec<Result<RowBatch, StoreError>> = if rows.is_empty() {
            vec![Ok(rows)]
        } else {
            rows.chunks(BATCH_ROWS)
                .map(|part| Ok(part.to_vec()))
                .collect()
        };
        Self {
            dictionary,
            rows: futures_util::stream::iter(batches).boxed(),
        }
    }
}

/// Rows per batch once streaming (≈ 32 KiB of rows, ≈ 140 KiB of CSV).
pub(crate) const BATCH_ROWS: usize = 512;
/// The first batch is small so the first bytes leave quickly whatever the
/// window.
pub(crate) const FIRST_BATCH_ROWS: usize = 64;
/// Batches buffered between a backend's reader and the HTTP body: with
/// [`BATCH_ROWS`] this bounds an export's rows in flight to ≈ 128 KiB.
pub(crate) const CHANNEL_BATCHES: usize = 4;

/// The sending ends a backend's export task fills: the dictionary once,
/// then the batches.
pub(crate) struct ExportSender {
    /// Sent once, before the first batch.
    pub dictionary: Option<oneshot::Sender<Arc<Dictionary>>>,
    /// Batches, then an `Err` if the store fails part-way.
    pub rows: mpsc::Sender<Result<RowBatch, StoreError>>,
}

impl ExportSender {
    /// Hands the dictionary over (once); false when nobody waits for it
    /// any more.
    pub(crate) fn send_dictionary(&mut self, dictionary: Arc<Dictionary>) -> bool {
        match self.dictionary.take() {
            Some(tx) => tx.send(dictionary).is_ok(),
            None => true,
        }
    }
}

/// Where a backend's scan cuts its rows into batches: a small first batch
/// ([`FIRST_BATCH_ROWS`]), then [`BATCH_ROWS`], and an empty last batch
/// when nothing was sent, which still tells [`ExportReceiver::start`] that
/// the query ran.
pub(crate) struct Batches {
    limit: usize,
    sent_any: bool,
}

impl Batches {
    /// Room for a batch: a decoder may add a few rows past the limit.
    const CAPACITY: usize = BATCH_ROWS + 64;

    /// Nothing cut yet.
    pub(crate) fn new() -> Self {
        Self {
            limit: FIRST_BATCH_ROWS,
            sent_any: false,
        }
    }

    /// An empty batch to fill.
    pub(crate) fn batch() -> RowBatch {
        Vec::with_capacity(Self::CAPACITY)
    }

    /// The batch to send now if `batch` is full; `batch` starts afresh.
    pub(crate) fn full(&mut self, batch: &mut RowBatch) -> Option<RowBatch> {
        if batch.len() < self.limit {
            return None;
        }
        self.limit = BATCH_ROWS;
        self.sent_any = true;
        Some(std::mem::replace(batch, Self::batch()))
    }

    /// The last batch to send once the scan ended, if any.
    pub(crate) fn last(self, batch: RowBatch) -> Option<RowBatch> {
        (!batch.is_empty() || !self.sent_any).then_some(batch)
    }
}

/// The receiving ends, turned into an [`Export`] by [`ExportReceiver::start`].
pub(crate) struct ExportReceiver {
    dictionary: oneshot::Receiver<Arc<Dictionary>>,
    rows: mpsc::Receiver<Result<RowBatch, StoreError>>,
}

/// A connected sender and receiver.
pub(crate) fn export_channel() -> (ExportSender, ExportReceiver) {
    let (dtx, drx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    (
        ExportSender {
            dictionary: Some(dtx),
            rows: tx,
        },
        ExportReceiver {
            dictionary: drx,
            rows: rx,
        },
    )
}

impl ExportReceiver {
    /// Waits for the dictionary and the first batch: a store that cannot
    /// run the export at all then answers with an error status instead of
    /// a 200 followed by an aborted body.
    pub(crate) async fn start(mut self) -> Result<Export, StoreError> {
        let first = self.rows.recv().await;
        let first = match first {
            Some(Ok(first)) => first,
            Some(Err(e)) => return Err(e),
            None => return Err(StoreError::Backend("export ended without a result".into())),
        };
        let dictionary = self
            .dictionary
            .await
            .map_err(|_| StoreError::Backend("export ended without its dictionary".into()))?;
        Ok(Export {
            dictionary,
            rows: futures_util::stream::once(async { Ok(first) })
                .chain(ReceiverStream::new(self.rows))
                .boxed(),
        })
    }
}
