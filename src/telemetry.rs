//! Logging set-up: lines on stderr (stdout is kept for what commands print
//! for people and scripts: addresses, tokens, summaries), human-readable
//! text or JSON lines for collectors, ANSI colours only when stderr is a
//! terminal (so a log file or a journal never holds escape codes), all
//! through a best-effort sink (see [`sink`]) so that a failing log never
//! costs a request.
//!
//! What goes into log lines is decided where they are written: ids (org,
//! user, request), never tokens, emails or database passwords.

pub mod sink;

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `span`, `spans`).
    Json,
}

/// Keeps the log writer thread running; dropping it flushes queued lines.
/// Hold it until the process ends.
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`.
pub fn init(default_filter: &str, format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = sink::stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // A failed write is the sink's business (counted, retried); the
        // formatter's own report would go to stderr and panic there.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    LogGuard { _writer: guard }
}
