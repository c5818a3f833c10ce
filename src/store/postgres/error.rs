//! How PostgreSQL failures become [`StoreError`]s: an unreachable or
//! restarting server is `Unavailable` (HTTP 503, retried by clients),
//! everything else is `Backend`. Messages are for logs only; neither the
//! driver nor these conversions include the connection password.

use crate::store::StoreError;
use deadpool_postgres::{BuildError, PoolError};
use tokio_postgres::error::SqlState;

/// SQLSTATEs that mean "the server is not there right now" rather than
/// "this request is wrong": shutting down, starting up, out of connection
/// slots, the database not created yet, its disk full, or a server that
/// only reads (a standby, or a primary put read-only).
const UNAVAILABLE_STATES: [&SqlState; 8] = [
    &SqlState::ADMIN_SHUTDOWN,
    &SqlState::CRASH_SHUTDOWN,
    &SqlState::CANNOT_CONNECT_NOW,
    &SqlState::TOO_MANY_CONNECTIONS,
    &SqlState::INVALID_CATALOG_NAME,
    &SqlState::IDLE_SESSION_TIMEOUT,
    &SqlState::DISK_FULL,
    &SqlState::READ_ONLY_SQL_TRANSACTION,
];

/// Whether `e` says the database cannot be reached (as opposed to refusing
/// this particular statement).
pub(super) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08: connection exceptions.
        Some(code) => code.code().starts_with("08") || UNAVAILABLE_STATES.contains(&code),
        // No SQLSTATE: the failure happened below SQL, in connecting or
        // in the socket, or the connect timeout fired.
        None => {
            let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
            io || e.to_string().starts_with("timeout")
        }
    }
}

/// SQLSTATEs that mean "this server will not let this URL in" — no such
/// database, no such role, wrong password — which waiting cannot fix.
const REFUSAL_STATES: [&SqlState; 3] = [
    &SqlState::INVALID_CATALOG_NAME,
    &SqlState::INVALID_PASSWORD,
    &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
];

/// Whether connecting failed because the server refused the URL's
/// database, role or password (as opposed to not being there yet).
pub(super) fn is_refusal(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| REFUSAL_STATES.contains(&c))
}

/// The server's own words for a refusal, e.g. `database "x" does not exist`.
pub(super) fn refusal_reason(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| describe(e), |db| db.message().to_owned())
}

/// Whether a transaction that failed with `e` may simply be run again:
/// it lost a serialization check or was chosen as a deadlock victim.
pub(super) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The error and its causes, for the log: the driver's own message is only
/// its category ("db error", "error connecting to server"), the server's
/// message or the OS error is in the cause.
pub(super) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = format!("PostgreSQL: {}", describe(&e));
        if is_unavailable(&e) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(kind) => {
                StoreError::Unavailable(format!("PostgreSQL connection pool timed out ({kind:?})"))
            }
            PoolError::Closed => {
                StoreError::Unavailable("PostgreSQL connection pool closed".into())
            }
            other => StoreError::Backend(format!("PostgreSQL connection pool: {other}")),
        }
    }
}

impl From<BuildError> for StoreError {
    fn from(e: BuildError) -> Self {
        StoreError::Config(format!("PostgreSQL connection pool: {e}"))
    }
}
