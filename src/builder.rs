//! [`ProductionLayer::builder()`] → [`ProductionLayerBuilder`] → [`ProductionLayer`].

use std::future::Future;
use std::sync::Arc;
#[cfg(feature = "middleware")]
use std::time::Duration;

use axum::Router;

#[cfg(feature = "broadcast")]
use crate::broadcast::{Authorizer, BroadcastConfig, Broadcaster};
use crate::config::Config;
use crate::error::{ConfigError, Error};
#[cfg(feature = "health")]
use crate::health::{Health, HealthCheck, HealthConfig};
use crate::logging::LogConfig;
#[cfg(feature = "metrics")]
use crate::metrics::{Metrics, MetricsConfig};
#[cfg(feature = "middleware")]
use crate::middleware::{CompressionConfig, CorsConfig, HttpConfig, HttpStack, RequestIdConfig};
#[cfg(feature = "ratelimit")]
use crate::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
#[cfg(feature = "redis")]
use crate::redis::{RedisConfig, RedisHandle};
use crate::shutdown::Shutdown;
#[cfg(feature = "storage")]
use crate::storage::{Storage, StorageConfig};

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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    #[cfg(feature = "middleware")]
    stack: HttpStack,
    #[cfg(feature = "redis")]
    redis: Option<RedisHandle>,
    #[cfg(feature = "health")]
    health: Health,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
    /// Where the separate metrics listener is bound, when `metrics.port` is set.
    #[cfg(feature = "metrics")]
    metrics_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "ratelimit")]
    rate_limit: Option<RateLimitLayer>,
    #[cfg(feature = "storage")]
    storage: Option<Storage>,
    #[cfg(feature = "broadcast")]
    broadcaster: Option<Broadcaster>,
    /// Exports request spans, when OTLP traces are configured.
    traces: Option<crate::logging::Traces>,
    shutdown: Shutdown,
}

impl ProductionLayer {
    /// Starts configuring: production defaults, nothing read from the environment until
    /// [`from_env`](ProductionLayerBuilder::from_env) is called.
    pub fn builder() -> ProductionLayerBuilder {
        ProductionLayerBuilder::default()
    }

    /// The middleware stack as one tower layer, for [`Router::layer`].
    #[cfg(feature = "middleware")]
    pub fn layer(&self) -> HttpStack {
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

    /// The storage disks, when storage is configured ([`ProductionLayerBuilder::storage`] or a
    /// `RUSTFORGE_STORAGE_*` variable).
    #[cfg(feature = "storage")]
    pub fn storage(&self) -> Option<&Storage> {
        self.inner.storage.as_ref()
    }

    /// The address of the separate metrics listener ([`MetricsConfig::port`]), once bound.
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
        crate::logging::build_subscriber(&self.inner.config.log, writer, self.inner.traces.as_ref())
    }

    /// Exports what telemetry is still buffered — OTLP metrics and spans — and waits for it (up
    /// to the export timeout each). Call it once the server has stopped, after
    /// `axum::serve(…).with_graceful_shutdown(…)` returns; the Prometheus endpoint and the log
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

/// Configures a [`ProductionLayer`]. Later calls win over earlier ones, so
/// `.from_env()?.cors(…)` lets code override the environment and `.cors(…).from_env()?` the
/// reverse.
#[derive(Default)]
#[must_use = "call .build().await to get the ProductionLayer"]
pub struct ProductionLayerBuilder {
    config: Config,
    #[cfg(feature = "health")]
    checks: Vec<Arc<dyn HealthCheck>>,
    #[cfg(feature = "ratelimit")]
    limiters: Vec<RateLimiter>,
    #[cfg(feature = "broadcast")]
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl std::fmt::Debug for ProductionLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductionLayerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProductionLayerBuilder {
    /// Reads the [environment variables](crate::config#environment-variables) on top of the
    /// settings so far. Each bad value is a [`ConfigError`] naming its variable.
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.from_vars(std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from explicit `(name, value)` pairs.
    pub fn from_vars<K, V>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.config.apply_vars(vars)?;
        self.config.validate()?;
        Ok(self)
    }

    /// Replaces the whole configuration (e.g. one deserialized from a file).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the logging settings (used by [`init_logging`](crate::init_logging)).
    pub fn log(mut self, log: LogConfig) -> Self {
        self.config.log = log;
        self.config
            .env_sources
            .retain(|key, _| !key.starts_with("log."));
        self
    }

    /// Replaces every middleware setting.
    #[cfg(feature = "middleware")]
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self.forget_env("http.")
    }

    /// Sets CORS.
    #[cfg(feature = "middleware")]
    pub fn cors(mut self, cors: CorsConfig) -> Self {
        self.config.http.cors = cors;
        self.forget_env("http.cors.")
    }

    /// Sets compression.
    #[cfg(feature = "middleware")]
    pub fn compression(mut self, compression: CompressionConfig) -> Self {
        self.config.http.compression = compression;
        self.forget_env("http.compression.")
    }

    /// Sets request ids.
    #[cfg(feature = "middleware")]
    pub fn request_id(mut self, request_id: RequestIdConfig) -> Self {
        self.config.http.request_id = request_id;
        self.forget_env("http.request_id.")
    }

    /// Sets the request timeout (`None`: no timeout).
    #[cfg(feature = "middleware")]
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.http.timeout = timeout;
        self.forget_env("http.timeout")
    }

    /// Sets the request body limit in bytes (`None`: no limit).
    #[cfg(feature = "middleware")]
    pub fn body_limit(mut self, bytes: Option<u64>) -> Self {
        self.config.http.body_limit = bytes.map(bytesize::ByteSize::b);
        self.forget_env("http.body_limit")
    }

    /// Uses Redis with these settings.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, redis: RedisConfig) -> Self {
        self.config.redis = Some(redis);
        self.forget_env("redis.")
    }

    /// Sets the health settings.
    #[cfg(feature = "health")]
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.config.health = health;
        self.forget_env("health.")
    }

    /// Sets the metrics settings.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: MetricsConfig) -> Self {
        self.config.metrics = metrics;
        self.forget_env("metrics.")
    }

    /// Sets the OTLP export settings (metrics push and request spans).
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, otlp: crate::otlp::OtlpConfig) -> Self {
        self.config.otlp = otlp;
        self.forget_env("otlp.")
    }

    /// Sets the rate-limit settings (global limit, store, failure policy, proxies).
    #[cfg(feature = "ratelimit")]
    pub fn rate_limit(mut self, rate_limit: RateLimitConfig) -> Self {
        self.config.rate_limit = rate_limit;
        self.forget_env("rate_limit.")
    }

    /// Adds a named limiter (`"login"`, `"api"` …), next to the global one of
    /// [`RateLimitConfig::limits`].
    #[cfg(feature = "ratelimit")]
    pub fn rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiters.push(limiter);
        self
    }

    /// Configures storage disks ([`ProductionLayer::storage`]); the default disk gets a health
    /// check and, with metrics on, operation and byte counters.
    #[cfg(feature = "storage")]
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.config.storage = Some(storage);
        self.forget_env("storage.")
    }

    /// Sets broadcasting (apps, limits, paths); on as soon as an app is configured.
    #[cfg(feature = "broadcast")]
    pub fn broadcast(mut self, broadcast: BroadcastConfig) -> Self {
        self.config.broadcast = broadcast;
        self.forget_env("broadcast.")
    }

    /// Decides who may join private and presence channels, and who a user is.
    #[cfg(feature = "broadcast")]
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Adds a health check (after the built-in ones).
    #[cfg(feature = "health")]
    pub fn health_check(mut self, check: impl HealthCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Checks the configuration and builds the layer. A configured Redis is PINGed once; when it
    /// does not answer, a warning is logged and the modules use their documented fallbacks.
    pub async fn build(self) -> Result<ProductionLayer, Error> {
        #[allow(unused_mut)]
        let mut config = self.config;
        config.validate()?;
        #[cfg(all(feature = "middleware", feature = "health"))]
        if config.health.enabled {
            // Probes poll every few seconds: no span, no log line for them.
            let health = &config.health;
            for path in [&health.live_path, &health.ready_path, &health.path] {
                config.http.trace.quiet_routes.push(path.clone());
            }
        }
        #[cfg(all(feature = "middleware", feature = "metrics"))]
        if config.metrics.serves_prometheus() {
            let path = config.metrics.path.clone();
            config.http.trace.quiet_routes.push(path);
        }
        #[cfg(all(feature = "metrics", not(feature = "otlp")))]
        let metrics = Metrics::new(&config.metrics)?;
        #[cfg(feature = "otlp")]
        let metrics =
            Metrics::with_otlp(&config.metrics, &config.otlp).map_err(|e| config.name_source(e))?;
        #[cfg(feature = "otlp")]
        let traces = config
            .otlp
            .tracer_provider(crate::metrics::resource(&config.metrics))
            .map_err(|e| config.name_source(e))?;
        #[cfg(not(feature = "otlp"))]
        let traces = None;
        #[cfg(feature = "middleware")]
        let stack = HttpStack::new(&config.http).map_err(|e| config.name_source(e))?;
        #[cfg(all(feature = "middleware", feature = "metrics"))]
        let stack = if config.metrics.enabled {
            let meter = metrics.meter(crate::metrics::SCOPE);
            stack.with_metrics(crate::metrics::HttpMetrics::new(
                &meter,
                &config.http.trace.quiet_routes,
            ))
        } else {
            stack
        };
        let shutdown = Shutdown::new();
        #[cfg(feature = "metrics")]
        let metrics_addr = match config.metrics.port {
            Some(port) if config.metrics.serves_prometheus() => {
                let routes = metrics.routes(&config.metrics.path, config.metrics.token.clone());
                Some(serve_metrics(port, routes, &shutdown).await.map_err(|e| {
                    config.name_source(ConfigError::new(
                        "metrics.port",
                        port.to_string(),
                        format!("cannot listen on it: {e}"),
                    ))
                })?)
            }
            _ => None,
        };
        #[cfg(feature = "redis")]
        let redis = match &config.redis {
            Some(redis_config) => {
                let handle = RedisHandle::connect(redis_config)?;
                if let Err(err) = handle.ping().await {
                    tracing::warn!(error = %err, "Redis did not answer at startup");
                }
                Some(handle)
            }
            None => None,
        };
        #[cfg(feature = "ratelimit")]
        let rate_limit = {
            #[cfg(feature = "redis")]
            let redis_handle = redis.as_ref();
            #[cfg(not(feature = "redis"))]
            let redis_handle: Option<&()> = None;
            crate::ratelimit::build_layer(&config, self.limiters, redis_handle)
                .map_err(|e| config.name_source(e))?
        };
        #[cfg(all(feature = "ratelimit", feature = "metrics"))]
        let rate_limit = rate_limit.map(|layer| {
            if config.metrics.enabled {
                crate::metrics::observe_rate_limits(&metrics, layer)
            } else {
                layer
            }
        });
        #[cfg(all(feature = "ratelimit", feature = "middleware"))]
        let stack = match &rate_limit {
            Some(layer) => stack.with_rate_limit(layer.clone()),
            None => stack,
        };
        #[cfg(feature = "storage")]
        let storage = match &config.storage {
            Some(storage_config) => {
                #[cfg(feature = "metrics")]
                let observer = config
                    .metrics
                    .enabled
                    .then(|| crate::metrics::storage_observer(&metrics));
                #[cfg(not(feature = "metrics"))]
                let observer = None;
                let storage = Storage::with_observer(storage_config, observer)
                    .map_err(|e| config.name_source(e))?;
                Some(storage)
            }
            None => None,
        };
        #[cfg(feature = "broadcast")]
        let broadcaster = if config.broadcast.enabled() {
            #[cfg(feature = "redis")]
            let broadcaster = match &redis {
                Some(handle) if crate::broadcast::uses_redis(&config.broadcast, true) => {
                    Broadcaster::with_redis(
                        config.broadcast.clone(),
                        self.authorizer,
                        handle.clone(),
                    )
                }
                _ => Broadcaster::new(config.broadcast.clone(), self.authorizer),
            };
            #[cfg(not(feature = "redis"))]
            let broadcaster = Broadcaster::new(config.broadcast.clone(), self.authorizer);
            let broadcaster = broadcaster.map_err(|e| config.name_source(e))?;
            // Behind trusted proxies, per-IP limits count the client, not the proxy.
            #[cfg(feature = "ratelimit")]
            let broadcaster = {
                let client_ip = config
                    .rate_limit
                    .client_ip()
                    .map_err(|e| config.name_source(e))?;
                broadcaster.with_client_ip(Box::new(move |peer, headers| {
                    client_ip.resolve(peer, headers)
                }))
            };
            #[cfg(feature = "metrics")]
            if config.metrics.enabled {
                crate::metrics::observe_broadcast(&metrics, &broadcaster);
            }
            // Shutdown closes every socket with 4200: clients reconnect to another server.
            let (closing, signal) = (broadcaster.clone(), shutdown.triggered());
            tokio::spawn(async move {
                signal.await;
                closing.shutdown().await;
            });
            Some(broadcaster)
        } else {
            None
        };
        #[cfg(feature = "health")]
        let health = {
            use crate::health::{DiskCheck, MemoryCheck};
            let h = &config.health;
            let mut health = Health::new(h.clone(), shutdown.clone());
            #[cfg(feature = "redis")]
            if let Some(redis) = &redis {
                health.add_check(Arc::new(crate::health::RedisCheck::new(redis.clone())));
            }
            if let Some(path) = &h.disk_path {
                let disk =
                    DiskCheck::new(path).thresholds(h.disk_warn_percent, h.disk_fail_percent);
                health.add_check(Arc::new(disk));
            }
            if h.memory {
                let memory =
                    MemoryCheck::default().thresholds(h.memory_warn_percent, h.memory_fail_percent);
                health.add_check(Arc::new(memory));
            }
            #[cfg(feature = "storage")]
            if let Some(storage) = &storage {
                let check = crate::storage::health_check(storage.default_disk().clone());
                health.add_check(Arc::new(check));
            }
            for check in self.checks {
                health.add_check(check);
            }
            #[cfg(feature = "metrics")]
            health.set_observer(Arc::new(crate::metrics::health_observer(&metrics)));
            if let Some(interval) = h.background_refresh {
                health.spawn_background_refresh(interval);
            }
            health
        };
        Ok(ProductionLayer {
            inner: Arc::new(Inner {
                config,
                #[cfg(feature = "middleware")]
                stack,
                #[cfg(feature = "redis")]
                redis,
                #[cfg(feature = "health")]
                health,
                #[cfg(feature = "metrics")]
                metrics,
                #[cfg(feature = "metrics")]
                metrics_addr,
                #[cfg(feature = "ratelimit")]
                rate_limit,
                #[cfg(feature = "storage")]
                storage,
                #[cfg(feature = "broadcast")]
                broadcaster,
                traces,
                shutdown,
            }),
        })
    }

    /// Code has replaced the settings under `prefix`: errors there no longer name a variable.
    #[cfg(any(
        feature = "middleware",
        feature = "redis",
        feature = "health",
        feature = "metrics",
        feature = "ratelimit",
        feature = "storage",
        feature = "broadcast"
    ))]
    fn forget_env(mut self, prefix: &str) -> Self {
        self.config
            .env_sources
            .retain(|key, _| !key.starts_with(prefix));
        self
    }
}

/// Serves the metrics routes on `0.0.0.0:port` until shutdown; returns the bound address.
#[cfg(feature = "metrics")]
async fn serve_metrics(
    port: u16,
    routes: Router,
    shutdown: &Shutdown,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let addr = listener.local_addr()?;
    let stop = shutdown.triggered();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, routes)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %err, "the metrics listener stopped");
        }
    });
    Ok(addr)
}
