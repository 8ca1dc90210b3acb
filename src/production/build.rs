//! `build()`: one step per module, in the order their handles are needed.

use std::sync::Arc;

#[cfg(feature = "metrics")]
use axum::Router;

#[cfg(feature = "broadcast")]
use crate::broadcast::{Authorizer, Broadcaster};
#[cfg(feature = "cache")]
use crate::cache::Cache;
use crate::config::Config;
// Not every feature set has a build step that can fail.
#[allow(unused_imports)]
use crate::error::{ConfigError, Error};
#[cfg(feature = "health")]
use crate::health::{Health, HealthCheck};
#[cfg(feature = "metrics")]
use crate::metrics::Metrics;
#[cfg(feature = "middleware")]
use crate::middleware::HttpStack;
#[cfg(feature = "ratelimit")]
use crate::ratelimit::{RateLimitLayer, RateLimiter};
#[cfg(feature = "redis")]
use crate::redis::RedisHandle;
use crate::shutdown::Shutdown;
#[cfg(feature = "storage")]
use crate::storage::Storage;

use super::ProductionLayerBuilder;
#[cfg(feature = "middleware")]
use super::ProductionStack;
use super::layer::{Inner, ProductionLayer};

/// The OTLP span exporter, when traces are configured.
#[cfg(feature = "otlp")]
type Traces = Option<opentelemetry_sdk::trace::SdkTracerProvider>;

impl ProductionLayerBuilder {
    /// Checks the configuration and builds the layer. A configured Redis is PINGed once; when it
    /// does not answer, a warning is logged and the modules use their documented fallbacks.
    pub async fn build(self) -> Result<ProductionLayer, Error> {
        let mut config = self.config;
        config.validate()?;
        quiet_routes(&mut config);
        let shutdown = Shutdown::new();
        #[cfg(feature = "metrics")]
        let metrics = metrics(&config)?;
        #[cfg(feature = "otlp")]
        let traces = traces(&config)?;
        #[cfg(feature = "metrics")]
        let metrics_addr = metrics_listener(&config, &metrics, &shutdown).await?;
        #[cfg(feature = "redis")]
        let redis = redis(
            &config,
            #[cfg(feature = "metrics")]
            &metrics,
        )
        .await?;
        #[cfg(feature = "ratelimit")]
        let rate_limit = rate_limit(
            &config,
            self.limiters,
            #[cfg(feature = "redis")]
            redis.as_ref(),
            #[cfg(feature = "metrics")]
            &metrics,
        )?;
        #[cfg(feature = "middleware")]
        let stack = stack(
            &config,
            #[cfg(feature = "ratelimit")]
            rate_limit.clone(),
            #[cfg(feature = "metrics")]
            &metrics,
            #[cfg(feature = "otlp")]
            &traces,
        )?;
        #[cfg(feature = "storage")]
        let storage = storage(
            &config,
            #[cfg(feature = "metrics")]
            &metrics,
        )?;
        #[cfg(feature = "broadcast")]
        let broadcaster = broadcaster(
            &config,
            self.authorizer,
            #[cfg(feature = "redis")]
            redis.as_ref(),
            #[cfg(feature = "metrics")]
            &metrics,
            &shutdown,
        )?;
        #[cfg(feature = "cache")]
        let cache = cache(
            &config,
            #[cfg(feature = "redis")]
            redis.as_ref(),
            #[cfg(feature = "metrics")]
            &metrics,
        )?;
        #[cfg(feature = "session")]
        let session = session(
            &config,
            #[cfg(feature = "redis")]
            redis.as_ref(),
            #[cfg(feature = "metrics")]
            &metrics,
        )?;
        #[cfg(feature = "sqlx-postgres")]
        let database = database(
            &config,
            #[cfg(feature = "metrics")]
            &metrics,
        )?;
        #[cfg(feature = "health")]
        let health = {
            let mut checks = store_checks(
                &config,
                #[cfg(feature = "storage")]
                storage.as_ref(),
                #[cfg(feature = "sqlx-postgres")]
                database.as_ref(),
                #[cfg(feature = "cache")]
                &cache,
            );
            checks.extend(self.checks);
            health(
                &config,
                checks,
                &shutdown,
                #[cfg(feature = "redis")]
                redis.as_ref(),
                #[cfg(feature = "metrics")]
                &metrics,
            )
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
                #[cfg(feature = "cache")]
                cache,
                #[cfg(feature = "session")]
                session,
                #[cfg(feature = "sqlx-postgres")]
                database,
                #[cfg(feature = "otlp")]
                traces,
                shutdown,
            }),
        })
    }
}

/// Probes and scrapes poll every few seconds: no span and no log line for their routes.
fn quiet_routes(config: &mut Config) {
    #[cfg(all(feature = "middleware", feature = "health"))]
    if config.health.enabled {
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
    let _ = config;
}

/// The meter provider: Prometheus, and an OTLP push reader when configured.
#[cfg(feature = "metrics")]
fn metrics(config: &Config) -> Result<Metrics, ConfigError> {
    #[cfg(feature = "otlp")]
    let push = config
        .otlp
        .metric_reader()
        .map_err(|e| config.name_source(e))?;
    #[cfg(not(feature = "otlp"))]
    let push = None::<opentelemetry_sdk::metrics::ManualReader>;
    Metrics::with_reader(&config.metrics, push)
}

/// The OTLP span exporter, when traces are configured.
#[cfg(feature = "otlp")]
fn traces(config: &Config) -> Result<Traces, ConfigError> {
    config
        .otlp
        .tracer_provider(crate::metrics::resource(&config.metrics))
        .map_err(|e| config.name_source(e))
}

/// The middleware stack with the rate limiter, the HTTP metrics and the OTLP span hook in
/// their places.
#[cfg(feature = "middleware")]
fn stack(
    config: &Config,
    #[cfg(feature = "ratelimit")] rate_limit: Option<RateLimitLayer>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
    #[cfg(feature = "otlp")] traces: &Traces,
) -> Result<ProductionStack, ConfigError> {
    let http = HttpStack::new(&config.http).map_err(|e| config.name_source(e))?;
    #[cfg(feature = "otlp")]
    let http = match traces {
        Some(_) => http.with_span_hook(Arc::new(crate::otlp::SpanExport)),
        None => http,
    };
    Ok(ProductionStack {
        http,
        #[cfg(feature = "ratelimit")]
        rate_limit,
        #[cfg(feature = "metrics")]
        metrics: config.metrics.enabled.then(|| {
            crate::metrics::HttpMetrics::new(
                &metrics.meter(crate::telemetry::SCOPE),
                &config.http.trace.quiet_routes,
            )
        }),
    })
}

/// The separate metrics listener, when `metrics.port` is set.
#[cfg(feature = "metrics")]
async fn metrics_listener(
    config: &Config,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match config.metrics.port {
        Some(port) if config.metrics.serves_prometheus() => {
            let routes = metrics.routes(&config.metrics.path, config.metrics.token.clone());
            let addr = serve_metrics(port, routes, config, shutdown)
                .await
                .map_err(|e| {
                    config.name_source(ConfigError::new(
                        "metrics.port",
                        port.to_string(),
                        format!("cannot listen on it: {e}"),
                    ))
                })?;
            Ok(Some(addr))
        }
        _ => Ok(None),
    }
}

/// Serves the metrics routes on `0.0.0.0:port` until shutdown, with the server limits of the
/// app's own port; returns the bound address.
#[cfg(feature = "metrics")]
async fn serve_metrics(
    port: u16,
    routes: Router,
    config: &Config,
    shutdown: &Shutdown,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = crate::server::bind(("0.0.0.0", port)).await?;
    let addr = axum::serve::Listener::local_addr(&listener)?;
    let server = crate::server::Server::new(config.server.clone())
        .expect("the config was checked before the build");
    let stop = shutdown.triggered();
    tokio::spawn(async move { server.serve(listener, routes, stop).await });
    Ok(addr)
}

/// The shared Redis handle, PINGed once: a Redis that does not answer yet is a warning, and
/// the modules use their fallbacks until it does.
#[cfg(feature = "redis")]
async fn redis(
    config: &Config,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<Option<RedisHandle>, Error> {
    let Some(redis_config) = &config.redis else {
        return Ok(None);
    };
    let handle = RedisHandle::connect(redis_config)?;
    if let Err(err) = handle.ping().await {
        tracing::warn!(error = %err, "Redis did not answer at startup");
    }
    #[cfg(feature = "metrics")]
    if config.metrics.enabled {
        let observed = handle.clone();
        metrics
            .meter(crate::telemetry::SCOPE)
            .u64_observable_gauge("rustforge.redis.breaker.open")
            .with_description(
                "1 while the shared Redis handle's circuit breaker is open (every Redis call fails at once), else 0.",
            )
            .with_callback(move |o| o.observe(u64::from(observed.breaker_open()), &[]))
            .build();
    }
    Ok(Some(handle))
}

/// The rate limiter, when limits are configured, with its instruments. The probe and scrape
/// routes are exempt; a 429 carries the request id.
#[cfg(feature = "ratelimit")]
fn rate_limit(
    config: &Config,
    limiters: Vec<RateLimiter>,
    #[cfg(feature = "redis")] redis: Option<&RedisHandle>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<Option<RateLimitLayer>, ConfigError> {
    #[cfg(not(feature = "redis"))]
    let redis: Option<&()> = None;
    #[allow(unused_mut)]
    let mut exempt: Vec<String> = Vec::new();
    #[cfg(feature = "health")]
    if config.health.enabled {
        let h = &config.health;
        exempt.extend([h.live_path.clone(), h.ready_path.clone(), h.path.clone()]);
    }
    #[cfg(feature = "metrics")]
    if config.metrics.enabled {
        exempt.push(config.metrics.path.clone());
    }
    #[cfg(feature = "middleware")]
    let request_id = {
        let request_id = &config.http.request_id;
        request_id
            .enabled
            .then(|| request_id.header_name())
            .transpose()
            .map_err(|e| config.name_source(e))?
    };
    #[cfg(not(feature = "middleware"))]
    let request_id = None;
    let layer =
        crate::ratelimit::build_layer(&config.rate_limit, limiters, redis, exempt, request_id)
            .map_err(|e| config.name_source(e))?;
    #[cfg(feature = "metrics")]
    let layer = layer.map(|layer| match config.metrics.enabled {
        true => crate::ratelimit::instruments(&metrics.meter(crate::telemetry::SCOPE), layer),
        false => layer,
    });
    Ok(layer)
}

/// The storage disks, when configured, with their instruments.
#[cfg(feature = "storage")]
fn storage(
    config: &Config,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<Option<Storage>, ConfigError> {
    let Some(storage_config) = &config.storage else {
        return Ok(None);
    };
    #[cfg(feature = "metrics")]
    let observer = config
        .metrics
        .enabled
        .then(|| crate::storage::instruments(&metrics.meter(crate::telemetry::SCOPE)));
    #[cfg(not(feature = "metrics"))]
    let observer = None;
    Storage::with_observer(storage_config, observer)
        .map(Some)
        .map_err(|e| config.name_source(e))
}

/// The cache on its store (Redis when configured), with its instruments.
#[cfg(feature = "cache")]
fn cache(
    config: &Config,
    #[cfg(feature = "redis")] redis: Option<&RedisHandle>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<Cache, ConfigError> {
    #[cfg(not(feature = "redis"))]
    let redis: Option<&()> = None;
    let cache = crate::cache::build(&config.cache, redis).map_err(|e| config.name_source(e))?;
    #[cfg(feature = "metrics")]
    let cache = match config.metrics.enabled {
        true => crate::cache::instruments(&metrics.meter(crate::telemetry::SCOPE), cache),
        false => cache,
    };
    Ok(cache)
}

/// The PostgreSQL pool when a URL is configured (lazy: nothing connects yet), with its
/// instruments.
#[cfg(feature = "sqlx-postgres")]
fn database(
    config: &Config,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<Option<crate::database::Database>, ConfigError> {
    let Some(settings) = &config.database else {
        return Ok(None);
    };
    let database =
        crate::database::Database::connect(settings).map_err(|e| config.name_source(e))?;
    #[cfg(feature = "metrics")]
    let database = match config.metrics.enabled {
        true => crate::database::instruments(
            &metrics.meter(crate::telemetry::SCOPE),
            database,
            "default",
            settings.max_connections,
            settings.min_connections,
        ),
        false => database,
    };
    Ok(Some(database))
}

/// The session layer on its store (Redis when configured), with the store's instruments.
#[cfg(feature = "session")]
fn session(
    config: &Config,
    #[cfg(feature = "redis")] redis: Option<&RedisHandle>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Result<crate::session::SessionLayer, ConfigError> {
    #[cfg(not(feature = "redis"))]
    let redis: Option<&()> = None;
    let store = crate::session::build(&config.session, redis).map_err(|e| config.name_source(e))?;
    #[cfg(feature = "metrics")]
    let store = match config.metrics.enabled {
        true => crate::session::instruments(&metrics.meter(crate::telemetry::SCOPE), store),
        false => store,
    };
    Ok(crate::session::SessionLayer::new(store, &config.session))
}

/// The broadcaster, when an app is configured: on Redis when Redis is configured (or asked
/// for), counting per-IP connections behind the rate limiter's trusted proxies, with its
/// instruments, closing its sockets (4200) at shutdown.
#[cfg(feature = "broadcast")]
fn broadcaster(
    config: &Config,
    authorizer: Option<Arc<dyn Authorizer>>,
    #[cfg(feature = "redis")] redis: Option<&RedisHandle>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<Option<Broadcaster>, ConfigError> {
    if !config.broadcast.enabled() {
        return Ok(None);
    }
    let settings = config.broadcast.clone();
    #[cfg(feature = "redis")]
    let broadcaster = match redis {
        Some(handle) if crate::broadcast::uses_redis(&config.broadcast, true) => {
            Broadcaster::with_redis(settings, authorizer, handle.clone())
        }
        _ => Broadcaster::new(settings, authorizer),
    };
    #[cfg(not(feature = "redis"))]
    let broadcaster = Broadcaster::new(settings, authorizer);
    let broadcaster = broadcaster.map_err(|e| config.name_source(e))?;
    #[cfg(feature = "ratelimit")]
    let broadcaster = {
        let client_ip = config
            .rate_limit
            .client_ip()
            .map_err(|e| config.name_source(e))?;
        // Grouped like the rate limiter's keys: an IPv6 client counts per network (/64).
        broadcaster.with_client_ip(move |peer, headers| {
            client_ip.network_of(client_ip.resolve(peer, headers))
        })
    };
    #[cfg(feature = "metrics")]
    if config.metrics.enabled {
        crate::broadcast::instruments(&metrics.meter(crate::telemetry::SCOPE), &broadcaster);
    }
    let closing = broadcaster.clone();
    shutdown.on_shutdown(async move { closing.shutdown().await });
    Ok(Some(broadcaster))
}

/// The checks modules provide for each other's stores: the default storage disk, the database
/// pool, the cache (when asked for).
#[cfg(feature = "health")]
fn store_checks(
    config: &Config,
    #[cfg(feature = "storage")] storage: Option<&Storage>,
    #[cfg(feature = "sqlx-postgres")] database: Option<&crate::database::Database>,
    #[cfg(feature = "cache")] cache: &Cache,
) -> Vec<Arc<dyn HealthCheck>> {
    #[allow(unused_mut)]
    let mut checks: Vec<Arc<dyn HealthCheck>> = Vec::new();
    #[cfg(feature = "storage")]
    if let Some(storage) = storage {
        checks.push(Arc::new(super::storage_check(
            storage.default_disk().clone(),
        )));
    }
    #[cfg(feature = "sqlx-postgres")]
    if let (Some(database), Some(settings)) = (database, &config.database) {
        let check = crate::health::postgres_check(database.pool().inner().clone());
        let check = if settings.readiness {
            check
        } else {
            check.not_critical()
        };
        checks.push(Arc::new(check));
    }
    #[cfg(feature = "cache")]
    if config.cache.health_check {
        checks.push(Arc::new(super::cache_check(cache.clone())));
    }
    let _ = config;
    checks
}

/// The health checks: Redis, disk and memory as configured, the stores' checks, then the
/// application's own; their instruments; the background refresh.
#[cfg(feature = "health")]
fn health(
    config: &Config,
    checks: Vec<Arc<dyn HealthCheck>>,
    shutdown: &Shutdown,
    #[cfg(feature = "redis")] redis: Option<&RedisHandle>,
    #[cfg(feature = "metrics")] metrics: &Metrics,
) -> Health {
    use crate::health::{DiskCheck, MemoryCheck};

    let h = &config.health;
    let mut health = Health::new(h.clone(), shutdown.clone());
    #[cfg(feature = "redis")]
    if let Some(redis) = redis {
        let required = h.redis_readiness.unwrap_or_else(|| needs_redis(config));
        let check = crate::health::RedisCheck::new(redis.clone()).required(required);
        health.add_check(Arc::new(check));
    }
    if let Some(path) = &h.disk_path {
        let disk = DiskCheck::new(path).thresholds(h.disk_warn_percent, h.disk_fail_percent);
        health.add_check(Arc::new(disk));
    }
    if h.memory {
        let memory =
            MemoryCheck::default().thresholds(h.memory_warn_percent, h.memory_fail_percent);
        health.add_check(Arc::new(memory));
    }
    for check in checks {
        health.add_check(check);
    }
    #[cfg(feature = "metrics")]
    health.set_observer(Arc::new(crate::health::instruments(
        &metrics.meter(crate::telemetry::SCOPE),
    )));
    if let Some(interval) = h.background_refresh {
        health.spawn_background_refresh(interval);
    }
    health
}

/// Whether this server cannot serve without Redis: its rate limiter counts in Redis and fails
/// closed (every request answers 503 while Redis is down). Then a Redis outage takes it out of
/// readiness; otherwise the modules degrade and Redis is only reported.
#[cfg(all(feature = "health", feature = "redis"))]
fn needs_redis(config: &Config) -> bool {
    #[cfg(feature = "ratelimit")]
    {
        use crate::ratelimit::{FailurePolicy, StoreKind};
        let rl = &config.rate_limit;
        let on_redis = rl.store.unwrap_or(StoreKind::Redis) == StoreKind::Redis;
        on_redis && rl.on_redis_failure == FailurePolicy::FailClosed
    }
    #[cfg(not(feature = "ratelimit"))]
    {
        let _ = config;
        false
    }
}
