//! Logging set-up: human-readable lines on stderr (stdout is kept for what
//! commands print for people and scripts: addresses, tokens, summaries).

use tracing_subscriber::EnvFilter;

/// Targets whose debug output carries personal data, capped at info.
const PERSONAL_DATA_CAP: &str = "tokio_postgres=info";

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`.
pub fn init(default_filter: &str) {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Below info, the PostgreSQL driver logs statement parameters: emails
    // and user ids. No setting may turn that on (docs/privacy.md).
    if let Ok(cap) = PERSONAL_DATA_CAP.parse() {
        filter = filter.add_directive(cap);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
