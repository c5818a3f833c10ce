//! `catalytics serve`

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

/// Builds the application, prints the bound address on its own line and
/// serves until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    tracing::debug!(?settings, "settings");
    let app = Application::build(&settings).await?;
    let addr = app.local_addr()?;
    let shutdown = shutdown_signal();
    tracing::info!(%addr, "listening");
    println!("{addr}");
    app.run_until(shutdown).await?;
    Ok(())
}
