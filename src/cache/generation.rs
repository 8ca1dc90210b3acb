//! The flush generation: what makes [`Cache::flush`](super::Cache::flush) one write.
//!
//! A cache's keys live in the namespace of its generation: `<prefix>:<key>` before its first
//! flush, `<prefix>#<token>:<key>` after one, where the token is 16 random hex digits stored under
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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::store::{CacheError, CacheStore};

/// `checked` before the token was first read.
const NEVER: u64 = u64::MAX;

/// The generation a cache writes and reads in, and when it was last read from the store;
/// shared by the clones of a cache that keep its prefix.
#[derive(Debug)]
pub(super) struct Generation {
    prefix: String,
    /// The token of the last flush, 0 before the first (an atomic, not a lock: every operation
    /// reads it).
    token: AtomicU64,
    /// When the token was last read (ms since `started`), [`NEVER`] before the first read.
    checked: AtomicU64,
    started: Instant,
    /// One read of the token at a time; the operations that find a read under way go on with
    /// the generation they know (those before the first read wait for it).
    reading: tokio::sync::Mutex<()>,
}

impl Generation {
    pub(super) fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            token: AtomicU64::new(0),
            checked: AtomicU64::new(NEVER),
            started: Instant::now(),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The cache's prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key under which the token is stored: `<prefix>#generation`.
    pub(super) fn key(&self) -> String {
        format!("{}#generation", self.prefix)
    }

    /// `key` in the namespace of the token last read (or set), in one allocation.
    pub(super) fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + 18 + key.len());
        self.push_namespace(&mut full);
        full.push_str(key);
        full
    }

    /// `<prefix>:` before the first flush, `<prefix>#<token>:` after.
    pub(super) fn namespace(&self) -> String {
        let mut namespace = String::with_capacity(self.prefix.len() + 18);
        self.push_namespace(&mut namespace);
        namespace
    }

    fn push_namespace(&self, to: &mut String) {
        let token = self.token.load(Ordering::Acquire);
        to.push_str(&self.prefix);
        if token != 0 {
            let _ = write!(to, "#{token:016x}");
        }
        to.push(':');
    }

    /// Reads the token again when the last read is older than `every` (or there was none).
    /// A failed read leaves the generation as it was and counts as a read: the operation that
    /// follows fails or misses on its own, and during an outage the operations do not each
    /// wait for a second failure.
    pub(super) async fn refresh(&self, store: &dyn CacheStore, every: Duration) {
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
        if let Ok(token) = store.get(&self.key()).await {
            // A value that is not a token (written by hand) is taken as no flush yet.
            let token = token
                .and_then(|t| u64::from_str_radix(std::str::from_utf8(&t).ok()?, 16).ok())
                .unwrap_or(0);
            self.token.store(token, Ordering::Release);
        }
        self.checked.store(self.now_ms(), Ordering::Release);
    }

    /// Stores a new token (a flush) and takes it at once; no read of the old one can land
    /// after it.
    pub(super) async fn replace(&self, store: &dyn CacheStore) -> Result<(), CacheError> {
        let _reading = self.reading.lock().await;
        let token = new_token();
        let entry = [(self.key(), Bytes::from(format!("{token:016x}")))];
        store.put_many(&entry, None).await?;
        self.token.store(token, Ordering::Release);
        self.checked.store(self.now_ms(), Ordering::Release);
        Ok(())
    }

    fn is_fresh(&self, every: Duration) -> bool {
        let checked = self.checked.load(Ordering::Acquire);
        checked != NEVER && self.now_ms().saturating_sub(checked) < every.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A new token: 64 random bits, never 0 (which means "not flushed yet").
fn new_token() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64).max(1)
}
