//! [`CacheConfig`]: the store, the prefix and the defaults, from code or the environment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::backend::StoreKind;
use crate::env::{Setting, parse};
use crate::error::ConfigError;

/// Cache settings. The cache is always there when the `cache` feature is on; it costs nothing
/// until used.
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::Config;
/// use rustforge_prod::cache::StoreKind;
///
/// let config = Config::from_vars([
///     ("RUSTFORGE_CACHE_STORE", "memory"),
///     ("RUSTFORGE_CACHE_DEFAULT_TTL", "10m"),
///     ("RUSTFORGE_CACHE_MAX_ENTRIES", "50000"),
/// ])?;
/// assert_eq!(config.cache.store, Some(StoreKind::Memory));
/// assert_eq!(config.cache.default_ttl, Some(Duration::from_secs(600)));
/// assert_eq!(config.cache.max_entries, 50_000);
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Where entries live; default: Redis when Redis is configured, else memory.
    pub store: Option<StoreKind>,
    /// Put before every key (default `cache`): keeps the cache apart from sessions, rate-limit
    /// counters and other apps on one Redis.
    pub prefix: String,
    /// TTL of writes that give none (default 1 hour; `None`: kept until removed or evicted).
    #[serde(with = "humantime_serde")]
    pub default_ttl: Option<Duration>,
    /// Entries the memory store holds at most (default 100,000).
    pub max_entries: u64,
    /// Bytes of keys and values the memory store holds at most, plus 96 per entry (default
    /// 256 MiB).
    pub max_bytes: u64,
    /// `remember` loads a missing key on one server at a time, the others waiting up to this
    /// long for its value (default off: each server loads once).
    #[serde(with = "humantime_serde")]
    pub remember_lock: Option<Duration>,
    /// How often a cache reads its flush generation again: a `flush` on another server is
    /// seen within this long (default 1 s).
    #[serde(with = "humantime_serde")]
    pub flush_check: Duration,
    /// Register a `cache` health check (a round trip to the store, reported but never failing
    /// readiness; default off).
    pub health_check: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            store: None,
            prefix: "cache".to_owned(),
            default_ttl: Some(Duration::from_secs(3600)),
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
            remember_lock: None,
            flush_check: super::cache::FLUSH_CHECK,
            health_check: false,
        }
    }
}

impl CacheConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "cache.prefix",
                &self.prefix,
                "expected a non-empty prefix without spaces",
            ));
        }
        for (setting, value) in [
            ("cache.max_entries", self.max_entries),
            ("cache.max_bytes", self.max_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(setting, "0", "must be at least 1"));
            }
        }
        if self.flush_check.is_zero() {
            return Err(ConfigError::new(
                "cache.flush_check",
                "0s",
                "must be greater than zero",
            ));
        }
        for (setting, value) in [
            ("cache.default_ttl", self.default_ttl),
            ("cache.remember_lock", self.remember_lock),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::new(
                    setting,
                    "0s",
                    "must be greater than zero (or unset)",
                ));
            }
        }
        Ok(())
    }

    /// The environment variables of the cache.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_CACHE_STORE",
            "cache.store",
            "`redis` when `REDIS_URL` is set, else `memory`",
            "where cache entries live: `memory` or `redis`",
            |c, var, v| {
                c.store = Some(parse::from_str(var, v)?);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_PREFIX",
            "cache.prefix",
            "`cache`",
            "put before every cache key",
            |c, _, v| {
                c.prefix = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_DEFAULT_TTL",
            "cache.default_ttl",
            "`1h`",
            "TTL of cache writes that give none; `off`: kept until removed or evicted",
            |c, var, v| {
                c.default_ttl = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_MAX_ENTRIES",
            "cache.max_entries",
            "`100000`",
            "entries the in-process cache holds at most",
            |c, var, v| {
                c.max_entries = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_MAX_BYTES",
            "cache.max_bytes",
            "`256MiB`",
            "bytes of keys and values the in-process cache holds at most (plus 96 per entry)",
            |c, var, v| {
                c.max_bytes = parse::size(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_REMEMBER_LOCK",
            "cache.remember_lock",
            "`off`",
            "`remember` loads a missing key on one server at a time; others wait up to this long",
            |c, var, v| {
                c.remember_lock = parse::optional_duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_FLUSH_CHECK",
            "cache.flush_check",
            "`1s`",
            "how often a cache reads its flush generation again: another server's `flush` is seen within it",
            |c, var, v| {
                c.flush_check = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_CACHE_HEALTH_CHECK",
            "cache.health_check",
            "`false`",
            "report a `cache` health check (never fails readiness)",
            |c, var, v| {
                c.health_check = parse::bool(var, v)?;
                Ok(())
            },
        ),
    ];
}
