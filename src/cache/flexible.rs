//! [`Cache::flexible`]: stale-while-revalidate — Laravel 11's `Cache::flexible`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cache::{Cache, Ttl};
use super::flight::{Landing, Role};
use super::store::CacheError;

/// How long a background refresh may hold its lock when the cache has no remember lock.
const REFRESH_LEASE: Duration = Duration::from_secs(30);

/// A flexible entry: the value and until when it is fresh (unix milliseconds).
#[derive(Serialize, Deserialize)]
struct Flexible<T> {
    fresh_until: u64,
    value: T,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cache {
    /// The value under `key`, kept fresh without making a request wait: Laravel's
    /// `Cache::flexible($key, [$fresh, $stale], …)`.
    ///
    /// - younger than `fresh`: served;
    /// - between `fresh` and `stale` old: served at once, and refreshed in the background —
    ///   once per fleet: one task per process asks for a lock in the store (the
    ///   [remember lock](Self::with_remember_lock)'s lease, 30 s without one), and only its
    ///   holder runs `load`; a failed refresh is logged and the old value served until `stale`;
    /// - older than `stale`, or absent: loaded like [`remember`](Self::remember) (one load per
    ///   process, per fleet with the remember lock), the request waits.
    ///
    /// The entry holds the value and its freshness: read it with `flexible`, not
    /// [`get`](Self::get). `stale` below `fresh` counts as `fresh`. The refresh runs on the Tokio
    /// runtime, which is why `load` must be `Send + 'static`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rustforge_prod::cache::{Cache, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rustforge_prod::cache::CacheError> {
    /// let cache = Cache::new(MemoryStore::new(1_000));
    /// // Fresh for 5 s; up to 10 min old while a refresh runs.
    /// let stats: u64 = cache
    ///     .flexible("stats", Duration::from_secs(5), Duration::from_secs(600), || async {
    ///         Ok::<_, std::io::Error>(42)
    ///     })
    ///     .await?;
    /// assert_eq!(stats, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flexible<T, E, F, Fut>(
        &self,
        key: &str,
        fresh: Duration,
        stale: Duration,
        load: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let full = self.key(key).await;
        let stale = stale.max(fresh);
        if let Some(entry) = self.read::<Flexible<T>>(&full).await {
            if unix_ms() >= entry.fresh_until {
                self.refresh_in_background(key, full, fresh, stale, load);
            }
            return Ok(entry.value);
        }
        let entry = self
            .remember_full(full, Ttl::For(stale), move || flexible_load(load, fresh))
            .await?;
        Ok(entry.value)
    }

    /// Refreshes a stale flexible entry in a task of its own: one per process (a single
    /// flight) and, through a lock in the store, one per fleet.
    fn refresh_in_background<T, E, F, Fut>(
        &self,
        key: &str,
        full: String,
        fresh: Duration,
        stale: Duration,
        load: F,
    ) where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.refreshes().is_flying(&full) {
            return; // this process already refreshes it: no task to spawn
        }
        let cache = self.clone();
        let lease = self.remember_lock().unwrap_or(REFRESH_LEASE);
        let lock = self.lock(&format!("flexible:{key}"), lease);
        tokio::spawn(async move {
            let Role::Leader(pilot) = cache.refreshes().join(&full) else {
                return; // this process already refreshes it
            };
            let guard = match lock.try_acquire().await {
                Ok(Some(guard)) => guard,
                Ok(None) => return, // another server refreshes it
                Err(err) => {
                    cache.warn(
                        &err,
                        "flexible: the refresh lock failed; serving the stale value",
                    );
                    return;
                }
            };
            // A refresh that ended between our read and our lock has stored a fresh value.
            let current = cache.read::<Flexible<T>>(&full).await;
            if current.is_none_or(|entry| unix_ms() >= entry.fresh_until) {
                let stored = cache
                    .load_and_store(&full, Ttl::For(stale), move || flexible_load(load, fresh))
                    .await;
                if let Err(error) = stored {
                    tracing::warn!(%error, key = %full, "flexible: the refresh failed; serving the stale value");
                }
            }
            let _ = guard.release().await;
            pilot.land(Landing::Abandoned);
        });
    }
}

/// `load`, its value wrapped with when it stops being fresh.
async fn flexible_load<T, E, F, Fut>(load: F, fresh: Duration) -> Result<Flexible<T>, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let value = load().await?;
    Ok(Flexible {
        fresh_until: unix_ms() + fresh.as_millis() as u64,
        value,
    })
}
