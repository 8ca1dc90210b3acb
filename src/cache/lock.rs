//! Locks: a lease on a name, held by an owner token, released by its owner only.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::cache::Cache;
use super::store::CacheError;

/// A lock on a name, shared by every server on the same store (Laravel's `Cache::lock`).
///
/// Acquiring stores a random owner token under the name for `ttl` (Redis `SET NX PX`); only a
/// holder of that token can release it (compare-and-delete in one step). The lock is a
/// **lease**: after `ttl` it frees itself, whether or not the holder is done, and a Redis
/// failover can lose it. Use it to keep work from running twice at once, not as the only
/// guard of data that must never be written concurrently (a fencing token in the database is
/// what gives that).
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::cache::{Cache, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustforge_prod::cache::CacheError> {
/// let cache = Cache::new(MemoryStore::new(100));
/// let lock = cache.lock("nightly-report", Duration::from_secs(60));
/// let guard = lock.try_acquire().await?.expect("nobody holds it");
/// assert!(lock.try_acquire().await?.is_none());
/// assert!(guard.release().await?);
/// let again = lock.block(Duration::from_secs(1)).await?;
/// again.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Lock {
    cache: Cache,
    name: String,
    key: String,
    ttl: Duration,
    owner: Option<String>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The first and the longest pause between two attempts of [`Lock::block`].
const RETRY_FIRST: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_millis(100);

impl Lock {
    pub(super) fn new(cache: Cache, name: &str, ttl: Duration, owner: Option<String>) -> Self {
        let key = cache.lasting_key(&format!("lock:{name}"));
        Self {
            cache,
            name: name.to_owned(),
            key,
            ttl: ttl.max(Duration::from_millis(1)),
            owner,
        }
    }

    /// Takes the lock when it is free; `None` when someone holds it.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, CacheError> {
        let owner = self
            .owner
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let store = self.cache.store();
        let taken = self
            .cache
            .write(
                "lock",
                store.add(&self.key, Bytes::from(owner.clone()), Some(self.ttl)),
            )
            .await?;
        Ok(taken.then(|| self.guard(owner)))
    }

    /// Waits up to `wait` for the lock (retrying with a growing pause, 5 ms to 100 ms);
    /// [`CacheError::LockTimeout`] when it stayed taken.
    pub async fn block(&self, wait: Duration) -> Result<LockGuard, CacheError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = RETRY_FIRST;
        loop {
            if let Some(guard) = self.try_acquire().await? {
                return Ok(guard);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(CacheError::LockTimeout {
                    name: self.name.clone(),
                    waited: wait,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// The guard of a lock this owner token holds (from [`Cache::restore_lock`]), to release it.
    /// Releasing does nothing when the token no longer holds the lock.
    pub fn restored(&self) -> Option<LockGuard> {
        self.owner.clone().map(|owner| self.guard(owner))
    }

    /// Releases the lock whoever holds it (Laravel's `forceRelease`).
    pub async fn force_release(&self) -> Result<bool, CacheError> {
        let store = self.cache.store();
        self.cache.write("unlock", store.forget(&self.key)).await
    }

    fn guard(&self, owner: String) -> LockGuard {
        LockGuard {
            cache: self.cache.clone(),
            key: self.key.clone(),
            owner,
            released: false,
        }
    }
}

/// A held lock. [`release`](Self::release) frees it; dropping the guard releases it in a
/// background task (when a Tokio runtime is running), and the TTL frees it in any case.
pub struct LockGuard {
    cache: Cache,
    key: String,
    owner: String,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The owner token: hand it to another task or process, which releases the lock through
    /// [`Cache::restore_lock`].
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Releases the lock if this owner still holds it; whether it did (`false`: the lease ran
    /// out, and someone else may hold it now).
    pub async fn release(mut self) -> Result<bool, CacheError> {
        self.released = true;
        release(&self.cache, &self.key, &self.owner).await
    }

    /// Keeps the lock held past its TTL: drops the guard without releasing it.
    pub fn keep(mut self) {
        self.released = true;
    }
}

async fn release(cache: &Cache, key: &str, owner: &str) -> Result<bool, CacheError> {
    let store = cache.store();
    cache
        .write("unlock", store.forget_if(key, owner.as_bytes()))
        .await
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key, owner) = (
                self.cache.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.owner),
            );
            runtime.spawn(async move { release(&cache, &key, &owner).await });
        }
    }
}

/// What a server does about a missing key when `remember` is locked across servers.
pub(super) enum Turn {
    /// Another server loaded it while this one waited.
    Stored(Bytes),
    /// Load it: under the lock when this server got it, without when the lock holder did not
    /// store anything within the wait (or the store failed).
    Load(Option<LockGuard>),
}

/// The suffix of a remember lock's key (after the entry's).
pub(super) const REMEMBER_LOCK: &str = ":remember-lock";

/// Takes the remember lock of `full`, or waits for its holder's value.
pub(super) async fn remember_turn(cache: &Cache, full: &str, wait: Duration) -> Turn {
    let lock = Lock {
        cache: cache.clone(),
        name: format!("remember:{full}"),
        key: format!("{full}{REMEMBER_LOCK}"),
        ttl: wait,
        owner: None,
    };
    match lock.try_acquire().await {
        Ok(Some(guard)) => {
            // The holder before us may have stored the value just before releasing.
            match cache.store().get(full).await {
                Ok(Some(bytes)) => Turn::Stored(bytes),
                _ => Turn::Load(Some(guard)),
            }
        }
        Ok(None) => {
            let deadline = tokio::time::Instant::now() + wait;
            let mut pause = RETRY_FIRST;
            loop {
                match cache.store().get(full).await {
                    Ok(Some(bytes)) => return Turn::Stored(bytes),
                    Ok(None) => {}
                    Err(_) => return Turn::Load(None),
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Turn::Load(None);
                }
                // The holder may have failed and released: take over at once.
                if let Ok(Some(guard)) = lock.try_acquire().await {
                    return Turn::Load(Some(guard));
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
        Err(_) => Turn::Load(None),
    }
}
