//! Logging set-up: human-readable lines on stderr (stdout is kept for what
//! commands print for people and scripts: addresses, tokens, summaries),
//! through a best-effort sink (see [`sink`]) so that a failing log never
//! costs a request.

pub mod sink;

use tracing_subscriber::EnvFilter;

/// Keeps the log writer thread running; dropping it flushes queued lines.
/// Hold it until the process ends.
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`.
pub fn init(default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = sink::stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // A failed write is the sink's business (counted, retried); the
        // formatter's own report would go to stderr and panic there.
        .log_internal_errors(false)
        .try_init();
    LogGuard { _writer: guard }
}
