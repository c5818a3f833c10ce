//! Building and running the service: the store, the verifier, the bound
//! listener. Tests use [`Application`] directly on port 0.

use crate::auth::jwks::RemoteJwks;
use crate::auth::local::LocalIssuer;
use crate::auth::Verifier;
use crate::config::Settings;
use crate::http::download::{Admission, DownloadRate};
use crate::http::{self, AppState};
use crate::listener::{self, ConnectionLimits};
use crate::privacy::Retention;
use crate::store::{self, Store};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    connections: ConnectionLimits,
    grace: Duration,
    /// Runs as long as the application does.
    retention: Option<Retention>,
}

impl Application {
    /// Opens the configured store, then builds as [`Application::build_with_store`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = store::open_for_serving(
            settings.database_url.as_deref(),
            &settings.data_dir,
            settings.database_pool_size,
        )
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
        let listener = bind(settings.bind).await?;
        Self::build_on(settings, store, listener).await
    }

    /// Builds around a store and a listener bound beforehand (`demo` binds
    /// first, so a busy port fails before any data is made).
    pub async fn build_on(
        settings: &Settings,
        store: Arc<dyn Store>,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        crate::metrics::install();
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
        let rate = settings
            .limits
            .downloads_per_minute_per_org
            .and_then(std::num::NonZeroU32::new)
            .map(|n| DownloadRate::new(n, store.shared_rate_limiter()));
        let public_url = match &settings.public_url {
            Some(url) => url.clone(),
            None => default_public_url(listener.local_addr()?),
        };
        let retention = Retention::spawn(Arc::clone(&store), settings.retention.clone());
        let state = AppState {
            store,
            verifier,
            local_issuer,
            admin_page: Arc::new(http::PageConfig::from_settings(settings)),
            downloads: Arc::new(Admission::new(
                downloads,
                settings.limits.download_queue_wait,
                rate,
            )),
            body_stall_timeout: settings.limits.body_stall_timeout,
            public_url,
        };
        Ok(Self {
            listener,
            router: http::router(state),
            connections: ConnectionLimits::from(&settings.limits),
            grace: Duration::from_secs(settings.limits.shutdown_grace_secs),
            retention,
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
        let _retention = self.retention;
        listener::serve(
            self.listener,
            self.router,
            self.connections,
            shutdown,
            self.grace,
        )
        .await
    }
}

/// Binds the listen address; a busy port's error says how to pick another.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "address already in use; stop the process listening there or choose \
                 another address, e.g. --bind 127.0.0.1:0 for any free port"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this machine has that address; use 127.0.0.1 or 0.0.0.0"
            }
            _ => return anyhow::Error::new(e).context(format!("cannot listen on {addr}")),
        };
        anyhow::anyhow!("cannot listen on {addr}: {reason}")
    })
}

/// `http://ADDR` of the bound address, with a wildcard address (`0.0.0.0`,
/// `::`) replaced by loopback: the best guess without `--public-url`.
fn default_public_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
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

/// Completes on SIGINT or SIGTERM. The handlers are installed by this
/// call, not when the future is first polled: call it before announcing
/// the address, so that a signal sent right after the announcement stops
/// the service gracefully instead of killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminated = async {
                match terminate.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupted => {},
                () = terminated => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_public_url_comes_from_the_bound_address() {
        let url = |a: &str| super::default_public_url(a.parse().unwrap());
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
    }
}
