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
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the checkpoint connection; the WAL will grow until restart");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    while alive.strong_count() > 0 {
        std::thread::sleep(INTERVAL);
        let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES);
        let mode = if large { "TRUNCATE" } else { "PASSIVE" };
        if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed; will retry");
        }
    }
}
