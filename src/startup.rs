//! Building and running the service: the store, the verifier, the bound
//! listener. Tests use [`Application`] directly on port 0.

use crate::auth::jwks::RemoteJwks;
use crate::auth::local::LocalIssuer;
use crate::auth::Verifier;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::store::{self, Store};
use anyhow::Context;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
}

impl Application {
    /// Opens the configured store, then builds as [`Application::build_with_store`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = store::open(settings.database_url.as_deref(), &settings.data_dir)
            .await
            .context("cannot open the store")?;
        Self::build_with_store(settings, store).await
    }

    /// Builds around an existing store (tests wrap stores to inject faults)
    /// and binds the listener.
    pub async fn build_with_store(
        settings: &Settings,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let (verifier, local_issuer) = authentication(settings).await?;
        let mut downloads = settings.limits.max_concurrent_downloads.max(1);
        if let Some(cap) = store
            .max_concurrent_exports()
            .filter(|cap| *cap < downloads)
        {
            tracing::info!(
                configured = downloads,
                cap,
                "download limit capped at what the store's connection pool allows"
            );
            downloads = cap;
        }
        let state = AppState {
            store,
            verifier,
            local_issuer,
            admin_page: Arc::new(http::PageConfig::from_settings(settings)),
            download_slots: Arc::new(Semaphore::new(downloads)),
            download_rate: settings
                .limits
                .downloads_per_minute_per_org
                .and_then(std::num::NonZeroU32::new)
                .map(|n| Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))),
        };
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        Ok(Self {
            listener,
            router: http::router(state),
            grace: Duration::from_secs(settings.limits.shutdown_grace_secs),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish
    /// for up to the grace period and cuts the rest (an unfinished download
    /// ends without its terminating chunk, so clients see the cut).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (signal_tx, signal_rx) = tokio::sync::watch::channel(false);
        let mut graceful_rx = signal_rx.clone();
        let server = axum::serve(self.listener, self.router.into_make_service())
            .with_graceful_shutdown(async move {
                let _ = graceful_rx.wait_for(|stop| *stop).await;
            });
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            result = &mut server => return result,
            () = shutdown => {}
        }
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "shutting down; letting in-flight requests finish"
        );
        let _ = signal_tx.send(true);
        match tokio::time::timeout(self.grace, server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("grace period over; cutting remaining connections");
                Ok(())
            }
        }
    }
}

/// Local mode when no issuer is configured, issuer mode otherwise.
async fn authentication(
    settings: &Settings,
) -> anyhow::Result<(Verifier, Option<Arc<LocalIssuer>>)> {
    let auth = settings.auth.clone();
    match auth.issuer.clone() {
        None => {
            let (issuer, created) = LocalIssuer::load_or_create(&settings.data_dir)?;
            let verb = if created { "created" } else { "using" };
            tracing::warn!(
                key = %settings.data_dir.join(crate::auth::local::KEY_FILE).display(),
                "LOCAL MODE: no issuer configured; {verb} this service's own signing key. \
                 Tokens come from `catalytics token`. Configure an issuer for production."
            );
            let verifier = Verifier::local(auth, &issuer);
            Ok((verifier, Some(Arc::new(issuer))))
        }
        Some(issuer) => {
            let jwks = RemoteJwks::new(
                &issuer,
                auth.jwks_uri.as_deref(),
                Duration::from_secs(auth.jwks_refresh_interval_secs),
            )?;
            match jwks.prefetch().await {
                Ok(n) => tracing::info!(%issuer, keys = n, "issuer mode"),
                Err(e) => {
                    tracing::warn!(%issuer, error = %e, "issuer keys not reachable yet; will retry on demand")
                }
            }
            Ok((Verifier::remote(auth, issuer, jwks), None))
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
