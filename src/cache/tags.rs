//! Tags: entries stored under a set of tags, invalidated together by flushing any one of them.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::cache::{Cache, Ttl};
use super::store::CacheError;

/// The entries stored under a set of tags (Laravel's `Cache::tags([...])`).
///
/// Each tag has a version: a random token stored under `<prefix>:tag:<name>`. A tagged entry
/// is stored under a namespace derived from the versions of its tags, and
/// [`flush`](Self::flush) gives each tag a new version, so every entry stored under it is
/// unreachable at once — one write per tag, however many entries there are, with no key
/// scan, and on a Redis Cluster as well (the entries need not share a node). The unreachable
/// entries are not deleted: they expire with their TTL (or are evicted), which is why tagged
/// writes should keep a TTL.
///
/// Unlike Laravel, the order of the tags does not matter: `tags(["a", "b"])` and
/// `tags(["b", "a"])` see the same entries. Reads cost one extra round trip (the tag versions,
/// in one `MGET` on a single Redis).
///
/// ```
/// use rustforge_prod::cache::{Cache, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustforge_prod::cache::CacheError> {
/// let cache = Cache::new(MemoryStore::new(1_000));
/// cache.tags(&["posts", "user:7"]).put("feed:7", &vec![1, 2, 3], None).await?;
/// cache.tags(&["posts"]).put("count", &3, None).await?;
///
/// cache.tags(&["user:7"]).flush().await?;
/// assert_eq!(cache.tags(&["posts", "user:7"]).get::<Vec<u32>>("feed:7").await, None);
/// assert_eq!(cache.tags(&["posts"]).get::<u32>("count").await, Some(3));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TaggedCache {
    cache: Cache,
    /// The tags, sorted and without repeats.
    tags: Vec<String>,
}

impl TaggedCache {
    pub(super) fn new<S: AsRef<str>>(cache: Cache, tags: &[S]) -> Self {
        let mut tags: Vec<String> = tags.iter().map(|tag| tag.as_ref().to_owned()).collect();
        tags.sort_unstable();
        tags.dedup();
        Self { cache, tags }
    }

    /// The tags' version keys, in the cache's current flush generation (a flush of the whole
    /// cache drops the versions too).
    async fn tag_keys(&self) -> Vec<String> {
        self.cache.sync().await;
        self.tags
            .iter()
            .map(|tag| self.cache.full_key(&format!("tag:{tag}")))
            .collect()
    }

    /// The value under `key` in this tag set; `None` also when a tag was flushed since it was
    /// stored, or the store failed.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.key(key, false).await {
            Ok(Some(full)) => self.cache.read(&full).await,
            Ok(None) => None,
            Err(err) => {
                self.cache.failed_read("tags", &err);
                None
            }
        }
    }

    /// Stores `value` under `key` in this tag set (`None`: the default TTL).
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let full = self.required_key(key).await?;
        self.cache.put_full(full, value, self.cache.ttl(ttl)).await
    }

    /// Removes `key` from this tag set; whether it was there.
    pub async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        let full = self.required_key(key).await?;
        let store = self.cache.store();
        self.cache.write("forget", store.forget(&full)).await
    }

    /// [`Cache::remember`] in this tag set.
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
        let ttl: Ttl = self.cache.ttl(ttl);
        match self.key(key, true).await {
            Ok(Some(full)) => self.cache.remember_full(full, ttl, load).await,
            // The tag versions cannot be read: load, and cache nothing.
            _ => {
                let value = load().await.map_err(|e| CacheError::Loader {
                    key: key.to_owned(),
                    source: std::sync::Arc::from(e.into()),
                })?;
                Ok(value)
            }
        }
    }

    /// Invalidates every entry stored under any of these tags, in one write.
    pub async fn flush(&self) -> Result<(), CacheError> {
        let encoded: Vec<(String, bytes::Bytes)> = self
            .tag_keys()
            .await
            .iter()
            .map(|key| (key.clone(), bytes::Bytes::from(new_version())))
            .collect();
        let store = self.cache.store();
        self.cache
            .write("flush", store.put_many(&encoded, None))
            .await
    }

    /// The entry's key in the current namespace; `Ok(None)` when a tag has no version yet and
    /// `create` is false (nothing can be stored under it: a miss without a write).
    async fn key(&self, key: &str, create: bool) -> Result<Option<String>, CacheError> {
        let store = self.cache.store();
        let tag_keys = self.tag_keys().await;
        let mut versions = store.get_many(&tag_keys).await?;
        let mut hasher = Sha256::new();
        for (tag_key, version) in tag_keys.iter().zip(versions.iter_mut()) {
            if version.is_none() {
                if !create {
                    return Ok(None);
                }
                *version = Some(self.create_version(tag_key).await?);
            }
            hasher.update(tag_key.as_bytes());
            hasher.update([0]);
            hasher.update(version.as_deref().unwrap_or_default());
            hasher.update([0]);
        }
        let namespace = hex::encode(&hasher.finalize()[..16]);
        Ok(Some(
            self.cache.full_key(&format!("tagged:{namespace}:{key}")),
        ))
    }

    async fn required_key(&self, key: &str) -> Result<String, CacheError> {
        Ok(self
            .key(key, true)
            .await?
            .expect("tag versions are created when asked to"))
    }

    /// Gives a tag its first version; the one another server stored first wins.
    async fn create_version(&self, tag_key: &str) -> Result<bytes::Bytes, CacheError> {
        let store = self.cache.store();
        let version = bytes::Bytes::from(new_version());
        if self
            .cache
            .write("tags", store.add(tag_key, version.clone(), None))
            .await?
        {
            return Ok(version);
        }
        let current = self.cache.write("tags", store.get(tag_key)).await?;
        Ok(current.unwrap_or(version))
    }
}

fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
