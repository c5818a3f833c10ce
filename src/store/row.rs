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
