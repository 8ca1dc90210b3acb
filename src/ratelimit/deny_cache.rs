//! The deny cache: a key Redis denied until `T` is answered locally until `T`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Limit;
use super::store::{Decision, Source};

/// A size-bounded map `key → (denied until, the denial)`.
#[derive(Debug)]
pub(crate) struct DenyCache {
    capacity: usize,
    map: Mutex<HashMap<Box<str>, Denial, foldhash::fast::RandomState>>,
}

#[derive(Debug)]
struct Denial {
    /// A denial holds for the same limits and at least the same cost.
    limits: Vec<Limit>,
    cost: u32,
    at: Instant,
    until: Instant,
    decision: Decision,
}

impl DenyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Denial, foldhash::fast::RandomState>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The remembered denial of `key`, with its times moved to now; `None` when there is none or
    /// it has run out.
    pub(crate) fn get(&self, key: &str, limits: &[Limit], cost: u32) -> Option<Decision> {
        if self.capacity == 0 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.lock();
        let denial = map.get(key)?;
        if cost < denial.cost || denial.limits != limits {
            return None;
        }
        if now >= denial.until {
            map.remove(key);
            return None;
        }
        let elapsed = now - denial.at;
        let mut decision = denial.decision.clone();
        decision.source = Source::DenyCache;
        for status in decision.limits.iter_mut() {
            status.reset_after = status.reset_after.saturating_sub(elapsed);
            status.retry_after = status
                .retry_after
                .map(|d| d.saturating_sub(elapsed).max(Duration::from_micros(1)));
        }
        Some(decision)
    }

    /// Remembers a denial from the backend. When full, expired entries are dropped first; if it
    /// is still full the denial is not remembered (the next check simply goes to Redis).
    pub(crate) fn insert(&self, key: &str, limits: &[Limit], cost: u32, decision: &Decision) {
        let Some(wait) = decision.retry_after() else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(key) {
            map.retain(|_, d| d.until > now);
            if map.len() >= self.capacity {
                return;
            }
        }
        map.insert(
            key.into(),
            Denial {
                limits: limits.to_vec(),
                cost,
                at: now,
                until: now + wait,
                decision: decision.clone(),
            },
        );
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
