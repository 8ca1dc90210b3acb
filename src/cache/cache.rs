//! [`Cache`]: the typed facade over a [`CacheStore`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::flight::{Flights, Landing, Role, follow};
use super::generation::Generation;
use super::lock::{Lock, REMEMBER_LOCK};
use super::store::{CacheError, CacheStore};
use super::tags::TaggedCache;
use crate::util::Cause;

/// Hears what the cache did, for metrics (`cache::instruments`).
pub(crate) trait CacheObserver: Send + Sync {
    /// A read answered: found or not (a failed read is a miss and an error).
    fn read(&self, store: &'static str, hit: bool);
    /// An operation failed in the store.
    fn error(&self, store: &'static str, operation: &'static str);
    /// A `remember` loader ran.
    fn loaded(&self, store: &'static str, elapsed: Duration, ok: bool);
}

/// A typed cache with Laravel's vocabulary, on any [`CacheStore`]; cheap to clone.
///
/// Values are anything serde handles (the encoding is in the [module docs](super)). Keys get the
/// cache prefix (`cache:` by default). A `ttl` of `None` means the default TTL
/// ([`with_default_ttl`](Self::with_default_ttl), one hour from the environment's default);
/// [`forever`](Self::forever) stores without one, and a zero TTL removes the entry.
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::cache::{Cache, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustforge_prod::cache::CacheError> {
/// let cache = Cache::new(MemoryStore::new(1_000));
/// cache.put("user:1:name", &"Ada", Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get::<String>("user:1:name").await.as_deref(), Some("Ada"));
///
/// assert!(cache.add("once", &true, None).await?);
/// assert!(!cache.add("once", &false, None).await?);
///
/// assert_eq!(cache.increment("visits", 1).await?, 1);
/// assert_eq!(cache.get::<i64>("visits").await, Some(1));
///
/// let answer: u32 = cache
///     .remember("answer", None, || async { Ok::<_, std::io::Error>(42) })
///     .await?;
/// assert_eq!(answer, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    default_ttl: Option<Duration>,
    remember_lock: Option<Duration>,
    /// The prefix and the namespace of its flush generation, shared by clones with this prefix.
    generation: Arc<Generation>,
    /// How often the flush generation is read again (another server's flush is seen within it).
    flush_check: Duration,
    flights: Flights,
    /// `flexible`'s background refreshes in progress, by key.
    refreshes: Flights,
    observer: Option<Arc<dyn CacheObserver>>,
    /// When a failed read was last logged (ms since `started`): at most one line per 10 s.
    last_warning: AtomicU64,
    started: Instant,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .field("prefix", &self.inner.generation.prefix())
            .field("default_ttl", &self.inner.default_ttl)
            .field("remember_lock", &self.inner.remember_lock)
            .field("flush_check", &self.inner.flush_check)
            .finish()
    }
}

/// How long a store failure silences the next warning about one.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// The default of [`Cache::with_flush_check`].
pub(crate) const FLUSH_CHECK: Duration = Duration::from_secs(1);

impl Cache {
    /// A cache on `store` with the prefix `cache` and entries kept until removed or evicted
    /// (no default TTL). Configure it before sharing it: a `with_*` call on a clone gives that
    /// clone its own settings.
    pub fn new(store: impl CacheStore) -> Self {
        Self::from_store(Arc::new(store))
    }

    /// [`new`](Self::new) for a store that is already shared.
    pub fn from_store(store: Arc<dyn CacheStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                default_ttl: None,
                remember_lock: None,
                generation: Arc::new(Generation::new("cache")),
                flush_check: FLUSH_CHECK,
                flights: Flights::default(),
                refreshes: Flights::default(),
                observer: None,
                last_warning: AtomicU64::new(u64::MAX),
                started: Instant::now(),
            }),
        }
    }

    /// Changes a setting; a cache already cloned gets its own copy of the settings (and its own
    /// single flight), leaving the clones as they were.
    fn edit(mut self, edit: impl FnOnce(&mut Inner)) -> Self {
        if Arc::get_mut(&mut self.inner).is_none() {
            let shared = &self.inner;
            self.inner = Arc::new(Inner {
                store: shared.store.clone(),
                default_ttl: shared.default_ttl,
                remember_lock: shared.remember_lock,
                generation: shared.generation.clone(),
                flush_check: shared.flush_check,
                flights: Flights::default(),
                refreshes: Flights::default(),
                observer: shared.observer.clone(),
                last_warning: AtomicU64::new(u64::MAX),
                started: shared.started,
            });
        }
        edit(Arc::get_mut(&mut self.inner).expect("just made unique"));
        self
    }

    /// Puts `prefix:` before every key (two apps, or a cache and sessions, sharing one Redis;
    /// after a [flush](Self::flush), `prefix#<generation>:`). Prefixes that extend one another
    /// by `:` or `#` (`cache` and `cache:v2`) share keys: give each cache its own.
    pub fn with_prefix(self, prefix: impl Into<String>) -> Self {
        self.edit(|inner| inner.generation = Arc::new(Generation::new(prefix)))
    }

    /// The TTL of writes that pass `None`; `None` here keeps them until removed or evicted.
    pub fn with_default_ttl(self, ttl: Option<Duration>) -> Self {
        self.edit(|inner| inner.default_ttl = ttl)
    }

    /// Makes [`remember`](Self::remember) run a missing key's loader on one server at a time:
    /// the first server to miss holds a lock (a lease of `wait`) while it loads; the others
    /// poll the cache for up to `wait`, then load themselves. Without it, each server runs the
    /// loader once.
    pub fn with_remember_lock(self, wait: Duration) -> Self {
        self.edit(|inner| inner.remember_lock = Some(wait))
    }

    /// How often the cache reads its flush generation again (default 1 s): a
    /// [`flush`](Self::flush) made by another server (or another `Cache` on the same store) is
    /// seen within this long; one made through this cache or its clones, at once. Each read is
    /// one `GET`, made by the first operation that finds it due; a shorter interval costs more
    /// of them.
    pub fn with_flush_check(self, every: Duration) -> Self {
        self.edit(|inner| inner.flush_check = every)
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn with_observer(self, observer: Arc<dyn CacheObserver>) -> Self {
        self.edit(|inner| inner.observer = Some(observer))
    }

    /// The store's name: `memory` or `redis`.
    pub fn store_name(&self) -> &'static str {
        self.inner.store.name()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.inner.store
    }

    /// The key as stored, in the namespace last read: `<prefix>:<key>`, or
    /// `<prefix>#<generation>:<key>` after a flush. [`key`](Self::key) reads the namespace
    /// again when it is due.
    pub(crate) fn full_key(&self, key: &str) -> String {
        self.inner.generation.full_key(key)
    }

    /// The key as stored, after reading the flush generation again when it is due.
    pub(crate) async fn key(&self, key: &str) -> String {
        self.sync().await;
        self.full_key(key)
    }

    /// Reads the flush generation again when it is due (see [`with_flush_check`](Self::with_flush_check)).
    pub(crate) async fn sync(&self) {
        let inner = &self.inner;
        inner
            .generation
            .refresh(inner.store.as_ref(), inner.flush_check)
            .await;
    }

    /// A key outside the flush generations (locks, which a flush keeps): `<prefix>:<key>`.
    pub(crate) fn lasting_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.generation.prefix())
    }

    /// The value under `key`; `None` when it is absent, expired, of another type, or the store
    /// failed (counted as an error and logged).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.read(&self.key(key).await).await
    }

    /// Whether `key` holds a value (of any type).
    pub async fn has(&self, key: &str) -> bool {
        self.read_bytes(&self.key(key).await).await.is_some()
    }

    /// The value under `key`, removed (Laravel's `pull`).
    pub async fn pull<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let full = self.key(key).await;
        let value = self.read(&full).await;
        self.write("forget", self.inner.store.forget(&full)).await?;
        Ok(value)
    }

    /// The values under `keys`, in their order, in one round trip on a single Redis.
    pub async fn many<T: DeserializeOwned>(&self, keys: &[&str]) -> Vec<Option<T>> {
        self.sync().await;
        let full: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
        self.read_many(&full).await
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL; zero: removes it).
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.put_full(self.key(key).await, value, self.ttl(ttl))
            .await
    }

    /// Stores `value` under `key` without a TTL.
    pub async fn forever<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), CacheError> {
        self.put_full(self.key(key).await, value, Ttl::Forever)
            .await
    }

    /// Stores several entries with one TTL, in one round trip on a single Redis.
    pub async fn put_many<T: Serialize>(
        &self,
        entries: &[(&str, T)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.sync().await;
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let full = self.full_key(key);
            let bytes = encode(&full, value)?;
            encoded.push((full, bytes));
        }
        match self.ttl(ttl) {
            Ttl::Remove => {
                for (key, _) in &encoded {
                    self.write("forget", self.inner.store.forget(key)).await?;
                }
                Ok(())
            }
            ttl => {
                let store = &self.inner.store;
                self.write("put", store.put_many(&encoded, ttl.duration()))
                    .await
            }
        }
    }

    /// Stores `value` only when `key` is absent (atomic: of many concurrent `add`s on any
    /// servers, one wins); whether it was stored.
    pub async fn add<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let full = self.key(key).await;
        let bytes = encode(&full, value)?;
        match self.ttl(ttl) {
            Ttl::Remove => Ok(false),
            ttl => {
                let store = &self.inner.store;
                self.write("add", store.add(&full, bytes, ttl.duration()))
                    .await
            }
        }
    }

    /// Gives the entry under `key` a new `ttl`, keeping its value (`None`: the default TTL;
    /// zero: removes it); whether it was there. Laravel's `touch`.
    pub async fn touch(&self, key: &str, ttl: Option<Duration>) -> Result<bool, CacheError> {
        let full = self.key(key).await;
        let store = &self.inner.store;
        match self.ttl(ttl) {
            Ttl::Remove => self.write("forget", store.forget(&full)).await,
            ttl => {
                self.write("touch", store.touch(&full, ttl.duration()))
                    .await
            }
        }
    }

    /// Removes `key`; whether it was there.
    pub async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        let full = self.key(key).await;
        self.write("forget", self.inner.store.forget(&full)).await
    }

    /// Empties this cache, in one write whatever its size (Laravel's `Cache::flush`, which on
    /// Redis empties the whole database; this one keeps other prefixes, sessions and rate
    /// limits): every entry — plain, counters, tagged, tag versions — is unreachable at once.
    /// Locks are kept: their holders still own them.
    ///
    /// The cache moves to a new generation (a random token under `<prefix>#generation`,
    /// named in every key); this cache and its clones use it at once, other servers within
    /// their [flush check](Self::with_flush_check) (1 s by default), without an extra round
    /// trip per read. The old keys are then removed in a background task (`SCAN` in batches
    /// and `UNLINK` on Redis, on every primary of a Cluster), which logs a failure; until then
    /// they use memory, and the TTL removes what it misses (a write another server made before
    /// it saw the flush).
    pub async fn flush(&self) -> Result<(), CacheError> {
        let inner = &self.inner;
        let replace = inner.generation.replace(inner.store.as_ref());
        self.write("flush", replace).await?;
        let cache = self.clone();
        tokio::spawn(async move {
            match cache.reclaim().await {
                Ok(removed) => tracing::debug!(removed, "cache flush: the old entries removed"),
                Err(err) => cache.warn(&err, "cache flush: the old entries could not be removed"),
            }
        });
        Ok(())
    }

    /// Removes the keys of this cache's older generations (keeping locks), how many.
    pub(crate) async fn reclaim(&self) -> Result<u64, CacheError> {
        let inner = &self.inner;
        let current = inner.generation.namespace();
        let generation = inner.generation.key();
        let locks = self.lasting_key("lock:");
        let keep = |key: &str| {
            key.starts_with(&current)
                || key == generation
                || key.starts_with(&locks)
                || key.ends_with(REMEMBER_LOCK)
        };
        let mut removed = 0;
        for space in [":", "#"] {
            let prefix = format!("{}{space}", inner.generation.prefix());
            removed += self
                .write("flush", inner.store.flush(&prefix, &keep))
                .await?;
        }
        Ok(removed)
    }

    /// Adds `by` to the integer under `key` (0 when absent) atomically and returns the result;
    /// an existing entry keeps its TTL, a new one has none.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        let full = self.key(key).await;
        self.write("increment", self.inner.store.increment(&full, by))
            .await
    }

    /// Subtracts `by`: [`increment`](Self::increment) by `-by`.
    pub async fn decrement(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        let by = by.checked_neg().ok_or_else(|| CacheError::NotAnInteger {
            key: self.full_key(key),
        })?;
        self.increment(key, by).await
    }

    /// The value under `key`, or the one `load` returns, stored for `ttl` (read-through).
    ///
    /// Concurrent misses of one key in this process run `load` once: the others wait for its
    /// result ([`with_remember_lock`](Self::with_remember_lock) extends that across servers).
    /// When `load` fails, its error is returned to every waiting caller (as
    /// [`CacheError::Loader`]) and nothing is cached. When the store fails, `load` runs and
    /// its value is returned uncached. A caller that is cancelled while loading hands the load
    /// to one of its waiters.
    pub async fn remember<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.remember_full(self.key(key).await, self.ttl(ttl), load)
            .await
    }

    /// A lock named `name`, held for at most `ttl` once acquired (see [`Lock`]).
    pub fn lock(&self, name: &str, ttl: Duration) -> Lock {
        Lock::new(self.clone(), name, ttl, None)
    }

    /// The lock `name` as held by `owner` (its [`owner`](super::LockGuard::owner) token, passed
    /// on to another task or process), so that it can be released there.
    pub fn restore_lock(&self, name: &str, owner: &str, ttl: Duration) -> Lock {
        Lock::new(self.clone(), name, ttl, Some(owner.to_owned()))
    }

    /// The entries stored under `tags` (order and repeats do not matter); flushing any of the
    /// tags invalidates them (see [`TaggedCache`]).
    pub fn tags<S: AsRef<str>>(&self, tags: &[S]) -> TaggedCache {
        TaggedCache::new(self.clone(), tags)
    }

    /// A round trip to the store, for the optional health check.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.inner.store.ping().await
    }

    // ---- shared by the facade, tags and locks ----

    /// `flexible`'s background refreshes in progress.
    pub(crate) fn refreshes(&self) -> &Flights {
        &self.inner.refreshes
    }

    /// How long the remember lock lets a load take, when configured.
    pub(crate) fn remember_lock(&self) -> Option<Duration> {
        self.inner.remember_lock
    }

    pub(crate) fn ttl(&self, ttl: Option<Duration>) -> Ttl {
        match ttl.or(self.inner.default_ttl) {
            None => Ttl::Forever,
            Some(ttl) if ttl.is_zero() => Ttl::Remove,
            Some(ttl) => Ttl::For(ttl),
        }
    }

    pub(crate) async fn put_full<T: Serialize + ?Sized>(
        &self,
        full: String,
        value: &T,
        ttl: Ttl,
    ) -> Result<(), CacheError> {
        let store = &self.inner.store;
        match ttl {
            Ttl::Remove => self.write("forget", store.forget(&full)).await.map(drop),
            ttl => {
                let bytes = encode(&full, value)?;
                let entry = [(full, bytes)];
                self.write("put", store.put_many(&entry, ttl.duration()))
                    .await
            }
        }
    }

    /// Reads and decodes; a failed read or another type is a miss.
    pub(crate) async fn read<T: DeserializeOwned>(&self, full: &str) -> Option<T> {
        let bytes = self.read_bytes(full).await?;
        let value = codec::decode(&bytes);
        if value.is_none() {
            self.observe(|o, store| o.error(store, "decode"));
        }
        value
    }

    async fn read_bytes(&self, full: &str) -> Option<Bytes> {
        let found = match self.inner.store.get(full).await {
            Ok(found) => found,
            Err(err) => {
                self.failed_read("get", &err);
                return None;
            }
        };
        let hit = found.is_some();
        self.observe(|o, store| o.read(store, hit));
        found
    }

    pub(crate) async fn read_many<T: DeserializeOwned>(&self, full: &[String]) -> Vec<Option<T>> {
        let values = match self.inner.store.get_many(full).await {
            Ok(values) => values,
            Err(err) => {
                self.failed_read("get", &err);
                return full.iter().map(|_| None).collect();
            }
        };
        values
            .into_iter()
            .map(|bytes| {
                let hit = bytes.is_some();
                self.observe(|o, store| o.read(store, hit));
                bytes.and_then(|bytes| codec::decode(&bytes))
            })
            .collect()
    }

    /// Runs a write, counting and returning its failure.
    pub(crate) async fn write<T>(
        &self,
        operation: &'static str,
        write: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        write.await.inspect_err(|err| {
            if matches!(err, CacheError::Backend(_)) {
                self.observe(|o, store| o.error(store, operation));
            }
        })
    }

    /// Counts a failed read as a miss and an error, and logs it.
    pub(crate) fn failed_read(&self, operation: &'static str, err: &CacheError) {
        self.observe(|o, store| {
            o.error(store, operation);
            o.read(store, false);
        });
        self.warn(err, "cache read failed; serving it as a miss");
    }

    /// Logs a store failure the caller does not see, at most once per [`WARN_EVERY`]: during
    /// an outage every request would log one.
    pub(crate) fn warn(&self, err: &CacheError, message: &'static str) {
        let now = self.inner.started.elapsed().as_millis() as u64;
        let last = self.inner.last_warning.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        let claimed = due
            && self
                .inner
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if claimed {
            tracing::warn!(error = %err, store = self.store_name(), "{message}");
        }
    }

    fn observe(&self, tell: impl FnOnce(&dyn CacheObserver, &'static str)) {
        if let Some(observer) = &self.inner.observer {
            tell(observer.as_ref(), self.inner.store.name());
        }
    }

    pub(crate) async fn remember_full<T, E, F, Fut>(
        &self,
        full: String,
        ttl: Ttl,
        load: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.read(&full).await {
            return Ok(value);
        }
        let mut load = Some(load);
        loop {
            let pilot = match self.inner.flights.join(&full) {
                Role::Follower(flight) => match follow(flight).await {
                    Landing::Landed(bytes) => match codec::decode(&bytes) {
                        Some(value) => return Ok(value),
                        // Another caller remembers this key as another type: load our own.
                        None => break,
                    },
                    Landing::Failed(source) => {
                        return Err(CacheError::Loader { key: full, source });
                    }
                    Landing::Abandoned | Landing::Flying => continue,
                },
                Role::Leader(pilot) => pilot,
            };
            // A load that finished between our miss and our flight has stored its value.
            if let Some(bytes) = self.inner.store.get(&full).await.ok().flatten()
                && let Some(value) = codec::decode(&bytes)
            {
                pilot.land(Landing::Landed(bytes));
                return Ok(value);
            }
            let load = load.take().expect("the loader runs once");
            return match self.load_once(&full, ttl, load).await {
                Ok((value, bytes)) => {
                    pilot.land(Landing::Landed(bytes));
                    Ok(value)
                }
                Err(source) => {
                    pilot.land(Landing::Failed(source.clone()));
                    Err(CacheError::Loader { key: full, source })
                }
            };
        }
        let load = load.take().expect("the loader runs once");
        self.load_once(&full, ttl, load)
            .await
            .map(|(value, _)| value)
            .map_err(|source| CacheError::Loader { key: full, source })
    }

    /// Runs the loader (under the cross-server lock when configured) and stores its value; a
    /// failed store is counted and logged, and the value still returned.
    async fn load_once<T, E, F, Fut>(
        &self,
        full: &str,
        ttl: Ttl,
        load: F,
    ) -> Result<(T, Bytes), Cause>
    where
        T: Serialize + DeserializeOwned,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let guard = match self.inner.remember_lock {
            Some(wait) => match super::lock::remember_turn(self, full, wait).await {
                super::lock::Turn::Stored(bytes) => {
                    if let Some(value) = codec::decode(&bytes) {
                        return Ok((value, bytes));
                    }
                    None
                }
                super::lock::Turn::Load(guard) => guard,
            },
            None => None,
        };
        let loaded = self.load_and_store(full, ttl, load).await;
        if let Some(guard) = guard {
            let _ = guard.release().await;
        }
        loaded
    }

    /// Runs the loader, counted, and stores its value; a failed store is counted and logged,
    /// and the value still returned.
    pub(crate) async fn load_and_store<T, E, F, Fut>(
        &self,
        full: &str,
        ttl: Ttl,
        load: F,
    ) -> Result<(T, Bytes), Cause>
    where
        T: Serialize,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let loaded = load().await;
        let elapsed = started.elapsed();
        self.observe(|o, store| o.loaded(store, elapsed, loaded.is_ok()));
        let value = loaded.map_err(|e| Cause::from(e.into()))?;
        let bytes = encode(full, &value).map_err(crate::util::cause)?;
        if !matches!(ttl, Ttl::Remove) {
            let entry = [(full.to_owned(), bytes.clone())];
            let stored = self.write("put", self.inner.store.put_many(&entry, ttl.duration()));
            if let Err(err) = stored.await {
                self.warn(&err, "could not store the loaded value");
            }
        }
        Ok((value, bytes))
    }
}

/// What a write asked for its entry's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ttl {
    Forever,
    For(Duration),
    /// A zero TTL: the entry is removed.
    Remove,
}

impl Ttl {
    pub(crate) fn duration(self) -> Option<Duration> {
        match self {
            Self::For(ttl) => Some(ttl),
            Self::Forever | Self::Remove => None,
        }
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(full: &str, value: &T) -> Result<Bytes, CacheError> {
    codec::encode(value).map_err(|e| CacheError::Encode {
        key: full.to_owned(),
        reason: e.to_string(),
    })
}
