//! Configuration: one serde struct, filled from code, from a file or from the environment.
//!
//! ```
//! use rustforge_prod::Config;
//!
//! // From the environment (here an explicit list; `Config::from_env()` reads the process env).
//! let config = Config::from_vars([
//!     ("RUSTFORGE_LOG_FORMAT", "json"),
//!     ("RUSTFORGE_REQUEST_TIMEOUT", "10s"),
//! ])?;
//! assert_eq!(config.log.format, rustforge_prod::LogFormat::Json);
//!
//! // From a file: the same struct deserializes with serde (TOML, JSON, YAML ...).
//! let config: Config = serde_json::from_str(r#"{ "log": { "format": "pretty" } }"#).unwrap();
//! assert_eq!(config.log.format, rustforge_prod::LogFormat::Pretty);
//! # Ok::<(), rustforge_prod::ConfigError>(())
//! ```
//!
//! # Environment variables
//!
//! | variable | meaning | example |
//! |---|---|---|
//! | `RUST_LOG` | log filter ([`EnvFilter`](tracing_subscriber::EnvFilter) syntax) | `info,my_app=debug` |
//! | `RUSTFORGE_LOG_FORMAT` | `json` (production) or `pretty` (development) | `json` |
//! | `RUSTFORGE_SHUTDOWN_DRAIN` | time between SIGTERM (readiness 503) and closing the listener | `5s` |
//! | `RUSTFORGE_REQUEST_ID_HEADER` | header that carries the request id | `x-request-id` |
//! | `RUSTFORGE_CORS_ORIGINS` | comma-separated allowed origins, or `*` (not with credentials) | `https://app.example.com` |
//! | `RUSTFORGE_CORS_CREDENTIALS` | allow cookies / credentials cross-origin | `true` |
//! | `RUSTFORGE_CORS_HEADERS` | comma-separated request headers browsers may send | `content-type,x-api-key` |
//! | `RUSTFORGE_CORS_MAX_AGE` | how long browsers cache a preflight | `1h` |
//! | `RUSTFORGE_COMPRESSION` | response compression on/off | `true` |
//! | `RUSTFORGE_COMPRESSION_LEVEL` | compression level for every encoding (1–9) | `1` |
//! | `RUSTFORGE_COMPRESSION_MIN_SIZE` | responses smaller than this are not compressed | `1KiB` |
//! | `RUSTFORGE_REQUEST_TIMEOUT` | time to the response headers, or `off` | `30s` |
//! | `RUSTFORGE_BODY_LIMIT` | largest accepted request body, or `off` | `2MiB` |
//! | `RUSTFORGE_METRICS` | HTTP metrics and `/metrics` on/off | `true` |
//! | `RUSTFORGE_METRICS_PATH` | path of the Prometheus endpoint | `/metrics` |
//! | `RUSTFORGE_METRICS_TOKEN` | bearer token the scraper must send | a long random string |
//! | `RUSTFORGE_METRICS_PORT` | serve `/metrics` on this port instead of the app's router | `9464` |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the telemetry resource (`target_info`) | `orders-api` |
//! | `OTEL_METRICS_EXPORTER` | `prometheus` (`/metrics`), `otlp` (push), both, or `none`; default `prometheus,otlp` | `otlp` |
//! | `OTEL_TRACES_EXPORTER` | `otlp` or `none` (feature `otlp`; default `otlp`) | `none` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP/HTTP collector base URL; unset: no OTLP export (feature `otlp`) | `http://collector:4318` |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `_TRACES_ENDPOINT` | one signal's full URL, used as is | `http://collector:4318/v1/traces` |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | only `http/protobuf` is supported | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | time allowed for one export, ms | `10000` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | time between metric pushes, ms | `60000` |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`(`_ARG`) | read by the OpenTelemetry SDK itself | `api-key=…` |
//! | `RUSTFORGE_HEALTH_TOKEN` | bearer token that shows health details | a long random string |
//! | `RUSTFORGE_HEALTH_TIMEOUT` | timeout of each health check | `1s` |
//! | `RUSTFORGE_HEALTH_CACHE_TTL` | how long a health report is reused | `1s` |
//! | `RUSTFORGE_HEALTH_PUBLIC_DETAILS` | show health details without the token | `false` |
//! | `RUSTFORGE_HEALTH_DISK_PATH` | check free space of the disk holding this path | `/var/lib/app` |
//! | `RUSTFORGE_HEALTH_DISK_WARN` / `_FAIL` | disk used-percent thresholds | `70` / `90` |
//! | `RUSTFORGE_HEALTH_MEMORY_WARN` / `_FAIL` | memory used-percent thresholds | `90` / `97` |
//! | `RUSTFORGE_RATE_LIMIT` | global limit(s) per client, decided together; unset or `off`: none | `100/min`, `10/s,1000/hour` |
//! | `RUSTFORGE_RATE_LIMIT_ALGORITHM` | `gcra` (token bucket), `sliding-window`, `fixed-window`, `sliding-log` | `gcra` |
//! | `RUSTFORGE_RATE_LIMIT_KEY` | what the global limit counts by: `ip`, `header:<name>`, `route`, `global` | `header:x-api-key` |
//! | `RUSTFORGE_RATE_LIMIT_STORE` | `memory` or `redis` (default: `redis` when `REDIS_URL` is set) | `redis` |
//! | `RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE` | `fallback` (local limits), `fail-open`, `fail-closed` (503) | `fallback` |
//! | `RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS` | app servers: the local fallback divides each limit by it | `4` |
//! | `RUSTFORGE_RATE_LIMIT_TIMEOUT` | time allowed for one Redis check | `10ms` |
//! | `RUSTFORGE_RATE_LIMIT_HEADERS` | `ietf` (`RateLimit-Policy`/`RateLimit`), `legacy` (`X-RateLimit-*`), `both`, `none` | `ietf` |
//! | `RUSTFORGE_RATE_LIMIT_IPV6_PREFIX` | IPv6 clients share a limit per network of this size | `64` |
//! | `RUSTFORGE_TRUSTED_PROXIES` | proxies whose forwarding header is believed (CIDRs) | `10.0.0.0/8,::1` |
//! | `RUSTFORGE_PROXY_HEADER` | the header they set: `x-forwarded-for`, `forwarded`, `x-real-ip` | `x-forwarded-for` |
//! | `RUSTFORGE_STORAGE_DISK` | the default storage disk: `local`, `memory`, `s3` or a configured name | `s3` |
//! | `RUSTFORGE_STORAGE_ROOT` | directory of the `local` disk | `./storage` |
//! | `RUSTFORGE_STORAGE_PUBLIC_URL` | public base URL of the default disk | `https://cdn.example.com` |
//! | `RUSTFORGE_STORAGE_SIGNING_KEY` | key of the local disks' signed URLs (≥ 32 bytes; shared by all servers) | a long random string |
//! | `RUSTFORGE_APP_URL` | absolute base of those signed URLs | `https://app.example.com` |
//! | `AWS_BUCKET`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` | the `s3` disk (object_store's own variables) | `my-bucket` |
//! | `PUSHER_APP_ID`, `PUSHER_APP_KEY`, `PUSHER_APP_SECRET` | turn broadcasting on for one app (Laravel's `.env` names) | `1`, `app-key`, a long secret |
//! | `RUSTFORGE_BROADCAST_CLIENT_EVENTS` | whether clients may send `client-` events | `true` |
//! | `RUSTFORGE_BROADCAST_NODE_TIMEOUT` | with Redis: a server silent this long is dead, its presence members removed | `30s` |
//! | `RUSTFORGE_BROADCAST_WEBHOOK_URL` | where webhooks go (feature `webhooks`) | `https://app.example.com/pusher/webhook` |
//! | `RUSTFORGE_BROADCAST_MAX_CONNECTIONS`, `_PER_IP` | WebSocket connections per app / per client IP on one server (`0`: no limit) | `50000`, `100` |
//! | `RUSTFORGE_BROADCAST_STORE` | `memory` (one server) or `redis` (default when `REDIS_URL` is set; Redis or Redis Cluster) | `redis` |
//! | `REDIS_URL` | `redis://…`, `rediss://…` or `redis+cluster://host:port,host:port` | `redis://127.0.0.1:6379` |
//! | `RUSTFORGE_REDIS_PREFIX` | prefix of every Redis key the crate writes | `myapp` |
//! | `RUSTFORGE_REDIS_POOL_SIZE` | connections in the Redis pool | `8` |
//! | `RUSTFORGE_REDIS_CONNECT_TIMEOUT` | time allowed to open a Redis connection | `1s` |
//! | `RUSTFORGE_REDIS_COMMAND_TIMEOUT` | time allowed for one Redis command | `250ms` |
//!
//! Boolean values accept `true/false`, `1/0`, `yes/no`, `on/off`. Durations use
//! [humantime](https://docs.rs/humantime) syntax (`500ms`, `30s`, `2m`); sizes accept `2MiB`,
//! `512KB` or plain bytes. A variable that starts with `RUSTFORGE_` but is not in this table is an
//! error too, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "broadcast")]
use crate::broadcast::BroadcastConfig;
use crate::error::ConfigError;
#[cfg(feature = "health")]
use crate::health::HealthConfig;
pub use crate::logging::{LogConfig, LogFormat};
#[cfg(feature = "metrics")]
use crate::metrics::MetricsConfig;
#[cfg(feature = "middleware")]
use crate::middleware::HttpConfig;
#[cfg(feature = "ratelimit")]
use crate::ratelimit::RateLimitConfig;
#[cfg(feature = "redis")]
use crate::redis::RedisConfig;
#[cfg(feature = "storage")]
use crate::storage::StorageConfig;

/// Every setting of the crate. `Default` is the production default of each module.
///
/// Build it in code, deserialize it from a file, or read it with [`Config::from_env`]; then hand
/// it to [`ProductionLayerBuilder::config`](crate::ProductionLayerBuilder::config).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Logging (format and filter), used by [`init_logging`](crate::init_logging).
    pub log: LogConfig,
    /// The HTTP middleware stack.
    #[cfg(feature = "middleware")]
    pub http: HttpConfig,
    /// Health checks and their routes.
    #[cfg(feature = "health")]
    pub health: HealthConfig,
    /// Metrics and the `/metrics` endpoint.
    #[cfg(feature = "metrics")]
    pub metrics: MetricsConfig,
    /// Rate limiting: the global limit, the store and its failure handling.
    #[cfg(feature = "ratelimit")]
    pub rate_limit: RateLimitConfig,
    /// The shared Redis handle; `None` when Redis is not used.
    #[cfg(feature = "redis")]
    pub redis: Option<RedisConfig>,
    /// Broadcasting (Pusher protocol); off until an app is configured.
    #[cfg(feature = "broadcast")]
    pub broadcast: BroadcastConfig,
    /// Storage disks; `None` (the default) builds no storage. Set by
    /// [`storage`](crate::ProductionLayerBuilder::storage) or any `RUSTFORGE_STORAGE_*` variable.
    #[cfg(feature = "storage")]
    pub storage: Option<StorageConfig>,
    /// OTLP export of metrics and request spans (`OTEL_EXPORTER_OTLP_ENDPOINT`, …).
    #[cfg(feature = "otlp")]
    pub otlp: crate::otlp::OtlpConfig,
    /// Time between the shutdown signal (readiness turns 503) and the server closing its
    /// listener, so load balancers drain the instance first (default 0 s; 5–10 s behind a load
    /// balancer).
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
    /// Config keys that were set from an environment variable, so that a later error (found at
    /// `build()`) names the variable the user wrote instead of the key.
    #[serde(skip)]
    pub(crate) env_sources: BTreeMap<&'static str, &'static str>,
}

/// The environment variables [`Config::from_env`] reads, with the config key each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("RUST_LOG", "log.filter"),
    ("RUSTFORGE_LOG_FORMAT", "log.format"),
    ("RUSTFORGE_SHUTDOWN_DRAIN", "shutdown_drain"),
    ("RUSTFORGE_REQUEST_ID_HEADER", "http.request_id.header"),
    ("RUSTFORGE_CORS_ORIGINS", "http.cors.origins"),
    ("RUSTFORGE_CORS_CREDENTIALS", "http.cors.credentials"),
    ("RUSTFORGE_CORS_HEADERS", "http.cors.headers"),
    ("RUSTFORGE_CORS_MAX_AGE", "http.cors.max_age"),
    ("RUSTFORGE_COMPRESSION", "http.compression.enabled"),
    ("RUSTFORGE_COMPRESSION_LEVEL", "http.compression.level"),
    (
        "RUSTFORGE_COMPRESSION_MIN_SIZE",
        "http.compression.min_size",
    ),
    ("RUSTFORGE_REQUEST_TIMEOUT", "http.timeout"),
    ("RUSTFORGE_BODY_LIMIT", "http.body_limit"),
    ("RUSTFORGE_RATE_LIMIT", "rate_limit.limits"),
    ("RUSTFORGE_RATE_LIMIT_ALGORITHM", "rate_limit.algorithm"),
    ("RUSTFORGE_RATE_LIMIT_KEY", "rate_limit.key"),
    ("RUSTFORGE_RATE_LIMIT_STORE", "rate_limit.store"),
    (
        "RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE",
        "rate_limit.on_redis_failure",
    ),
    (
        "RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS",
        "rate_limit.fallback_replicas",
    ),
    ("RUSTFORGE_RATE_LIMIT_TIMEOUT", "rate_limit.timeout"),
    ("RUSTFORGE_RATE_LIMIT_HEADERS", "rate_limit.headers"),
    ("RUSTFORGE_RATE_LIMIT_IPV6_PREFIX", "rate_limit.ipv6_prefix"),
    ("RUSTFORGE_TRUSTED_PROXIES", "rate_limit.trusted_proxies"),
    ("RUSTFORGE_PROXY_HEADER", "rate_limit.proxy_header"),
    ("REDIS_URL", "redis.url"),
    ("RUSTFORGE_REDIS_PREFIX", "redis.prefix"),
    ("RUSTFORGE_REDIS_POOL_SIZE", "redis.pool_size"),
    ("RUSTFORGE_REDIS_CONNECT_TIMEOUT", "redis.connect_timeout"),
    ("RUSTFORGE_REDIS_COMMAND_TIMEOUT", "redis.command_timeout"),
    ("RUSTFORGE_METRICS", "metrics.enabled"),
    ("RUSTFORGE_METRICS_PATH", "metrics.path"),
    ("RUSTFORGE_METRICS_TOKEN", "metrics.token"),
    ("RUSTFORGE_METRICS_PORT", "metrics.port"),
    ("OTEL_METRICS_EXPORTER", "otlp.metrics"),
    ("OTEL_TRACES_EXPORTER", "otlp.traces"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp.endpoint"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "otlp.metrics_endpoint",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp.traces_endpoint"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "otlp.protocol"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "otlp.timeout"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "otlp.metrics_interval"),
    ("RUSTFORGE_HEALTH_TOKEN", "health.token"),
    ("RUSTFORGE_HEALTH_TIMEOUT", "health.timeout"),
    ("RUSTFORGE_HEALTH_CACHE_TTL", "health.cache_ttl"),
    ("RUSTFORGE_HEALTH_PUBLIC_DETAILS", "health.public_details"),
    ("RUSTFORGE_HEALTH_DISK_PATH", "health.disk_path"),
    ("RUSTFORGE_HEALTH_DISK_WARN", "health.disk_warn_percent"),
    ("RUSTFORGE_HEALTH_DISK_FAIL", "health.disk_fail_percent"),
    ("RUSTFORGE_HEALTH_MEMORY_WARN", "health.memory_warn_percent"),
    ("RUSTFORGE_HEALTH_MEMORY_FAIL", "health.memory_fail_percent"),
    ("RUSTFORGE_STORAGE_DISK", "storage.default_disk"),
    ("RUSTFORGE_STORAGE_ROOT", "storage.root"),
    ("RUSTFORGE_STORAGE_PUBLIC_URL", "storage.public_url"),
    ("RUSTFORGE_STORAGE_SIGNING_KEY", "storage.signing_key"),
    ("RUSTFORGE_APP_URL", "storage.app_url"),
    ("PUSHER_APP_ID", "broadcast.apps.id"),
    ("PUSHER_APP_KEY", "broadcast.apps.key"),
    ("PUSHER_APP_SECRET", "broadcast.apps.secret"),
    (
        "RUSTFORGE_BROADCAST_CLIENT_EVENTS",
        "broadcast.apps.client_events",
    ),
    ("RUSTFORGE_BROADCAST_STORE", "broadcast.store"),
    (
        "RUSTFORGE_BROADCAST_MAX_CONNECTIONS",
        "broadcast.max_connections",
    ),
    (
        "RUSTFORGE_BROADCAST_MAX_CONNECTIONS_PER_IP",
        "broadcast.max_connections_per_ip",
    ),
    (
        "RUSTFORGE_BROADCAST_WEBHOOK_URL",
        "broadcast.apps.webhook_url",
    ),
    ("RUSTFORGE_BROADCAST_NODE_TIMEOUT", "broadcast.node_timeout"),
];

impl Config {
    /// Reads the [environment variables](self#environment-variables) of the process on top of the
    /// defaults. Every bad value is a [`ConfigError`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from an explicit list of `(name, value)` pairs — for
    /// tests, or for values that come from somewhere else than the process environment.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Self::default();
        config.apply_vars(vars)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies environment-style `(name, value)` pairs on top of this config.
    pub fn apply_vars<K, V>(
        &mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            let Some(&(var, key)) = ENV_VARS.iter().find(|(v, _)| *v == name) else {
                if name.starts_with("RUSTFORGE_") {
                    return Err(ConfigError::new(
                        name,
                        value,
                        "unknown RUSTFORGE_ variable (see the table in rustforge_prod::config)",
                    ));
                }
                continue;
            };
            self.apply_var(var, key, value)?;
            self.env_sources.insert(key, var);
        }
        Ok(())
    }

    /// Hands `var` to the section its config key names. A variable of a module that is
    /// compiled out is ignored: without the feature the setting cannot matter.
    fn apply_var(&mut self, var: &'static str, key: &str, value: &str) -> Result<(), ConfigError> {
        let section = key.split('.').next().unwrap_or_default();
        match section {
            "log" if var == "RUST_LOG" => self.log.filter = Some(value.to_owned()),
            "log" => self.log.format = parse::from_str(var, value)?,
            "shutdown_drain" => {
                self.shutdown_drain = parse::optional_duration(var, value)?.unwrap_or_default()
            }
            #[cfg(feature = "middleware")]
            "http" => self.http.apply_var(var, value)?,
            #[cfg(feature = "health")]
            "health" => self.health.apply_var(var, value)?,
            #[cfg(feature = "metrics")]
            "metrics" => self.metrics.apply_var(var, value)?,
            #[cfg(feature = "ratelimit")]
            "rate_limit" => self.rate_limit.apply_var(var, value)?,
            #[cfg(feature = "broadcast")]
            "broadcast" => self.broadcast.apply_var(var, value)?,
            #[cfg(feature = "storage")]
            "storage" => self
                .storage
                .get_or_insert_with(StorageConfig::default)
                .apply_var(var, value)?,
            #[cfg(feature = "redis")]
            "redis" => self
                .redis
                .get_or_insert_with(RedisConfig::default)
                .apply_var(var, value)?,
            "otlp" => self.apply_otel_var(var, value)?,
            _ => {}
        }
        Ok(())
    }

    /// The OpenTelemetry variables: `OTEL_METRICS_EXPORTER` chooses Prometheus and/or OTLP,
    /// `OTEL_TRACES_EXPORTER` OTLP or none; asking for OTLP from a build without the `otlp`
    /// feature is an error, not a silent no-op.
    fn apply_otel_var(&mut self, var: &'static str, value: &str) -> Result<(), ConfigError> {
        let without_otlp = || {
            ConfigError::new(
                var,
                value,
                "rustforge-prod was built without the `otlp` feature",
            )
        };
        let exporters = match var {
            "OTEL_METRICS_EXPORTER" => parse::exporters(var, value, &["otlp", "prometheus"])?,
            "OTEL_TRACES_EXPORTER" => parse::exporters(var, value, &["otlp"])?,
            #[cfg(feature = "otlp")]
            _ => return self.otlp.apply_var(var, value),
            #[cfg(not(feature = "otlp"))]
            "OTEL_EXPORTER_OTLP_ENDPOINT"
            | "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
            | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
                if !value.trim().is_empty() =>
            {
                return Err(without_otlp());
            }
            #[cfg(not(feature = "otlp"))]
            _ => return Ok(()),
        };
        let otlp = exporters.iter().any(|name| name == "otlp");
        #[cfg(feature = "metrics")]
        if var == "OTEL_METRICS_EXPORTER" {
            self.metrics.prometheus = exporters.iter().any(|name| name == "prometheus");
        }
        #[cfg(feature = "otlp")]
        match var {
            "OTEL_METRICS_EXPORTER" => self.otlp.metrics = otlp,
            _ => self.otlp.traces = otlp,
        }
        #[cfg(not(feature = "otlp"))]
        if otlp {
            return Err(without_otlp());
        }
        #[cfg(feature = "otlp")]
        let _ = without_otlp;
        Ok(())
    }

    /// Checks the settings that depend on each other; called by `build()`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_inner().map_err(|err| self.name_source(err))
    }

    fn validate_inner(&self) -> Result<(), ConfigError> {
        self.log.validate()?;
        #[cfg(feature = "middleware")]
        self.http.validate()?;
        #[cfg(feature = "health")]
        self.health.validate()?;
        #[cfg(feature = "metrics")]
        self.metrics.validate()?;
        #[cfg(feature = "otlp")]
        self.otlp.validate()?;
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        #[cfg(feature = "storage")]
        if let Some(storage) = &self.storage {
            storage.validate()?;
        }
        #[cfg(feature = "broadcast")]
        {
            self.broadcast.validate()?;
            #[cfg(feature = "redis")]
            let redis = self.redis.as_ref();
            #[cfg(not(feature = "redis"))]
            let redis: Option<&()> = None;
            crate::broadcast::check_store(&self.broadcast, redis)?;
        }
        #[cfg(feature = "ratelimit")]
        {
            self.rate_limit.validate()?;
            #[cfg(feature = "redis")]
            let has_redis = self.redis.is_some();
            #[cfg(not(feature = "redis"))]
            let has_redis = false;
            if self.rate_limit.store == Some(crate::ratelimit::StoreKind::Redis) && !has_redis {
                return Err(crate::ratelimit::redis_store_without_redis());
            }
        }
        Ok(())
    }

    /// Names the environment variable in `err` when its config key was set from the environment,
    /// or when a sibling key was (a `PUSHER_APP_SECRET` missing next to `PUSHER_APP_ID`).
    pub(crate) fn name_source(&self, err: ConfigError) -> ConfigError {
        if let Some(var) = self.env_sources.get(err.setting()) {
            return err.renamed(*var);
        }
        let parent = err.setting().rsplit_once('.').map(|(p, _)| p);
        let sibling_from_env = parent.is_some_and(|parent| {
            self.env_sources
                .keys()
                .any(|key| key.rsplit_once('.').map(|(p, _)| p) == Some(parent))
        });
        match ENV_VARS.iter().find(|(_, key)| *key == err.setting()) {
            Some((var, _)) if sibling_from_env => err.renamed(*var),
            _ => err,
        }
    }
}

/// Parsers shared by every module's `apply_var`, each naming the variable in its error.
pub(crate) mod parse {
    // Each module uses the parsers it needs; with some features off, some go unused.
    #![allow(dead_code)]

    use super::*;

    /// `true/false`, `1/0`, `yes/no`, `on/off` (any case).
    pub(crate) fn bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(setting, value, "expected true or false")),
        }
    }

    /// A humantime duration such as `250ms`, `30s`, `2m`; zero is rejected.
    pub(crate) fn duration(setting: &str, value: &str) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(value.trim()).map_err(|e| {
            ConfigError::new(
                setting,
                value,
                format!("expected a duration like 30s ({e})"),
            )
        })?;
        if d.is_zero() {
            return Err(ConfigError::new(
                setting,
                value,
                "must be greater than zero",
            ));
        }
        Ok(d)
    }

    /// A duration, or `off`/`none`/`false` for no limit.
    pub(crate) fn optional_duration(
        setting: &str,
        value: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        if is_off(value) {
            return Ok(None);
        }
        duration(setting, value).map(Some)
    }

    /// A byte size such as `2MiB`, `512KB` or `1048576`; zero is rejected.
    pub(crate) fn size(setting: &str, value: &str) -> Result<u64, ConfigError> {
        let size: bytesize::ByteSize = value.trim().parse().map_err(|e| {
            ConfigError::new(setting, value, format!("expected a size like 2MiB ({e})"))
        })?;
        if size.as_u64() == 0 {
            return Err(ConfigError::new(
                setting,
                value,
                "must be greater than zero",
            ));
        }
        Ok(size.as_u64())
    }

    /// A size, or `off`/`none`/`false` for no limit.
    pub(crate) fn optional_size(setting: &str, value: &str) -> Result<Option<u64>, ConfigError> {
        if is_off(value) {
            return Ok(None);
        }
        size(setting, value).map(Some)
    }

    /// A comma-separated list; empty items are dropped.
    /// An `OTEL_*_EXPORTER` list such as `otlp,prometheus` or `none`, of the names in `known`.
    pub(crate) fn exporters(
        setting: &str,
        value: &str,
        known: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let names = list(value);
        if names.is_empty()
            || names
                .iter()
                .any(|n| n != "none" && !known.contains(&n.as_str()))
        {
            return Err(ConfigError::new(
                setting,
                value,
                format!("a comma-separated list of {} or none", known.join(", ")),
            ));
        }
        Ok(names)
    }

    pub(crate) fn list(value: &str) -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Any `FromStr` value.
    pub(crate) fn from_str<T>(setting: &str, value: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        value
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(setting, value, format!("{e}")))
    }

    fn is_off(value: &str) -> bool {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "off" | "none" | "false" | "disabled"
        )
    }
}
