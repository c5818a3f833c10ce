//! `catalytics serve`

use super::ServeArgs;
use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

/// Builds the application, prints the bound address on its own line and
/// serves until SIGINT/SIGTERM.
pub async fn run(mut settings: Settings, args: &ServeArgs) -> anyhow::Result<()> {
    args.apply(&mut settings);
    tracing::debug!(?settings, "settings");
    let app = Application::build(&settings).await?;
    let shutdown = shutdown_signal();
    let addr = app.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("{addr}");
    app.run_until(shutdown).await?;
    Ok(())
}
