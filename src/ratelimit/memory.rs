//! [`MemoryStore`]: the in-process backend — sharded, lock-light and bounded.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Limit;
use super::algorithm::{self, State};
use super::store::{BoxFuture, Decision, RateLimitError, Source, Statuses, Store, check_cost};

const SHARDS: usize = 64;
/// How often each shard drops its idle keys.
const SWEEP_EVERY_US: f64 = 1_000_000.0;
/// Entries looked at to choose a victim when a full shard needs room for a live key.
const EVICTION_SAMPLE: usize = 8;

/// A clock for the memory store that tests move by hand instead of sleeping.
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::ratelimit::{Limit, ManualClock, MemoryStore};
///
/// let clock = ManualClock::new();
/// let store = MemoryStore::with_clock(clock.clone());
/// let limit = [Limit::per_second(1)];
/// assert!(store.check_now("k", &limit, 1)?.allowed);
/// assert!(!store.check_now("k", &limit, 1)?.allowed);
/// clock.advance(Duration::from_secs(1));
/// assert!(store.check_now("k", &limit, 1)?.allowed);
/// # Ok::<(), rustforge_prod::ratelimit::RateLimitError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at an arbitrary start.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug)]
enum Clock {
    /// quanta reads the CPU's time-stamp counter (~10 ns) where `Instant::now` makes a
    /// `clock_gettime` call (~40 ns on the benchmark VM, a third of a check); it falls back
    /// to the OS clock where the TSC is not reliable. Raw ticks since `start`.
    System {
        clock: quanta::Clock,
        start: u64,
    },
    Manual(ManualClock),
}

impl Clock {
    fn system() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        Self::System { clock, start }
    }

    fn now_us(&self) -> f64 {
        match self {
            Self::System { clock, start } => {
                clock.delta_as_nanos(*start, clock.raw()) as f64 * 1e-3
            }
            Self::Manual(clock) => clock.0.load(Ordering::Relaxed) as f64,
        }
    }
}

/// The in-process store: 64 mutex-guarded shards of `key → state`. A key's state lives in one
/// shard, so the limits of a request are decided under one short lock.
///
/// **Bounded.** Each shard drops keys whose state has gone idle (equivalent to a fresh key) once
/// a second, and when a shard holds its share of [`max_keys`](Self::max_keys) it makes room by
/// evicting the key that goes idle soonest among a small sample. An IP scan therefore costs a
/// bounded amount of memory (about 150 bytes per key, see `docs/rate-limiting.md`); the price
/// under such a flood is that evicted keys start fresh.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    clock: Clock,
    shard_capacity: usize,
}

struct Shard {
    /// Entries by key, looked up with the hash that already chose the shard (one hash per
    /// check, not two).
    map: HashTable<Entry>,
    next_sweep: f64,
}

struct Entry {
    key: Box<str>,
    idle_at: f64,
    /// One slot per limit. A `Vec`, not inline: map buckets stay small, and the table's
    /// power-of-two slack costs less (measured 215 vs 251 bytes per key at 1M keys).
    slots: Vec<Slot>,
}

struct Slot {
    limit: LimitId,
    state: Option<State>,
}

/// What tells the limits of one key apart (the policy name does not matter).
#[derive(Clone, Copy, PartialEq, Eq)]
struct LimitId {
    algorithm: super::Algorithm,
    quota: u32,
    burst: u32,
    period: Duration,
}

impl LimitId {
    fn of(limit: &Limit) -> Self {
        Self {
            algorithm: limit.get_algorithm(),
            quota: limit.quota(),
            burst: limit.burst_size(),
            period: limit.period(),
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// The default bound on stored keys.
    pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

    /// A store on the monotonic system clock, holding at most
    /// [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS) keys.
    pub fn new() -> Self {
        Self::build(Clock::system(), Self::DEFAULT_MAX_KEYS)
    }

    /// A store on a [`ManualClock`], for tests.
    pub fn with_clock(clock: ManualClock) -> Self {
        Self::build(Clock::Manual(clock), Self::DEFAULT_MAX_KEYS)
    }

    /// Sets the bound on stored keys (at least 64: one per shard).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.shard_capacity = max_keys.div_ceil(SHARDS).max(1);
        self
    }

    fn build(clock: Clock, max_keys: usize) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashTable::new(),
                    next_sweep: 0.0,
                })
            })
            .collect();
        Self {
            shards,
            hasher,
            clock,
            shard_capacity: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Keys currently stored.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on stored keys.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    /// [`Store::check`] without the future: decides all `limits` for `key` now.
    pub fn check_now(
        &self,
        key: &str,
        limits: &[Limit],
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        check_cost(limits, cost)?;
        let now = self.clock.now_us();
        let hash = self.hasher.hash_one(key);
        let mut shard = lock(&self.shards[hash as usize % SHARDS]);
        if now >= shard.next_sweep {
            shard.next_sweep = now + SWEEP_EVERY_US;
            shard.map.retain(|entry| entry.idle_at > now);
        }
        if let Some(entry) = shard.map.find_mut(hash, |e| *e.key == *key) {
            return Ok(entry.check(limits, cost, now));
        }
        if shard.map.len() >= self.shard_capacity {
            shard.evict_one(&self.hasher);
        }
        let mut entry = Entry {
            key: key.into(),
            idle_at: 0.0,
            slots: Vec::with_capacity(limits.len()),
        };
        let decision = entry.check(limits, cost, now);
        let rehash = |e: &Entry| self.hasher.hash_one(&*e.key);
        shard.map.insert_unique(hash, entry, rehash);
        Ok(decision)
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a half-written state behind (every write is
    // a whole assignment), so a poisoned shard is still usable.
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shard {
    fn evict_one(&mut self, hasher: &foldhash::fast::RandomState) {
        let victim = self
            .map
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by(|a, b| a.idle_at.total_cmp(&b.idle_at))
            .map(|e| e.key.clone());
        if let Some(key) = victim
            && let Ok(entry) = self
                .map
                .find_entry(hasher.hash_one(&*key), |e| e.key == key)
        {
            entry.remove();
        }
    }
}

impl Entry {
    fn slot(&mut self, limit: &Limit) -> usize {
        let id = LimitId::of(limit);
        match self.slots.iter().position(|s| s.limit == id) {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    limit: id,
                    state: None,
                });
                self.slots.len() - 1
            }
        }
    }

    fn check(&mut self, limits: &[Limit], cost: u32, now: f64) -> Decision {
        if let [limit] = limits {
            // One limit (the usual case): no two-phase bookkeeping.
            let index = self.slot(limit);
            let state = &mut self.slots[index].state;
            let step = algorithm::check(limit, state, now, cost);
            let allowed = step.commit.is_some();
            if let Some(commit) = step.commit {
                commit.apply(state);
            }
            self.idle_at = state.as_ref().map_or(now, |s| s.idle_at(limit).max(now));
            return Decision {
                allowed,
                limits: Statuses::one(step.status),
                source: Source::Memory,
            };
        }
        let mut statuses = Statuses::with_capacity(limits.len());
        let mut commits: SmallVec<[_; 4]> = SmallVec::new();
        let mut allowed = true;
        for limit in limits {
            let index = self.slot(limit);
            let step = algorithm::check(limit, &mut self.slots[index].state, now, cost);
            allowed &= step.commit.is_some();
            statuses.push(step.status);
            commits.push((index, step.commit));
        }
        self.idle_at = now;
        for (i, (index, commit)) in commits.into_iter().enumerate() {
            let state = &mut self.slots[index].state;
            match commit {
                Some(commit) if allowed => commit.apply(state),
                // This limit had room, but nothing was consumed: report what it still has.
                Some(_) => statuses[i].remaining += u64::from(cost),
                None => {}
            }
            if let Some(state) = state {
                self.idle_at = self.idle_at.max(state.idle_at(&limits[i]));
            }
        }
        Decision {
            allowed,
            limits: statuses,
            source: Source::Memory,
        }
    }
}

impl Store for MemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        limits: &'a [Limit],
        cost: u32,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        Box::pin(std::future::ready(self.check_now(key, limits, cost)))
    }
}
