//! The in-process store: a moka cache bounded in entries, with a TTL per entry.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache as Moka;
use moka::ops::compute::{CompResult, Op};

use super::codec::parse_integer;
use super::store::{BoxFuture, CacheError, CacheStore};
use crate::util::ByteBound;

/// The in-process [`CacheStore`]: one server's memory, bounded to `max_entries` (least
/// recently and least frequently used entries go first, moka's TinyLFU), each entry with its
/// own TTL. Nothing is shared between servers: use [`RedisStore`](super::RedisStore) for that.
///
/// ```
/// use rustforge_prod::cache::{Cache, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Cache::new(MemoryStore::new(10_000));
/// cache.put("greeting", &"hello", None).await.unwrap();
/// assert_eq!(cache.get::<String>("greeting").await.as_deref(), Some("hello"));
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    entries: Moka<String, Entry>,
}

/// A stored value and what its write asked of its expiry.
#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Ttl,
}

#[derive(Clone, Copy)]
enum Ttl {
    Forever,
    For(Duration),
    /// An update that keeps the entry's current expiry (`increment`).
    Keep,
}

impl Ttl {
    fn of(ttl: Option<Duration>) -> Self {
        ttl.map_or(Self::Forever, Self::For)
    }
}

struct PerEntry;

impl Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        match entry.ttl {
            Ttl::For(ttl) => Some(ttl),
            Ttl::Forever | Ttl::Keep => None,
        }
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        match entry.ttl {
            Ttl::For(ttl) => Some(ttl),
            Ttl::Forever => None,
            Ttl::Keep => left,
        }
    }
}

impl MemoryStore {
    /// A store that holds at most `max_entries` entries, whatever their size.
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: Moka::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// A store that holds at most `max_entries` entries and about `max_bytes` bytes of keys and
    /// values (plus 96 bytes per entry): what `ProductionLayer` builds
    /// (`RUSTFORGE_CACHE_MAX_ENTRIES`, `RUSTFORGE_CACHE_MAX_BYTES`). The least used entries go
    /// first when either bound is reached; a single value larger than the bound is not kept.
    pub fn bounded(max_entries: u64, max_bytes: u64) -> Self {
        let bound = ByteBound::new(max_entries, max_bytes);
        Self {
            entries: Moka::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &String, entry: &Entry| {
                    bound.weigh(key.len() + entry.value.len())
                })
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// The number of entries, approximately (moka counts asynchronously).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The entries' total weight, approximately: their bytes (with the per-entry overhead) for
    /// a [`bounded`](Self::bounded) store, their number otherwise.
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Applies pending evictions now (moka applies them in batches as it is used).
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl CacheStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, CacheError>> {
        Box::pin(async move { Ok(self.entries.get(key).await.map(|e| e.value)) })
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>, CacheError>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.entries.get(key).await.map(|e| e.value));
            }
            Ok(values)
        })
    }

    fn put_many<'a>(
        &'a self,
        entries: &'a [(String, Bytes)],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let ttl = Ttl::of(ttl);
            for (key, value) in entries {
                let entry = Entry {
                    value: value.clone(),
                    ttl,
                };
                self.entries.insert(key.clone(), entry).await;
            }
            Ok(())
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let entry = Entry {
                value,
                ttl: Ttl::of(ttl),
            };
            let result = self
                .entries
                .entry_by_ref(key)
                .and_compute_with(|current| async move {
                    match current {
                        Some(_) => Op::Nop,
                        None => Op::Put(entry),
                    }
                })
                .await;
            Ok(matches!(result, CompResult::Inserted(_)))
        })
    }

    fn touch<'a>(
        &'a self,
        key: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let result = self
                .entries
                .entry_by_ref(key)
                .and_compute_with(|current| async move {
                    match current {
                        Some(entry) => Op::Put(Entry {
                            value: entry.into_value().value,
                            ttl: Ttl::of(ttl),
                        }),
                        None => Op::Nop,
                    }
                })
                .await;
            Ok(matches!(result, CompResult::ReplacedWith(_)))
        })
    }

    fn forget<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move { Ok(self.entries.remove(key).await.is_some()) })
    }

    fn forget_if<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let result = self
                .entries
                .entry_by_ref(key)
                .and_compute_with(|current| async move {
                    match current {
                        Some(entry) if entry.value().value[..] == *value => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
            Ok(matches!(result, CompResult::Removed(_)))
        })
    }

    fn increment<'a>(&'a self, key: &'a str, by: i64) -> BoxFuture<'a, Result<i64, CacheError>> {
        Box::pin(async move {
            let not_an_integer = || CacheError::NotAnInteger {
                key: key.to_owned(),
            };
            let result = self
                .entries
                .entry_by_ref(key)
                .and_try_compute_with(|current| async move {
                    let (now, ttl) = match current {
                        None => (0, Ttl::Forever),
                        Some(entry) => {
                            let now = parse_integer(&entry.value().value).ok_or(())?;
                            (now, Ttl::Keep)
                        }
                    };
                    let next = now.checked_add(by).ok_or(())?;
                    let value = Bytes::from(next.to_string());
                    Ok::<_, ()>(Op::Put(Entry { value, ttl }))
                })
                .await
                .map_err(|()| not_an_integer())?;
            match result {
                CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                    parse_integer(&entry.value().value).ok_or_else(not_an_integer)
                }
                _ => Err(not_an_integer()),
            }
        })
    }

    fn flush<'a>(
        &'a self,
        prefix: &'a str,
        keep: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(async move {
            let doomed: Vec<_> = self
                .entries
                .iter()
                .filter(|(key, _)| key.starts_with(prefix) && !keep(key))
                .map(|(key, _)| key)
                .collect();
            let mut removed = 0;
            for key in doomed {
                removed += u64::from(self.entries.remove(key.as_str()).await.is_some());
            }
            Ok(removed)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
