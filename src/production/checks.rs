//! Checks that span modules: settings that only make sense together, and the health checks one
//! module provides for another.

use crate::config::Config;
use crate::error::ConfigError;

/// The settings of one module that need another: a Redis store needs Redis. Run by
/// [`Config::validate`].
pub(crate) fn check_config(config: &Config) -> Result<(), ConfigError> {
    #[cfg(feature = "redis")]
    let has_redis = config.redis.is_some();
    #[cfg(not(feature = "redis"))]
    let has_redis = false;
    #[cfg(feature = "broadcast")]
    crate::broadcast::check_store(&config.broadcast, has_redis)?;
    #[cfg(feature = "ratelimit")]
    if config.rate_limit.store == Some(crate::ratelimit::StoreKind::Redis) && !has_redis {
        return Err(crate::ratelimit::redis_store_without_redis());
    }
    #[cfg(feature = "cache")]
    if config.cache.store == Some(crate::backend::StoreKind::Redis) && !has_redis {
        return Err(crate::backend::redis_store_without_redis("cache.store"));
    }
    #[cfg(feature = "session")]
    if config.session.store == Some(crate::backend::StoreKind::Redis) && !has_redis {
        return Err(crate::backend::redis_store_without_redis("session.store"));
    }
    let _ = (config, has_redis);
    Ok(())
}

/// The readiness check of a storage disk, named `storage-<disk>`: a timed
/// [`Disk::ping`](crate::storage::Disk::ping) — one metadata request for a path that need not
/// exist, so "not found" is healthy and nothing is written. `ProductionLayer` registers it for
/// the default disk; add it for others with
/// [`health_check`](crate::ProductionLayerBuilder::health_check).
///
/// ```
/// use rustforge_prod::health::HealthCheck;
/// use rustforge_prod::production::storage_check;
/// use rustforge_prod::storage::Storage;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = Storage::memory();
/// let check = storage_check(storage.default_disk().clone());
/// assert_eq!(check.name(), "storage-memory");
/// assert_eq!(check.check().await.status.as_str(), "pass");
/// # }
/// ```
#[cfg(all(feature = "storage", feature = "health"))]
pub fn storage_check(disk: crate::storage::Disk) -> impl crate::health::HealthCheck {
    use crate::health::{BoxFuture, LatencyCheck};
    use crate::storage::StorageError;

    LatencyCheck::new(format!("storage-{}", disk.name()), move || {
        let disk = disk.clone();
        Box::pin(async move { disk.ping().await }) as BoxFuture<'static, Result<(), StorageError>>
    })
}

/// The `cache` health check: a timed [`Cache::ping`](crate::cache::Cache::ping) (Redis `PING`
/// for the Redis store). Reported, never failing readiness: a cache outage slows requests
/// down (reads are misses) but does not stop them. `ProductionLayer` registers it when
/// `RUSTFORGE_CACHE_HEALTH_CHECK` is on.
///
/// ```
/// use rustforge_prod::cache::{Cache, MemoryStore};
/// use rustforge_prod::health::HealthCheck;
/// use rustforge_prod::production::cache_check;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let check = cache_check(Cache::new(MemoryStore::new(10)));
/// assert_eq!(check.name(), "cache");
/// assert_eq!(check.check().await.status.as_str(), "pass");
/// # }
/// ```
#[cfg(all(feature = "cache", feature = "health"))]
pub fn cache_check(cache: crate::cache::Cache) -> impl crate::health::HealthCheck {
    use crate::cache::CacheError;
    use crate::health::{BoxFuture, LatencyCheck};

    LatencyCheck::new("cache", move || {
        let cache = cache.clone();
        Box::pin(async move { cache.ping().await }) as BoxFuture<'static, Result<(), CacheError>>
    })
    .not_critical()
}
