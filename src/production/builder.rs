//! [`ProductionLayerBuilder`]: the settings, from code or the environment, before `build()`.

#[cfg(any(feature = "health", feature = "broadcast"))]
use std::sync::Arc;
#[cfg(feature = "middleware")]
use std::time::Duration;

#[cfg(feature = "broadcast")]
use crate::broadcast::{Authorizer, BroadcastConfig};
use crate::config::Config;
use crate::error::ConfigError;
#[cfg(feature = "health")]
use crate::health::{HealthCheck, HealthConfig};
use crate::logging::LogConfig;
#[cfg(feature = "metrics")]
use crate::metrics::MetricsConfig;
#[cfg(feature = "middleware")]
use crate::middleware::{CompressionConfig, CorsConfig, HttpConfig, RequestIdConfig};
#[cfg(feature = "ratelimit")]
use crate::ratelimit::{RateLimitConfig, RateLimiter};
#[cfg(feature = "redis")]
use crate::redis::RedisConfig;
#[cfg(feature = "storage")]
use crate::storage::StorageConfig;

/// Configures a [`ProductionLayer`](super::ProductionLayer). Later calls win over earlier ones, so
/// `.from_env()?.cors(…)` lets code override the environment and `.cors(…).from_env()?` the
/// reverse.
#[derive(Default)]
#[must_use = "call .build().await to get the ProductionLayer"]
pub struct ProductionLayerBuilder {
    pub(super) config: Config,
    #[cfg(feature = "health")]
    pub(super) checks: Vec<Arc<dyn HealthCheck>>,
    #[cfg(feature = "ratelimit")]
    pub(super) limiters: Vec<RateLimiter>,
    #[cfg(feature = "broadcast")]
    pub(super) authorizer: Option<Arc<dyn Authorizer>>,
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

    /// Configures storage disks ([`ProductionLayer::storage`](super::ProductionLayer::storage)); the default disk gets a health
    /// check and, with metrics on, operation and byte counters.
    #[cfg(feature = "storage")]
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.config.storage = Some(storage);
        self.forget_env("storage.")
    }

    /// Sets the cache (store, prefix, default TTL, remember lock).
    #[cfg(feature = "cache")]
    pub fn cache(mut self, cache: crate::cache::CacheConfig) -> Self {
        self.config.cache = cache;
        self.forget_env("cache.")
    }

    /// Sets sessions (store, cookie, lifetimes).
    #[cfg(feature = "session")]
    pub fn session(mut self, session: crate::session::SessionConfig) -> Self {
        self.config.session = session;
        self.forget_env("session.")
    }

    /// Builds a PostgreSQL pool with these settings.
    #[cfg(feature = "sqlx-postgres")]
    pub fn database(mut self, database: crate::database::DatabaseConfig) -> Self {
        self.config.database = Some(database);
        self.forget_env("database.")
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

    /// Code has replaced the settings under `prefix`: errors there no longer name a variable.
    #[cfg(any(
        feature = "middleware",
        feature = "redis",
        feature = "health",
        feature = "metrics",
        feature = "ratelimit",
        feature = "storage",
        feature = "broadcast",
        feature = "cache",
        feature = "session",
        feature = "sqlx-postgres"
    ))]
    fn forget_env(mut self, prefix: &str) -> Self {
        self.config
            .env_sources
            .retain(|key, _| !key.starts_with(prefix));
        self
    }
}
