//! The store's error type: what went wrong, in terms the HTTP layer can map
//! (unavailable → 503, everything else → 500) and the log can explain.

/// A storage failure. The message is for logs only, never for response bodies.
/// `Clone` so that one failed group commit can answer each of its callers
/// with the same kind of error (503 stays 503).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The configuration names a store that cannot be used.
    #[error("store configuration: {0}")]
    Config(String),
    /// Stored data violates an invariant the service relies on.
    #[error("store data is inconsistent: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// The variant's name, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Config(_) => "config",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Backend(_) => "backend",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            // The store cannot take writes right now but may again without
            // any change to the service: locked, full, read-only, I/O
            // failing, file not openable.
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Backend(format!("store task failed: {e}"))
    }
}
