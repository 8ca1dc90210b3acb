//! The backend seam: [`Store`], what it answers ([`Decision`]) and how it fails
//! ([`RateLimitError`]).

use std::fmt;
use std::time::Duration;

use smallvec::SmallVec;

use super::Limit;

pub use crate::util::BoxFuture;

/// Where rate-limit state lives: [`MemoryStore`](super::MemoryStore) for one process,
/// [`RedisStore`](super::RedisStore) (feature `redis`) for many.
///
/// `check` decides all `limits` of one key atomically: a request is admitted only when every
/// limit has room for `cost`, and a denied request consumes nothing. Each store passes the same
/// conformance suite (`tests/ratelimit_store.rs`).
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// Checks and, when every limit allows it, consumes `cost` units of each limit for `key`.
    /// `Err` means the store itself failed; a rate-limited request is `Ok` with
    /// [`Decision::allowed`] `false`.
    fn check<'a>(
        &'a self,
        key: &'a str,
        limits: &'a [Limit],
        cost: u32,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>>;

    /// Counters of the store's failure handling (all zero for the memory store).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// A cost above a limit's burst could never be admitted.
pub(crate) fn check_cost(limits: &[Limit], cost: u32) -> Result<(), RateLimitError> {
    match limits.iter().find(|l| cost > l.burst_size()) {
        Some(limit) => Err(RateLimitError::Cost {
            cost,
            limit: limit.to_string(),
        }),
        None => Ok(()),
    }
}

/// The answer for one request: admitted or not, and the state of each limit, in the order the
/// limits were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and its cost consumed).
    pub allowed: bool,
    /// One entry per limit.
    pub limits: Statuses,
    /// Who decided.
    pub source: Source,
}

impl Decision {
    /// The longest wait among the limits that denied the request, `None` when admitted.
    pub fn retry_after(&self) -> Option<Duration> {
        self.limits.iter().filter_map(|l| l.retry_after).max()
    }

    /// An admission made without consulting any limit (the fail-open policy).
    #[cfg(feature = "redis")]
    pub(crate) fn unchecked(limits: &[Limit], source: Source) -> Self {
        Self {
            allowed: true,
            limits: limits
                .iter()
                .map(|l| LimitStatus {
                    remaining: u64::from(l.quota()),
                    reset_after: Duration::ZERO,
                    retry_after: None,
                })
                .collect(),
            source,
        }
    }
}

/// The [`LimitStatus`] of each limit of a check, in order: a slice (`d.limits[0]`,
/// `d.limits.iter()`), stored inline for up to two limits so a check allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statuses(SmallVec<[LimitStatus; 2]>);

impl std::ops::Deref for Statuses {
    type Target = [LimitStatus];

    fn deref(&self) -> &[LimitStatus] {
        &self.0
    }
}

impl std::ops::DerefMut for Statuses {
    fn deref_mut(&mut self) -> &mut [LimitStatus] {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a Statuses {
    type Item = &'a LimitStatus;
    type IntoIter = std::slice::Iter<'a, LimitStatus>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<LimitStatus> for Statuses {
    fn from_iter<I: IntoIterator<Item = LimitStatus>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Statuses {
    /// The status of a check against one limit.
    pub(crate) fn one(status: LimitStatus) -> Self {
        let mut statuses = SmallVec::new();
        statuses.push(status);
        Self(statuses)
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(SmallVec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, status: LimitStatus) {
        self.0.push(status);
    }
}

/// The state of one limit after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitStatus {
    /// Requests still available right now (after this one, when admitted).
    pub remaining: u64,
    /// Time until the limit is fully replenished (GCRA, sliding window) or the window resets
    /// (fixed window, sliding log).
    pub reset_after: Duration,
    /// When this limit denied the request: the time until `cost` units are available again.
    pub retry_after: Option<Duration>,
}

/// Which mechanism produced a [`Decision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The in-process store.
    Memory,
    /// The Redis store.
    Redis,
    /// A denial remembered from Redis, answered without a round trip.
    DenyCache,
    /// The local fallback store, used while Redis fails.
    Fallback,
    /// Admitted without a check because Redis failed and the policy is fail-open.
    FailOpen,
}

impl Source {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::DenyCache => "deny_cache",
            Self::Fallback => "fallback",
            Self::FailOpen => "fail_open",
        }
    }
}

/// Counters of a store's failure handling, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Backend errors and timeouts.
    pub errors: u64,
    /// Checks answered by the local fallback store.
    pub fallbacks: u64,
    /// Checks admitted unchecked (fail-open).
    pub fail_open: u64,
    /// Checks refused with 503 (fail-closed).
    pub fail_closed: u64,
    /// Denials answered from the deny cache.
    pub deny_cache_hits: u64,
    /// Whether the circuit breaker is open (the backend is being skipped).
    pub breaker_open: bool,
}

/// A failure of the store itself (not a rate-limited request).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The backend failed or timed out and the policy is fail-closed.
    #[error("rate-limit store unavailable: {0}")]
    Unavailable(String),
    /// The request's cost exceeds a limit's burst, so it could never be admitted.
    #[error("a cost of {cost} can never pass the limit {limit} (cost must not exceed the burst)")]
    Cost {
        /// The requested cost.
        cost: u32,
        /// The limit, as `quota/period`.
        limit: String,
    },
    /// The backend answered something this crate did not expect.
    #[error("rate-limit store answered unexpectedly: {0}")]
    Protocol(String),
}
