//! A cache with TTLs, tags, locks and stampede-protected `remember` (feature `cache`): in this
//! process ([`MemoryStore`], moka) or shared by every server ([`RedisStore`], feature `redis`).
//!
//! ```
//! use std::time::Duration;
//! use rustforge_prod::cache::{Cache, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::cache::CacheError> {
//! let cache = Cache::new(MemoryStore::new(10_000)).with_default_ttl(Some(Duration::from_secs(600)));
//!
//! // Read-through, with the loader run once however many requests miss at the same time.
//! let posts: Vec<String> = cache
//!     .tags(&["posts"])
//!     .remember("front-page", None, || async {
//!         Ok::<_, std::io::Error>(vec!["hello".to_owned()])
//!     })
//!     .await?;
//! assert_eq!(posts, ["hello"]);
//!
//! // A new post: everything tagged `posts` is stale at once.
//! cache.tags(&["posts"]).flush().await?;
//! assert_eq!(cache.tags(&["posts"]).get::<Vec<String>>("front-page").await, None);
//! # Ok(())
//! # }
//! ```
//!
//! With `ProductionLayer`, the cache is configured from the environment
//! (`RUSTFORGE_CACHE_*`, on Redis when `REDIS_URL` is set) and handed out by
//! [`ProductionLayer::cache`](crate::ProductionLayer::cache).
//!
//! **Encoding.** Values are stored as `v1:` followed by their JSON, integers as bare digits
//! (so `increment` works on them). A stored value that does not decode as the type asked for —
//! written by an older deploy whose type has changed, or in another encoding version — is a
//! miss (counted under `rustforge.cache.errors{operation="decode"}`), and the next write
//! replaces it.
//!
//! **Failures.** A read that fails is a miss: the route keeps serving, slower, while Redis is
//! down; each failure is counted and logged at most every ten seconds. Writes, counters, locks
//! and flushes return [`CacheError`]. `remember` runs its loader when the store fails and
//! returns the value uncached.
//!
//! Guide: `docs/cache.md`.

#[allow(clippy::module_inception)]
mod cache;
mod codec;
mod config;
mod flexible;
mod flight;
mod generation;
#[cfg(feature = "metrics")]
mod instruments;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod store;
mod tags;

use std::sync::Arc;

pub use cache::Cache;
pub use config::{CacheConfig, StoreKind};
pub use lock::{Lock, LockGuard};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use store::{BoxFuture, CacheError, CacheStore};
pub use tags::TaggedCache;

use crate::backend::RedisRef;
use crate::error::ConfigError;

/// The cache of `ProductionLayer`: on the configured store, with the configured prefix, TTL,
/// flush check and remember lock.
pub(crate) fn build(config: &CacheConfig, redis: RedisRef<'_>) -> Result<Cache, ConfigError> {
    let kind = config.store.unwrap_or(match redis {
        Some(_) => StoreKind::Redis,
        None => StoreKind::Memory,
    });
    let store: Arc<dyn CacheStore> = match (kind, redis) {
        #[cfg(feature = "redis")]
        (StoreKind::Redis, Some(redis)) => Arc::new(RedisStore::new(redis.clone())),
        (StoreKind::Redis, _) => {
            return Err(crate::backend::redis_store_without_redis("cache.store"));
        }
        (StoreKind::Memory, _) => {
            Arc::new(MemoryStore::bounded(config.max_entries, config.max_bytes))
        }
    };
    let cache = Cache::from_store(store)
        .with_prefix(config.prefix.clone())
        .with_default_ttl(config.default_ttl)
        .with_flush_check(config.flush_check);
    Ok(match config.remember_lock {
        Some(wait) => cache.with_remember_lock(wait),
        None => cache,
    })
}

/// The cache with its instruments.
#[cfg(feature = "metrics")]
pub(crate) fn instruments(meter: &opentelemetry::metrics::Meter, cache: Cache) -> Cache {
    cache.with_observer(instruments::observer(meter))
}
