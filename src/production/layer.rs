//! [`ProductionLayer`]: what `build()` hands out — the layer, the routes, the modules' handles.

use std::future::Future;
use std::sync::Arc;

use axum::Router;

#[cfg(feature = "broadcast")]
use crate::broadcast::Broadcaster;
#[cfg(feature = "cache")]
use crate::cache::Cache;
use crate::config::Config;
use crate::error::{ConfigError, Error};
#[cfg(feature = "health")]
use crate::health::Health;
#[cfg(feature = "metrics")]
use crate::metrics::Metrics;
#[cfg(feature = "middleware")]
use crate::middleware::{HttpService, HttpServiceLike};
#[cfg(feature = "ratelimit")]
use crate::ratelimit::RateLimitLayer;
#[cfg(feature = "redis")]
use crate::redis::RedisHandle;
use crate::shutdown::Shutdown;
#[cfg(feature = "storage")]
use crate::storage::Storage;

use super::ProductionLayerBuilder;
#[cfg(feature = "middleware")]
use super::ProductionStack;

/// Everything the crate adds to an axum app: the middleware [`layer`](Self::layer), the
/// [`routes`](Self::routes), handles to the enabled modules and the shutdown signal.
///
/// Cheap to clone (one `Arc`).
///
/// ```
/// use axum::{Router, routing::get};
/// use rustforge_prod::ProductionLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustforge_prod::Error> {
/// let prod = ProductionLayer::builder().build().await?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .merge(prod.routes())
///     .layer(prod.layer());
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ProductionLayer {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) config: Config,
    #[cfg(feature = "middleware")]
    pub(super) stack: ProductionStack,
    #[cfg(feature = "redis")]
    pub(super) redis: Option<RedisHandle>,
    #[cfg(feature = "health")]
    pub(super) health: Health,
    #[cfg(feature = "metrics")]
    pub(super) metrics: Metrics,
    /// Where the separate metrics listener is bound, when `metrics.port` is set.
    #[cfg(feature = "metrics")]
    pub(super) metrics_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "ratelimit")]
    pub(super) rate_limit: Option<RateLimitLayer>,
    #[cfg(feature = "storage")]
    pub(super) storage: Option<Storage>,
    #[cfg(feature = "broadcast")]
    pub(super) broadcaster: Option<Broadcaster>,
    #[cfg(feature = "cache")]
    pub(super) cache: Cache,
    #[cfg(feature = "session")]
    pub(super) session: crate::session::SessionLayer,
    #[cfg(feature = "sqlx-postgres")]
    pub(super) database: Option<crate::database::Database>,
    /// Exports request spans, when OTLP traces are configured.
    #[cfg(feature = "otlp")]
    pub(super) traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    pub(super) shutdown: Shutdown,
}

impl ProductionLayer {
    /// Starts configuring: production defaults, nothing read from the environment until
    /// [`from_env`](ProductionLayerBuilder::from_env) is called.
    pub fn builder() -> ProductionLayerBuilder {
        ProductionLayerBuilder::default()
    }

    /// The middleware stack as one tower layer, for [`Router::layer`]. `ProductionLayer` is
    /// that layer too: `.layer(prod.clone())` does the same.
    #[cfg(feature = "middleware")]
    pub fn layer(&self) -> ProductionStack {
        self.inner.stack.clone()
    }

    /// The crate's routes, to [`Router::merge`] into the app: the health routes (`/health/live`,
    /// `/health/ready`, `/health`) when the `health` feature is on, `/metrics`, and the storage
    /// signed-URL route (`/storage/{disk}/{*path}`) when storage is configured.
    pub fn routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        #[allow(unused_mut)]
        let mut router = Router::new();
        #[cfg(feature = "health")]
        if self.inner.config.health.enabled {
            router = router.merge(self.inner.health.routes());
        }
        #[cfg(feature = "metrics")]
        if self.inner.config.metrics.serves_prometheus() && self.inner.metrics_addr.is_none() {
            let config = &self.inner.config.metrics;
            router = router.merge(
                self.inner
                    .metrics
                    .routes(&config.path, config.token.clone()),
            );
        }
        #[cfg(feature = "storage")]
        if let Some(storage) = &self.inner.storage {
            router = router.merge(storage.routes());
        }
        #[cfg(feature = "broadcast")]
        if let Some(broadcaster) = &self.inner.broadcaster {
            router = router.merge(broadcaster.routes());
        }
        router
    }

    /// The broadcaster, when an app is configured ([`ProductionLayerBuilder::broadcast`] or
    /// `PUSHER_APP_ID`/`PUSHER_APP_KEY`/`PUSHER_APP_SECRET`).
    #[cfg(feature = "broadcast")]
    pub fn broadcaster(&self) -> Option<&Broadcaster> {
        self.inner.broadcaster.as_ref()
    }

    /// The cache: on Redis when Redis is configured, in this process otherwise
    /// (`RUSTFORGE_CACHE_*`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rustforge_prod::Error> {
    /// let prod = rustforge_prod::ProductionLayer::builder().build().await?;
    /// let cache = prod.cache();
    /// let hits = cache.increment("hits", 1).await.expect("the memory store does not fail");
    /// assert_eq!(hits, 1);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cache")]
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The session layer, for the routes that use sessions (`.layer(prod.session_layer())`):
    /// on Redis when Redis is configured, in this process otherwise (`RUSTFORGE_SESSION_*`).
    /// Apply it to your routes only — probes and scrapes need no session.
    #[cfg(feature = "session")]
    pub fn session_layer(&self) -> crate::session::SessionLayer {
        self.inner.session.clone()
    }

    /// Ends users' sessions on every server sharing the session store
    /// ([`Sessions`](crate::session::Sessions)): "log out other devices".
    #[cfg(feature = "session")]
    pub fn sessions(&self) -> crate::session::Sessions {
        self.inner.session.sessions()
    }

    /// The CSRF layer for the session routes ([`CsrfLayer`](crate::session::CsrfLayer)): the
    /// `XSRF-TOKEN` cookie on every response, the token required back on every other method
    /// than `GET`, `HEAD`, `OPTIONS` and `TRACE`. Apply it inside
    /// [`session_layer`](Self::session_layer).
    #[cfg(feature = "session")]
    pub fn csrf_layer(&self) -> crate::session::CsrfLayer {
        self.inner.session.csrf_layer()
    }

    /// The PostgreSQL pool, when `DATABASE_URL` (or
    /// [`database`](ProductionLayerBuilder::database)) is set.
    #[cfg(feature = "sqlx-postgres")]
    pub fn database(&self) -> Option<&crate::database::Database> {
        self.inner.database.as_ref()
    }

    /// The storage disks, when storage is configured ([`ProductionLayerBuilder::storage`] or a
    /// `RUSTFORGE_STORAGE_*` variable).
    #[cfg(feature = "storage")]
    pub fn storage(&self) -> Option<&Storage> {
        self.inner.storage.as_ref()
    }

    /// The address of the separate metrics listener ([`MetricsConfig::port`](crate::metrics::MetricsConfig::port)), once bound.
    #[cfg(feature = "metrics")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.metrics_addr
    }

    /// The metrics handle: meters for the application's own instruments, rendering.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The health handle: readiness state, reports, [`Health::startup_complete`].
    #[cfg(feature = "health")]
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The rate-limit layer, when limits are configured. It is already part of
    /// [`layer`](Self::layer); use this handle to apply it on its own (e.g. as a `route_layer`
    /// behind authentication) or to reach its store.
    #[cfg(feature = "ratelimit")]
    pub fn rate_limit(&self) -> Option<&RateLimitLayer> {
        self.inner.rate_limit.as_ref()
    }

    /// The configuration the layer was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The shared Redis handle, when Redis is configured.
    #[cfg(feature = "redis")]
    pub fn redis(&self) -> Option<&RedisHandle> {
        self.inner.redis.as_ref()
    }

    /// Installs the global `tracing` subscriber: [`init_logging`](crate::init_logging) with
    /// [`Config::log`], plus, when OTLP traces are configured (feature `otlp`), one exported
    /// span per request carrying the ids of its log lines. Keep the guard until the end of
    /// `main`.
    pub fn init_logging(&self) -> Result<crate::LogGuard, Error> {
        crate::logging::install(|writer| self.subscriber(writer))
    }

    /// The subscriber [`init_logging`](Self::init_logging) installs, writing to any `writer`
    /// (for tests, or to write to a file).
    pub fn subscriber<W>(
        &self,
        writer: W,
    ) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, ConfigError>
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        #[cfg(feature = "otlp")]
        let spans = self.inner.traces.as_ref().map(|traces| {
            Box::new(crate::otlp::layer::<tracing_subscriber::Registry>(traces))
                as crate::logging::SpanLayer
        });
        #[cfg(not(feature = "otlp"))]
        let spans = None;
        crate::logging::build_subscriber(&self.inner.config.log, writer, spans)
    }

    /// Exports what telemetry is still buffered — OTLP metrics and spans — and waits for it (up
    /// to the export timeout each). Call it once the server has stopped, after
    /// `axum::serve(…).with_graceful_shutdown(…)` returns ([`serve`](crate::serve) calls it
    /// itself); the Prometheus endpoint and the log
    /// writer need nothing.
    pub async fn flush(&self) {
        let this = self.clone();
        // The SDK blocks while exporting: off the async workers. Failures are logged here, in
        // the caller's context.
        let flushed = tokio::task::spawn_blocking(move || {
            #[allow(unused_mut)]
            let mut failed: Vec<(&str, String)> = Vec::new();
            #[cfg(feature = "metrics")]
            if let Err(err) = this.inner.metrics.flush() {
                failed.push(("could not push metrics", err.to_string()));
            }
            #[cfg(feature = "otlp")]
            if let Some(Err(err)) = this.inner.traces.as_ref().map(|t| t.force_flush()) {
                failed.push(("could not export spans", err.to_string()));
            }
            #[cfg(not(feature = "otlp"))]
            let _ = this;
            failed
        });
        for (message, error) in flushed.await.unwrap_or_default() {
            tracing::warn!(error, "{message}");
        }
    }

    /// The shutdown flag shared by the modules.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// Resolves on SIGINT/SIGTERM or [`Shutdown::trigger`], after
    /// [`Config::shutdown_drain`] (`RUSTFORGE_SHUTDOWN_DRAIN`): pass it to axum's
    /// `with_graceful_shutdown`. Readiness answers 503 from the signal on.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner
            .shutdown
            .signal_with_drain(self.inner.config.shutdown_drain)
    }
}

/// `ProductionLayer` is the same layer as [`ProductionLayer::layer`].
#[cfg(feature = "middleware")]
impl<S: HttpServiceLike> tower::Layer<S> for ProductionLayer {
    type Service = HttpService;

    fn layer(&self, inner: S) -> HttpService {
        self.inner.stack.layer(inner)
    }
}
