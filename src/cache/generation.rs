//! The flush generation: what makes [`Cache::flush`](super::Cache::flush) one write.
//!
//! A cache's keys live in the namespace of its generation: `<prefix>:<key>` before its first
//! flush, `<prefix>#<token>:<key>` after one, where the token is a random string stored under
//! `<prefix>#generation`. A flush stores a new token: every entry of the old namespace is
//! unreachable at once, however many there are, on every store and on a Redis Cluster (the
//! entries need not share a node), and the old keys are removed afterwards, in the background.
//!
//! Reading the token with every operation would cost each read a second key — on a Cluster a
//! second node, and every server's reads on the one node that holds it. Instead each cache
//! keeps the token it last read and reads it again when that is older than the flush check
//! interval ([`Cache::with_flush_check`](super::Cache::with_flush_check), 1 s by default), in
//! the operation that finds it due: a flush is seen at once where it was made, and within the
//! interval on the other servers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::store::{CacheError, CacheStore};

/// `checked` before the token was first read.
const NEVER: u64 = u64::MAX;

/// The namespace a cache writes and reads in, and when it was last read from the store; shared
/// by the clones of a cache that keep its prefix.
#[derive(Debug)]
pub(super) struct Generation {
    /// `<prefix>:` or `<prefix>#<token>:`.
    namespace: RwLock<Arc<str>>,
    /// When the token was last read (ms since `started`), [`NEVER`] before the first read.
    checked: AtomicU64,
    started: Instant,
    /// One read of the token at a time; the operations that find a read under way go on with
    /// the namespace they know (those before the first read wait for it).
    reading: tokio::sync::Mutex<()>,
}

impl Generation {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            namespace: RwLock::new(Arc::from(format!("{prefix}:"))),
            checked: AtomicU64::new(NEVER),
            started: Instant::now(),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The key under which `prefix`'s token is stored.
    pub(super) fn key(prefix: &str) -> String {
        format!("{prefix}#generation")
    }

    /// `key` in the namespace of the token last read (or set).
    pub(super) fn full_key(&self, key: &str) -> String {
        let namespace = self
            .namespace
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut full = String::with_capacity(namespace.len() + key.len());
        full.push_str(&namespace);
        full.push_str(key);
        full
    }

    /// The namespace of the token last read (or set).
    pub(super) fn namespace(&self) -> Arc<str> {
        self.namespace
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the token again when the last read is older than `every` (or there was none).
    /// A failed read leaves the namespace as it was and counts as a read: the operation that
    /// follows fails or misses on its own, and during an outage the operations do not each
    /// wait for a second failure.
    pub(super) async fn refresh(&self, store: &dyn CacheStore, prefix: &str, every: Duration) {
        if self.is_fresh(every) {
            return;
        }
        let _reading = if self.checked.load(Ordering::Acquire) == NEVER {
            self.reading.lock().await
        } else {
            match self.reading.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        // Read by another operation while this one waited.
        if self.is_fresh(every) {
            return;
        }
        match store.get(&Self::key(prefix)).await {
            Ok(token) => self.set(prefix, token.as_deref()),
            Err(_) => self.checked.store(self.now_ms(), Ordering::Release),
        }
    }

    /// Stores a new token (a flush) and takes it at once; no read of the old one can land
    /// after it.
    pub(super) async fn replace(
        &self,
        store: &dyn CacheStore,
        prefix: &str,
    ) -> Result<(), CacheError> {
        let _reading = self.reading.lock().await;
        let token = new_token();
        let entry = [(Self::key(prefix), Bytes::from(token.clone()))];
        store.put_many(&entry, None).await?;
        self.set(prefix, Some(token.as_bytes()));
        Ok(())
    }

    /// Takes `token` (`None`: never flushed) as the current one, read now.
    fn set(&self, prefix: &str, token: Option<&[u8]>) {
        let namespace: Arc<str> = match token {
            Some(token) => Arc::from(format!("{prefix}#{}:", String::from_utf8_lossy(token))),
            None => Arc::from(format!("{prefix}:")),
        };
        *self
            .namespace
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = namespace;
        self.checked.store(self.now_ms(), Ordering::Release);
    }

    fn is_fresh(&self, every: Duration) -> bool {
        let checked = self.checked.load(Ordering::Acquire);
        checked != NEVER && self.now_ms().saturating_sub(checked) < every.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A new token: 16 random hex digits.
fn new_token() -> String {
    let mut token = uuid::Uuid::new_v4().simple().to_string();
    token.truncate(16);
    token
}
