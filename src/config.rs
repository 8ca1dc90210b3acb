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
#![doc = include_str!("../docs/environment.md")]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "broadcast")]
use crate::broadcast::BroadcastConfig;
#[cfg(feature = "cache")]
use crate::cache::CacheConfig;
#[cfg(feature = "sqlx-postgres")]
use crate::database::DatabaseConfig;
pub use crate::env::EnvVar;
use crate::env::{self, Setting, parse};
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
pub use crate::server::ServerConfig;
#[cfg(feature = "session")]
use crate::session::SessionConfig;
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
    /// Limits and timeouts of the HTTP server, used by [`serve`](crate::serve).
    pub server: ServerConfig,
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
    /// The cache: its store, prefix and defaults (`RUSTFORGE_CACHE_*`).
    #[cfg(feature = "cache")]
    pub cache: CacheConfig,
    /// Sessions: store, cookie, lifetimes (`RUSTFORGE_SESSION_*`).
    #[cfg(feature = "session")]
    pub session: SessionConfig,
    /// The PostgreSQL pool; `None` (the default) builds none. Set by
    /// [`database`](crate::ProductionLayerBuilder::database) or `DATABASE_URL`.
    #[cfg(feature = "sqlx-postgres")]
    pub database: Option<DatabaseConfig>,
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
            match self.apply_var(name, value)? {
                Some(var) if !var.key.is_empty() => {
                    self.env_sources.insert(var.key, var.name);
                }
                Some(_) => {}
                None => check_not_compiled_out(name, value)?,
            }
        }
        Ok(())
    }

    /// Applies one variable through the table that declares it; `None` when no table of this
    /// build does.
    fn apply_var(&mut self, name: &str, value: &str) -> Result<Option<EnvVar>, ConfigError> {
        /// Applies `name` to the section `target` returns when `table` declares it.
        fn apply<'c, C: 'c>(
            table: &'static [Setting<C>],
            name: &str,
            value: &str,
            target: impl FnOnce() -> &'c mut C,
        ) -> Result<Option<EnvVar>, ConfigError> {
            let Some(setting) = env::find(table, name) else {
                return Ok(None);
            };
            (setting.apply)(target(), setting.var.name, value)?;
            Ok(Some(setting.var))
        }
        macro_rules! first_of {
            ($($table:expr => $target:expr),* $(,)?) => {
                $(if let Some(var) = apply($table, name, value, || $target)? {
                    return Ok(Some(var));
                })*
            };
        }
        first_of! {
            LogConfig::ENV => &mut self.log,
            ServerConfig::ENV => &mut self.server,
            Self::ENV => &mut *self,
        }
        #[cfg(feature = "middleware")]
        first_of! { HttpConfig::ENV => &mut self.http }
        #[cfg(feature = "metrics")]
        first_of! { MetricsConfig::ENV => &mut self.metrics }
        #[cfg(feature = "otlp")]
        first_of! { crate::otlp::OtlpConfig::ENV => &mut self.otlp }
        #[cfg(feature = "health")]
        first_of! { HealthConfig::ENV => &mut self.health }
        #[cfg(feature = "ratelimit")]
        first_of! { RateLimitConfig::ENV => &mut self.rate_limit }
        #[cfg(feature = "broadcast")]
        first_of! { BroadcastConfig::ENV => &mut self.broadcast }
        #[cfg(feature = "storage")]
        first_of! { StorageConfig::ENV => self.storage.get_or_insert_with(StorageConfig::default) }
        #[cfg(feature = "cache")]
        first_of! { CacheConfig::ENV => &mut self.cache }
        #[cfg(feature = "session")]
        first_of! { SessionConfig::ENV => &mut self.session }
        #[cfg(feature = "sqlx-postgres")]
        first_of! { DatabaseConfig::ENV => self.database.get_or_insert_with(DatabaseConfig::default) }
        #[cfg(feature = "redis")]
        first_of! { RedisConfig::ENV => self.redis.get_or_insert_with(RedisConfig::default) }
        Ok(None)
    }

    /// The variables of the crate itself: those that touch more than one module.
    const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_SHUTDOWN_DRAIN",
            "shutdown_drain",
            "`0s` (use `5s`–`10s` behind a load balancer)",
            "time between SIGTERM (readiness turns 503) and closing the listener",
            |c, var, v| {
                // `0s` (the default) and `off` both mean no drain.
                c.shutdown_drain = if parse::is_off(v) {
                    Duration::ZERO
                } else {
                    parse::duration_or_zero(var, v)?
                };
                Ok(())
            },
        ),
        Setting::new(
            "OTEL_METRICS_EXPORTER",
            "otlp.metrics",
            "`prometheus,otlp`",
            "`prometheus` (`/metrics`), `otlp` (push, feature `otlp`), both, or `none`",
            |c, var, v| {
                let exporters = parse::exporters(var, v, &["otlp", "prometheus"])?;
                #[cfg(feature = "metrics")]
                {
                    c.metrics.prometheus = exporters.iter().any(|name| name == "prometheus");
                }
                c.set_otlp_export(var, v, exporters.iter().any(|name| name == "otlp"))
            },
        ),
        Setting::new(
            "OTEL_TRACES_EXPORTER",
            "otlp.traces",
            "`otlp`",
            "`otlp` (a span per request, feature `otlp`) or `none`",
            |c, var, v| {
                let exporters = parse::exporters(var, v, &["otlp"])?;
                c.set_otlp_export(var, v, exporters.iter().any(|name| name == "otlp"))
            },
        ),
    ];

    /// Turns OTLP export of the signal `var` names on or off; on is an error in a build
    /// without the `otlp` feature.
    fn set_otlp_export(&mut self, var: &str, value: &str, on: bool) -> Result<(), ConfigError> {
        #[cfg(feature = "otlp")]
        match var {
            "OTEL_METRICS_EXPORTER" => self.otlp.metrics = on,
            _ => self.otlp.traces = on,
        }
        #[cfg(not(feature = "otlp"))]
        if on {
            return Err(needs_feature(var, value, "otlp"));
        }
        let _ = (var, value);
        Ok(())
    }

    /// Checks the settings that depend on each other; called by `build()`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_inner().map_err(|err| self.name_source(err))
    }

    fn validate_inner(&self) -> Result<(), ConfigError> {
        self.log.validate()?;
        self.server.validate()?;
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
        self.broadcast.validate()?;
        #[cfg(feature = "cache")]
        self.cache.validate()?;
        #[cfg(feature = "session")]
        self.session.validate()?;
        #[cfg(feature = "sqlx-postgres")]
        if let Some(database) = &self.database {
            database.validate()?;
        }
        #[cfg(feature = "ratelimit")]
        self.rate_limit.validate()?;
        crate::production::check_config(self)?;
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
        match env_vars().into_iter().find(|var| var.key == err.setting()) {
            Some(var) if sibling_from_env => err.renamed(var.name),
            _ => err,
        }
    }
}

/// Every environment variable this build reads, in the order the documentation lists them:
/// the modules' tables joined.
pub fn env_vars() -> Vec<EnvVar> {
    fn vars<C>(table: &'static [Setting<C>]) -> impl Iterator<Item = EnvVar> {
        table.iter().map(|setting| setting.var)
    }
    let all = vars(LogConfig::ENV)
        .chain(vars(ServerConfig::ENV))
        .chain(vars(Config::ENV));
    #[cfg(feature = "middleware")]
    let all = all.chain(vars(HttpConfig::ENV));
    #[cfg(feature = "metrics")]
    let all = all.chain(vars(MetricsConfig::ENV));
    #[cfg(feature = "otlp")]
    let all = all.chain(vars(crate::otlp::OtlpConfig::ENV));
    #[cfg(feature = "health")]
    let all = all.chain(vars(HealthConfig::ENV));
    #[cfg(feature = "ratelimit")]
    let all = all.chain(vars(RateLimitConfig::ENV));
    #[cfg(feature = "broadcast")]
    let all = all.chain(vars(BroadcastConfig::ENV));
    #[cfg(feature = "storage")]
    let all = all.chain(vars(StorageConfig::ENV));
    #[cfg(feature = "cache")]
    let all = all.chain(vars(CacheConfig::ENV));
    #[cfg(feature = "session")]
    let all = all.chain(vars(SessionConfig::ENV));
    #[cfg(feature = "sqlx-postgres")]
    let all = all.chain(vars(DatabaseConfig::ENV));
    #[cfg(feature = "redis")]
    let all = all.chain(vars(RedisConfig::ENV));
    all.collect()
}

/// The variables of each optional feature, so that a build without the feature can say which
/// one a variable needs instead of ignoring it. With every feature on, a test checks each list
/// against the feature's own table.
pub const FEATURE_VARS: &[(&str, &[&str])] = &[
    (
        "middleware",
        &[
            "RUSTFORGE_REQUEST_ID_HEADER",
            "RUSTFORGE_CORS_ORIGINS",
            "RUSTFORGE_CORS_CREDENTIALS",
            "RUSTFORGE_CORS_HEADERS",
            "RUSTFORGE_CORS_MAX_AGE",
            "RUSTFORGE_COMPRESSION",
            "RUSTFORGE_COMPRESSION_LEVEL",
            "RUSTFORGE_COMPRESSION_MIN_SIZE",
            "RUSTFORGE_REQUEST_TIMEOUT",
            "RUSTFORGE_BODY_LIMIT",
        ],
    ),
    (
        "metrics",
        &[
            "RUSTFORGE_METRICS",
            "RUSTFORGE_METRICS_PATH",
            "RUSTFORGE_METRICS_TOKEN",
            "RUSTFORGE_METRICS_PORT",
        ],
    ),
    (
        "otlp",
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_METRIC_EXPORT_INTERVAL",
        ],
    ),
    (
        "health",
        &[
            "RUSTFORGE_HEALTH_TOKEN",
            "RUSTFORGE_HEALTH_TIMEOUT",
            "RUSTFORGE_HEALTH_CACHE_TTL",
            "RUSTFORGE_HEALTH_PUBLIC_DETAILS",
            "RUSTFORGE_HEALTH_DISK_PATH",
            "RUSTFORGE_HEALTH_DISK_WARN",
            "RUSTFORGE_HEALTH_DISK_FAIL",
            "RUSTFORGE_HEALTH_MEMORY_WARN",
            "RUSTFORGE_HEALTH_MEMORY_FAIL",
            "RUSTFORGE_HEALTH_REDIS_READINESS",
        ],
    ),
    (
        "ratelimit",
        &[
            "RUSTFORGE_RATE_LIMIT",
            "RUSTFORGE_RATE_LIMIT_ALGORITHM",
            "RUSTFORGE_RATE_LIMIT_KEY",
            "RUSTFORGE_RATE_LIMIT_STORE",
            "RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE",
            "RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS",
            "RUSTFORGE_RATE_LIMIT_TIMEOUT",
            "RUSTFORGE_RATE_LIMIT_HEADERS",
            "RUSTFORGE_RATE_LIMIT_IPV6_PREFIX",
            "RUSTFORGE_TRUSTED_PROXIES",
            "RUSTFORGE_PROXY_HEADER",
        ],
    ),
    (
        "broadcast",
        &[
            "PUSHER_APP_ID",
            "PUSHER_APP_KEY",
            "PUSHER_APP_SECRET",
            "RUSTFORGE_BROADCAST_CLIENT_EVENTS",
            "RUSTFORGE_BROADCAST_STORE",
            "RUSTFORGE_BROADCAST_MAX_CONNECTIONS",
            "RUSTFORGE_BROADCAST_MAX_CONNECTIONS_PER_IP",
            "RUSTFORGE_BROADCAST_MAX_CHANNELS_PER_CONNECTION",
            "RUSTFORGE_BROADCAST_SEND_QUEUE",
            "RUSTFORGE_BROADCAST_SUBSCRIBE_RATE",
            "RUSTFORGE_BROADCAST_WEBHOOK_URL",
            "RUSTFORGE_BROADCAST_NODE_TIMEOUT",
            "RUSTFORGE_BROADCAST_HOLD_EVENTS",
            "RUSTFORGE_BROADCAST_HOLD_BYTES",
            "RUSTFORGE_BROADCAST_HOLD_AGE",
            "RUSTFORGE_BROADCAST_RECOVERY",
            "RUSTFORGE_BROADCAST_HISTORY_EVENTS",
            "RUSTFORGE_BROADCAST_HISTORY_AGE",
            "RUSTFORGE_BROADCAST_HISTORY_BYTES",
        ],
    ),
    (
        "storage",
        &[
            "RUSTFORGE_STORAGE_DISK",
            "RUSTFORGE_STORAGE_ROOT",
            "RUSTFORGE_STORAGE_PUBLIC_URL",
            "RUSTFORGE_STORAGE_SIGNING_KEY",
            "RUSTFORGE_APP_URL",
        ],
    ),
    (
        "cache",
        &[
            "RUSTFORGE_CACHE_STORE",
            "RUSTFORGE_CACHE_PREFIX",
            "RUSTFORGE_CACHE_DEFAULT_TTL",
            "RUSTFORGE_CACHE_MAX_ENTRIES",
            "RUSTFORGE_CACHE_MAX_BYTES",
            "RUSTFORGE_CACHE_REMEMBER_LOCK",
            "RUSTFORGE_CACHE_FLUSH_CHECK",
            "RUSTFORGE_CACHE_HEALTH_CHECK",
        ],
    ),
    (
        "session",
        &[
            "RUSTFORGE_SESSION_STORE",
            "RUSTFORGE_SESSION_COOKIE",
            "RUSTFORGE_SESSION_TTL",
            "RUSTFORGE_SESSION_ABSOLUTE_TTL",
            "RUSTFORGE_SESSION_SECRET",
            "RUSTFORGE_SESSION_SECURE",
            "RUSTFORGE_SESSION_SAME_SITE",
            "RUSTFORGE_SESSION_MAX_SIZE",
            "RUSTFORGE_SESSION_MAX_SESSIONS",
            "RUSTFORGE_SESSION_MAX_BYTES",
        ],
    ),
    (
        // Not DATABASE_URL: other tools read it too (see `check_not_compiled_out`).
        "sqlx-postgres",
        &[
            "RUSTFORGE_DB_MAX_CONNECTIONS",
            "RUSTFORGE_DB_MIN_CONNECTIONS",
            "RUSTFORGE_DB_ACQUIRE_TIMEOUT",
            "RUSTFORGE_DB_IDLE_TIMEOUT",
            "RUSTFORGE_DB_MAX_LIFETIME",
            "RUSTFORGE_DB_LIFETIME_JITTER",
            "RUSTFORGE_DB_STATEMENT_TIMEOUT",
            "RUSTFORGE_DB_APPLICATION_NAME",
            "RUSTFORGE_DB_READINESS",
        ],
    ),
    (
        "redis",
        &[
            "REDIS_URL",
            "RUSTFORGE_REDIS_PREFIX",
            "RUSTFORGE_REDIS_POOL_SIZE",
            "RUSTFORGE_REDIS_CONNECT_TIMEOUT",
            "RUSTFORGE_REDIS_COMMAND_TIMEOUT",
            "RUSTFORGE_REDIS_BREAKER_FAILURES",
            "RUSTFORGE_REDIS_BREAKER_PROBE_INTERVAL",
            "RUSTFORGE_REDIS_CA_CERT",
            "RUSTFORGE_REDIS_CLIENT_CERT",
            "RUSTFORGE_REDIS_CLIENT_KEY",
            "RUSTFORGE_REDIS_SENTINEL_USERNAME",
            "RUSTFORGE_REDIS_SENTINEL_PASSWORD",
        ],
    ),
];

/// A variable no table of this build declares: an error when it belongs to a feature that is
/// compiled out (and is not empty), or when it looks like ours (`RUSTFORGE_*`, a typo);
/// anything else in the environment is none of our business.
fn check_not_compiled_out(name: &str, value: &str) -> Result<(), ConfigError> {
    let feature = FEATURE_VARS
        .iter()
        .find(|(_, names)| names.contains(&name))
        .map(|(feature, _)| *feature);
    match feature {
        Some(_) if value.trim().is_empty() => Ok(()),
        Some(feature) => Err(needs_feature(name, value, feature)),
        None if name.starts_with("RUSTFORGE_") => Err(ConfigError::new(
            name,
            value,
            "unknown RUSTFORGE_ variable (see the table in rustforge_prod::config)",
        )),
        None => Ok(()),
    }
}

/// `var` asks for something the `feature` of the crate would do, and it is not compiled in.
fn needs_feature(var: &str, value: &str, feature: &str) -> ConfigError {
    ConfigError::new(
        var,
        value,
        format!("needs the `{feature}` feature of rustforge-prod, which this build does not have"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in the test command's default-feature pass, where `redis` and `otlp` are off.
    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_variable_of_a_compiled_out_feature_names_the_feature() {
        let err = Config::from_vars([("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap_err();
        assert_eq!(err.setting(), "REDIS_URL");
        assert_eq!(err.value(), "redis://127.0.0.1:6379");
        assert!(err.reason().contains("`redis` feature"), "{err}");
        // Empty is unset, not a request for the feature.
        Config::from_vars([("REDIS_URL", "")]).unwrap();
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn otlp_export_without_the_feature_is_an_error() {
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
        ] {
            let err = Config::from_vars([(var, value)]).unwrap_err();
            assert_eq!((err.setting(), err.value()), (var, value));
            assert!(err.reason().contains("`otlp` feature"), "{err}");
        }
        Config::from_vars([
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])
        .unwrap();
    }

    #[test]
    fn unknown_rustforge_variables_are_errors_and_others_are_ignored() {
        let err = Config::from_vars([("RUSTFORGE_REQEST_TIMEOUT", "5s")]).unwrap_err();
        assert_eq!(err.setting(), "RUSTFORGE_REQEST_TIMEOUT");
        Config::from_vars([("PATH", "/usr/bin")]).unwrap();
    }
}
