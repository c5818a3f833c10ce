//! The shape of one exported row, shared by every backend and the CSV encoder.

use super::StoreError;
use crate::domain::{EventKind, Timestamp};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// One CSV row, column for column (see `docs/api.md`). Optional columns are
/// `None` when empty.
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

/// Rows travel in batches so that channel and encoder costs are amortised.
pub type RowBatch = Vec<ExportRow>;

/// The export stream: batches in order, an `Err` item if the store fails
/// part-way, and nothing after an error.
pub type RowStream = BoxStream<'static, Result<RowBatch, StoreError>>;

/// Turns the receiving end of a backend's export channel into a
/// [`RowStream`], after waiting for its first item: a store that cannot run
/// the query at all then answers with an error status instead of a 200
/// followed by an aborted body.
pub async fn stream_after_first(
    mut rx: mpsc::Receiver<Result<RowBatch, StoreError>>,
) -> Result<RowStream, StoreError> {
    match rx.recv().await {
        Some(Ok(first)) => Ok(futures_util::stream::once(async { Ok(first) })
            .chain(ReceiverStream::new(rx))
            .boxed()),
        Some(Err(e)) => Err(e),
        None => Err(StoreError::Backend("export ended without a result".into())),
    }
}
