//! The log sink is best effort: logging must never panic, block or stop
//! the service, whatever happens to stderr (a full disk, a closed pipe, a
//! reader that stopped reading).
//!
//! Two layers, composable with any formatter:
//! - [`BestEffort`] wraps the real writer: a failed write is counted and
//!   swallowed, never returned (the formatter would report it by printing
//!   to stderr, which panics when stderr is what failed); the next line is
//!   tried again, and the first that gets through is followed by a warning
//!   saying how many were lost.
//! - `tracing_appender`'s lossy non-blocking writer in front of it: lines
//!   go through a bounded queue to a writer thread, so a sink that blocks
//!   costs dropped lines (also counted), never a blocked request.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines queued for the writer thread before new ones are dropped.
const QUEUED_LINES: usize = 16_384;

/// Lines whose write failed.
static FAILED_LINES: AtomicU64 = AtomicU64::new(0);
/// Lines dropped because the queue was full.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines lost since start: failed writes plus lines dropped while the
/// sink could not keep up. For metrics and tests.
pub fn lost_lines() -> u64 {
    FAILED_LINES.load(Ordering::Relaxed) + DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// A writer that never fails: errors are counted, and the first success
/// after a run of failures logs how many lines were lost.
pub struct BestEffort<W> {
    inner: W,
    lost_in_run: u64,
}

/// Set while the recovery warning is being written, so that it does not
/// report itself.
static REPORTING: AtomicBool = AtomicBool::new(false);

impl<W: Write> BestEffort<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            lost_in_run: 0,
        }
    }
}

impl<W: Write> Write for BestEffort<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write_all(buf) {
            Ok(()) => {
                if self.lost_in_run > 0 && !REPORTING.swap(true, Ordering::Relaxed) {
                    let lost = std::mem::take(&mut self.lost_in_run);
                    // Through the subscriber, so it has the configured
                    // format; it comes back here through the queue.
                    tracing::warn!(lost, "log sink recovered; lines were lost while it failed");
                    REPORTING.store(false, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.lost_in_run += 1;
                FAILED_LINES.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.inner.flush();
        Ok(())
    }
}

/// Standard error behind both layers, and the guard that flushes the
/// queue when dropped (keep it until the process ends).
pub fn stderr() -> (NonBlocking, WorkerGuard) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(BestEffort::new(std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    (writer, guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails while `broken` is set, records what it got otherwise.
    struct Flaky {
        broken: bool,
        got: Vec<u8>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.broken {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn failures_are_counted_and_swallowed_and_writing_resumes() {
        let before = FAILED_LINES.load(Ordering::Relaxed);
        let mut w = BestEffort::new(Flaky {
            broken: true,
            got: Vec::new(),
        });
        assert_eq!(w.write(b"one\n").unwrap(), 4);
        assert_eq!(w.write(b"two\n").unwrap(), 4);
        assert!(w.flush().is_ok());
        assert!(FAILED_LINES.load(Ordering::Relaxed) >= before + 2);
        w.inner.broken = false;
        w.write_all(b"three\n").unwrap();
        assert_eq!(w.inner.got, b"three\n");
        assert_eq!(w.lost_in_run, 0);
    }
}
