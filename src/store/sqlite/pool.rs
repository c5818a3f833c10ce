//! A small pool of read-only SQLite connections.
//!
//! Written by hand because the maintained SQLite pools either wrap every
//! call in an async closure (deadpool-sqlite), which cannot lend a
//! connection to a long-running blocking export loop, or pin an older
//! rusqlite (r2d2_sqlite). This one only recycles idle connections; how many
//! are busy at once is bounded by the HTTP layer's download limit.

use rusqlite::{Connection, OpenFlags};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle connections kept for reuse; more may be open while busy.
const MAX_IDLE: usize = 16;

/// Page cache of each reader: 256 KiB (SQLite's negative `cache_size` is KiB).
/// Small on purpose: the export is one forward range scan, which the
/// operating system's page cache serves as well, and the names come from
/// the dictionary cache; a large private cache per connection would make
/// memory grow with concurrent downloads (16 MiB each at the old setting).
const READER_CACHE_KIB: i64 = -256;

/// Hands out read-only connections to the database file.
#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    /// A pool for the database at `path` (opened lazily).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Arc::default(),
        }
    }

    /// A connection, reused when one is idle. Blocking: call from a blocking thread.
    pub fn get(&self) -> rusqlite::Result<PooledConnection> {
        let reused = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let conn = match reused {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        Ok(PooledConnection {
            conn: Some(conn),
            idle: Arc::clone(&self.idle),
        })
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    Ok(conn)
}

/// A borrowed connection, returned to the pool on drop.
pub struct PooledConnection {
    conn: Option<Connection>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // `conn` is only taken in `drop`.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("connection used after drop"))
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("connection used after drop"))
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.idle.lock()) {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}
