//! Where a module keeps its state: the `store = memory | redis` setting the rate limiter and
//! the cache share, and the shared Redis handle as a module's build step receives it.

// Each module uses what it needs; with some features off, some go unused.
#![allow(dead_code)]

use crate::error::ConfigError;

/// Where a module keeps its state: in this process, or in the shared Redis (so every server
/// sees the same). The rate limiter's, the cache's and the session store's setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// In this process: nothing to run, nothing shared between servers.
    Memory,
    /// In the shared Redis (feature `redis`).
    Redis,
}

impl std::str::FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            _ => Err("expected memory or redis".into()),
        }
    }
}

/// The shared Redis handle, when the crate is built with Redis.
#[cfg(feature = "redis")]
pub(crate) type RedisRef<'a> = Option<&'a crate::redis::RedisHandle>;
/// Without the `redis` feature there is never a handle.
#[cfg(not(feature = "redis"))]
pub(crate) type RedisRef<'a> = Option<&'a ()>;

/// A module's `store = redis` setting with no Redis configured (or compiled in).
pub(crate) fn redis_store_without_redis(setting: &str) -> ConfigError {
    ConfigError::new(
        setting,
        "redis",
        "the Redis store needs Redis: set REDIS_URL (and the `redis` feature)",
    )
}
