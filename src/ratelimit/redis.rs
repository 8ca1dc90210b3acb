//! [`RedisStore`]: one atomic Lua script per check on the shared Redis handle, with a timeout,
//! a circuit breaker, a failure policy and a deny cache.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::FailurePolicy;
use super::deny_cache::DenyCache;
use super::memory::MemoryStore;
use super::store::{BoxFuture, Decision, RateLimitError, Source, Store, StoreStats, check_cost};
use super::{Limit, LimitStatus};
use crate::breaker::{Breaker, Permit};
use crate::redis::{RedisHandle, Script};

/// The Redis store: every app server sharing one Redis sees the same counts.
///
/// * **One round trip.** All limits of a request are checked and committed by one Lua script
///   (`EVALSHA`, loaded again after `NOSCRIPT`), atomically: a request denied by one limit
///   consumes none of the others. The clock is Redis `TIME`, never the app server's.
/// * **Cluster-ready.** Keys are `{<prefix>:rl:<key>}:<limit>`: all limits of one key share a
///   hash slot. Every key has a TTL.
/// * **Bounded failure.** Each check waits at most [`timeout`](Self::timeout) (default 10 ms).
///   After [`breaker`](Self::breaker) consecutive failures Redis is skipped for the cooldown,
///   then one probe tests it again; meanwhile checks follow the [`FailurePolicy`]. A script is
///   never re-sent after a failure: a resend would count twice. Each breaker change is logged once.
/// * **Deny cache.** A key Redis denied until `T` is answered locally until `T`.
pub struct RedisStore {
    redis: RedisHandle,
    script: Script,
    timeout: Duration,
    policy: FailurePolicy,
    replicas: u32,
    fallback: MemoryStore,
    breaker: Breaker,
    deny_cache: DenyCache,
    nonce: AtomicU64,
    nonce_base: u64,
    /// Added to Redis `TIME` by the script; only tests move it.
    clock_offset_us: AtomicI64,
    stats: Stats,
}

#[derive(Debug, Default)]
struct Stats {
    errors: AtomicU64,
    fallbacks: AtomicU64,
    fail_open: AtomicU64,
    fail_closed: AtomicU64,
    deny_cache_hits: AtomicU64,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Default time allowed for one check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10);

    /// A store on the shared handle with the defaults: 10 ms timeout, breaker opening after 5
    /// consecutive failures for 1 s, [`FailurePolicy::Fallback`], a deny cache of 10,000 keys.
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            script: Script::new(include_str!("check.lua")),
            timeout: Self::DEFAULT_TIMEOUT,
            policy: FailurePolicy::Fallback,
            replicas: 1,
            fallback: MemoryStore::new(),
            breaker: Breaker::new(5, Duration::from_secs(1)),
            deny_cache: DenyCache::new(10_000),
            nonce: AtomicU64::new(0),
            nonce_base: uuid::Uuid::now_v7().as_u64_pair().1, // the random half
            clock_offset_us: AtomicI64::new(0),
            stats: Stats::default(),
        }
    }

    /// A store with the failure handling of `config`.
    pub fn from_config(redis: RedisHandle, config: &super::RateLimitConfig) -> Self {
        Self::new(redis)
            .timeout(config.timeout)
            .on_failure(config.on_redis_failure)
            .fallback_replicas(config.fallback_replicas)
            .breaker(config.breaker_failures, config.breaker_cooldown)
            .deny_cache(config.deny_cache)
    }

    /// Time allowed for one check, pool checkout included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do while Redis fails.
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Number of app servers: the fallback store divides each limit by it, so that all servers
    /// together stay near the limit while Redis is down (default 1).
    pub fn fallback_replicas(mut self, replicas: u32) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// Opens the breaker after `failures` consecutive failures, for `cooldown`.
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker = Breaker::new(failures, cooldown);
        self
    }

    /// Keys whose denial is remembered locally (0 turns the deny cache off).
    pub fn deny_cache(mut self, keys: usize) -> Self {
        self.deny_cache = DenyCache::new(keys);
        self
    }

    /// Moves the script's clock forward, so tests of time-dependent behaviour need no sleeps.
    /// Remembered denials are forgotten (they were timed on the old clock). Never needed in
    /// production.
    #[cfg(feature = "test-util")]
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset_us
            .fetch_add(by.as_micros() as i64, Ordering::Relaxed);
        self.deny_cache.clear();
    }

    /// The Redis key of one limit of `key`.
    pub fn redis_key(&self, key: &str, limit: &Limit) -> String {
        self.redis.key(&format!("rl:{}", escape(key)), &limit.id())
    }

    /// Denials currently remembered.
    pub fn deny_cache_len(&self) -> usize {
        self.deny_cache.len()
    }

    async fn check_redis(
        &self,
        key: &str,
        limits: &[Limit],
        cost: u32,
    ) -> Result<Decision, String> {
        // Arguments go straight into the command buffer (numbers as decimal text, as Redis
        // reads them), without a string per argument first.
        let mut invocation = self.script.invocation();
        for limit in limits {
            invocation.key(self.redis_key(key, limit));
        }
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        invocation
            .arg(self.clock_offset_us.load(Ordering::Relaxed))
            .arg(format!("{:x}{nonce:x}", self.nonce_base))
            .arg(cost);
        for limit in limits {
            invocation
                .arg(limit.get_algorithm().as_str())
                .arg(limit.quota())
                .arg(limit.period().as_micros() as u64)
                .arg(limit.burst_size());
        }
        let reply: Vec<i64> = self
            .redis
            .invoke(&invocation, self.timeout)
            .await
            .map_err(|err| err.to_string())?;
        parse_reply(&reply, limits.len()).ok_or_else(|| format!("unexpected reply {reply:?}"))
    }

    fn on_error(&self, key: &str, limits: &[Limit], cost: u32) -> Result<Decision, RateLimitError> {
        match self.policy {
            FailurePolicy::Fallback => {
                self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                let shares: Vec<Limit> = limits.iter().map(|l| l.divided(self.replicas)).collect();
                let cost = shares.iter().map(Limit::burst_size).fold(cost, u32::min);
                let mut decision = self.fallback.check_now(key, &shares, cost)?;
                decision.source = Source::Fallback;
                Ok(decision)
            }
            FailurePolicy::FailOpen => {
                self.stats.fail_open.fetch_add(1, Ordering::Relaxed);
                Ok(Decision::unchecked(limits, Source::FailOpen))
            }
            FailurePolicy::FailClosed => {
                self.stats.fail_closed.fetch_add(1, Ordering::Relaxed);
                Err(RateLimitError::Unavailable(
                    "Redis is failing and the policy is fail-closed".into(),
                ))
            }
        }
    }
}

/// `{` and `}` would break the hash tag; `%` escapes them. Very long keys keep a readable head
/// and a stable hash of the whole.
fn escape(key: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::with_capacity(key.len().min(MAX) + 20);
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
        if out.len() >= MAX {
            // FNV-1a: stable across processes and versions, unlike the std hashers.
            let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            out.push_str(&format!("~{hash:016x}"));
            break;
        }
    }
    out
}

fn parse_reply(reply: &[i64], limits: usize) -> Option<Decision> {
    if reply.len() != 1 + 3 * limits {
        return None;
    }
    let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
    Some(Decision {
        allowed: reply[0] == 1,
        limits: reply[1..]
            .chunks_exact(3)
            .map(|c| LimitStatus {
                remaining: c[0].max(0) as u64,
                reset_after: micros(c[1]),
                retry_after: (c[2] >= 0).then(|| micros(c[2])),
            })
            .collect(),
        source: Source::Redis,
    })
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        limits: &'a [Limit],
        cost: u32,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        Box::pin(async move {
            check_cost(limits, cost)?;
            if let Some(denial) = self.deny_cache.get(key, limits, cost) {
                self.stats.deny_cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(denial);
            }
            let permit = self.breaker.permit();
            if permit == Permit::Skip {
                return self.on_error(key, limits, cost);
            }
            match self.check_redis(key, limits, cost).await {
                Ok(decision) => {
                    if self.breaker.success(permit) {
                        tracing::info!(
                            "rate limiter: Redis answers again, back from {:?}",
                            self.policy
                        );
                    }
                    if !decision.allowed {
                        self.deny_cache.insert(key, limits, cost, &decision);
                    }
                    Ok(decision)
                }
                Err(error) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if self.breaker.failure(permit) {
                        tracing::warn!(
                            %error,
                            policy = ?self.policy,
                            "rate limiter: Redis is failing; circuit breaker open, using the failure policy"
                        );
                    }
                    self.on_error(key, limits, cost)
                }
            }
        })
    }

    fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            errors: s.errors.load(Ordering::Relaxed),
            fallbacks: s.fallbacks.load(Ordering::Relaxed),
            fail_open: s.fail_open.load(Ordering::Relaxed),
            fail_closed: s.fail_closed.load(Ordering::Relaxed),
            deny_cache_hits: s.deny_cache_hits.load(Ordering::Relaxed),
            breaker_open: self.breaker.is_open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hash_tags_and_bounds_length() {
        assert_eq!(escape("api:1.2.3.4"), "api:1.2.3.4");
        assert_eq!(escape("a{b}%"), "a%7Bb%7D%25");
        let long = "x".repeat(10_000);
        let escaped = escape(&long);
        assert!(escaped.len() < 230);
        assert_ne!(escaped, escape(&"x".repeat(9_999)));
    }

    #[test]
    fn parses_script_replies() {
        let d = parse_reply(&[0, 0, 5_000, 1_500, 3, 100, -1], 2).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after(), Some(Duration::from_micros(1_500)));
        assert_eq!(d.limits[1].remaining, 3);
        assert!(parse_reply(&[1, 2], 1).is_none());
    }
}
