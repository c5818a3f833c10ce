//! WAL checkpoints on a background thread.
//!
//! By default SQLite's committing connection copies the WAL back into the
//! database file every 1,000 pages, inside the commit that crossed the line,
//! so an unlucky ingestion batch pays for everyone's checkpoint. Here the
//! writer's automatic checkpoints are off and this thread runs passive
//! checkpoints (which never block the writer or readers) on the other core.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the WAL is copied back.
const INTERVAL: Duration = Duration::from_millis(200);
/// Under continuous writes a passive checkpoint never finds the WAL idle
/// enough to restart it, so past this size the checkpointer briefly waits
/// for the writer and truncates it.
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Keeps the checkpointer running; it stops when every clone is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: Arc<()>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`.
    pub fn spawn(path: PathBuf) -> std::io::Result<Self> {
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&path, &weak))?;
        Ok(Self { _alive: alive })
    }
}

fn run(path: &Path, alive: &Weak<()>) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut conn: Option<Connection> = None;
    // Failures are logged when they start and when they end, not every
    // interval: a full disk would otherwise flood the log.
    let mut failing = false;
    while alive.strong_count() > 0 {
        std::thread::sleep(INTERVAL);
        let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES);
        let mode = if large { "TRUNCATE" } else { "PASSIVE" };
        let result = checkpoint(&mut conn, path, mode);
        match (&result, failing) {
            (Err(e), false) => {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed; retrying until it works");
                failing = true;
            }
            (Ok(()), true) => {
                tracing::info!("WAL checkpoints work again");
                failing = false;
            }
            _ => {}
        }
        if result.is_err() {
            // Start afresh next time (the file may have been replaced or
            // its permissions changed).
            conn = None;
        }
    }
}

/// One checkpoint, opening the connection first when there is none.
fn checkpoint(conn: &mut Option<Connection>, path: &Path, mode: &str) -> rusqlite::Result<()> {
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let fresh = Connection::open(path)?;
            fresh.busy_timeout(Duration::from_secs(5))?;
            conn.insert(fresh)
        }
    };
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
}
