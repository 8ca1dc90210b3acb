//! The backend seam: [`CacheStore`] and how a cache operation fails ([`CacheError`]).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

pub use crate::util::BoxFuture;
use crate::util::Cause;

/// Where cache entries live: [`MemoryStore`](super::MemoryStore) in this process,
/// [`RedisStore`](super::RedisStore) (feature `redis`) shared by every server.
///
/// A store holds bytes under string keys; [`Cache`](super::Cache) does the typing, the prefix,
/// tags, locks and `remember`. `ttl` `None` keeps an entry until it is removed or evicted. Every
/// store passes the same conformance suite (`rustforge_prod::testing::cache`, feature
/// `test-util`).
pub trait CacheStore: fmt::Debug + Send + Sync + 'static {
    /// The value under `key`, `None` when absent or expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, CacheError>>;

    /// The values under `keys`, in their order.
    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>, CacheError>>;

    /// Stores each entry with the same `ttl`, replacing what was there (and its TTL).
    fn put_many<'a>(
        &'a self,
        entries: &'a [(String, Bytes)],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>>;

    /// Stores `value` only when `key` is absent, atomically; whether it was stored.
    fn add<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>>;

    /// Gives the entry under `key` a new `ttl` (`None`: none), keeping its value; whether it
    /// was there.
    fn touch<'a>(
        &'a self,
        key: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>>;

    /// Removes `key`; whether it was there.
    fn forget<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>>;

    /// Removes `key` only while it holds `value`, atomically (a lock's owner-only release);
    /// whether it was removed.
    fn forget_if<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, CacheError>>;

    /// Adds `by` to the integer under `key` atomically and returns the new value; an absent key
    /// counts from 0 and is stored without a TTL; an existing entry keeps its TTL. A value that
    /// is not an integer is [`CacheError::NotAnInteger`].
    fn increment<'a>(&'a self, key: &'a str, by: i64) -> BoxFuture<'a, Result<i64, CacheError>>;

    /// Removes every entry whose key starts with `prefix`, except those `keep` is true for;
    /// how many it removed. It need not be atomic: entries written while it runs may stay.
    fn flush<'a>(
        &'a self,
        prefix: &'a str,
        keep: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> BoxFuture<'a, Result<u64, CacheError>>;

    /// A cheap round trip to the backend, for the optional health check.
    fn ping(&self) -> BoxFuture<'_, Result<(), CacheError>>;

    /// A short name for metrics and logs: `memory`, `redis`.
    fn name(&self) -> &'static str;
}

/// A cache operation that failed.
///
/// Reads never return a backend failure: a read that fails is a miss (and a counted error), so a
/// Redis outage slows a cached route down instead of taking it down. Writes, counters and locks
/// return it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The store failed (Redis unreachable, timed out, or answered with an error).
    #[error("cache store failed: {0}")]
    Backend(#[source] Cause),
    /// `increment`/`decrement` on a value that is not an integer.
    #[error("the cached value under {key:?} is not an integer")]
    NotAnInteger {
        /// The key, with the cache prefix.
        key: String,
    },
    /// The value could not be encoded (a `Serialize` implementation failed).
    #[error("the value for {key:?} cannot be encoded: {reason}")]
    Encode {
        /// The key, with the cache prefix.
        key: String,
        /// What serde said.
        reason: String,
    },
    /// A `remember` loader failed; nothing was cached. Every caller that waited on this load gets
    /// the same error (downcast the source to the loader's own type).
    #[error("the loader for {key:?} failed: {source}")]
    Loader {
        /// The key, with the cache prefix.
        key: String,
        /// The loader's error.
        source: Cause,
    },
    /// [`Lock::block`](super::Lock::block) waited its whole time without getting the lock.
    #[error("lock {name:?} was not acquired within {waited:?}")]
    LockTimeout {
        /// The lock's name.
        name: String,
        /// How long it waited.
        waited: Duration,
    },
}

#[cfg(feature = "redis")]
impl From<crate::redis::RedisError> for CacheError {
    fn from(err: crate::redis::RedisError) -> Self {
        Self::Backend(crate::util::cause(err))
    }
}
