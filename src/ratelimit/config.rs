//! [`RateLimitConfig`]: the global limit and the store settings, from code, a file or the
//! environment.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::headers::HeaderDialect;
use super::key::{ClientIp, Key, ProxyHeader, parse_cidrs};
use super::limit::parse_list;
use super::{Algorithm, Limit, RateLimiter};
use crate::backend::RedisRef;
use crate::env::{Setting, parse};
use crate::error::ConfigError;

pub use crate::backend::StoreKind;

/// What a check does when Redis fails or times out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Decide with a local memory store, each limit divided by
    /// [`RateLimitConfig::fallback_replicas`] — the default.
    #[default]
    Fallback,
    /// Admit the request unchecked.
    FailOpen,
    /// Refuse the request (the layer answers 503).
    FailClosed,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fallback" => Ok(Self::Fallback),
            "fail-open" | "open" => Ok(Self::FailOpen),
            "fail-closed" | "closed" => Ok(Self::FailClosed),
            _ => Err("expected fallback, fail-open or fail-closed".into()),
        }
    }
}

/// Rate-limit settings. With no [`limits`](Self::limits) and no limiter added in code, the
/// layer does nothing.
///
/// ```
/// use rustforge_prod::Config;
/// use rustforge_prod::ratelimit::{Algorithm, FailurePolicy};
///
/// let config = Config::from_vars([
///     ("RUSTFORGE_RATE_LIMIT", "10/s,1000/hour"),
///     ("RUSTFORGE_RATE_LIMIT_ALGORITHM", "sliding-window"),
///     ("RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE", "fail-open"),
///     ("RUSTFORGE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16"),
/// ])?;
/// assert_eq!(config.rate_limit.limits.len(), 2);
/// assert_eq!(config.rate_limit.algorithm, Algorithm::SlidingWindow);
/// assert_eq!(config.rate_limit.on_redis_failure, FailurePolicy::FailOpen);
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The global limiter's limits, named `global` (`RUSTFORGE_RATE_LIMIT=100/min`; several
    /// are decided together: `10/s,1000/hour`). Empty: no global limit.
    pub limits: Vec<Limit>,
    /// The algorithm of the global limits (default GCRA).
    pub algorithm: Algorithm,
    /// What the global limiter counts by: `ip` (default), `header:<name>`, `route`, `global`.
    pub key: String,
    /// Where counts live; default: Redis when Redis is configured, else memory.
    pub store: Option<StoreKind>,
    /// What checks do while Redis fails (default fallback to memory).
    pub on_redis_failure: FailurePolicy,
    /// App servers sharing the limits: the memory fallback divides each limit by this (default 1).
    pub fallback_replicas: u32,
    /// Time allowed for one Redis check (default 10 ms).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive Redis failures that open the circuit breaker (default 5).
    pub breaker_failures: u32,
    /// How long an open breaker skips Redis before probing (default 1 s).
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    /// Keys whose Redis denial is answered locally until it runs out (default 10,000; 0: off).
    pub deny_cache: usize,
    /// Keys the memory store holds at most (default 1,000,000).
    pub max_keys: usize,
    /// Proxies whose forwarding header is believed (`RUSTFORGE_TRUSTED_PROXIES`); none by default.
    pub trusted_proxies: Vec<IpNet>,
    /// The forwarding header trusted proxies set (default `x-forwarded-for`).
    pub proxy_header: ProxyHeader,
    /// IPv6 clients are keyed by this prefix (default 64).
    pub ipv6_prefix: u8,
    /// Which headers responses carry (default `ietf`).
    pub headers: HeaderDialect,
    /// Extra paths never limited (the health and metrics routes always are).
    pub exempt: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            limits: Vec::new(),
            algorithm: Algorithm::Gcra,
            key: "ip".into(),
            store: None,
            on_redis_failure: FailurePolicy::Fallback,
            fallback_replicas: 1,
            timeout: Duration::from_millis(10),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
            deny_cache: 10_000,
            max_keys: super::MemoryStore::DEFAULT_MAX_KEYS,
            trusted_proxies: Vec::new(),
            proxy_header: ProxyHeader::XForwardedFor,
            ipv6_prefix: 64,
            headers: HeaderDialect::Ietf,
            exempt: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.global_limiter()?;
        self.client_ip()?;
        for (setting, value) in [
            (
                "rate_limit.fallback_replicas",
                self.fallback_replicas as usize,
            ),
            (
                "rate_limit.breaker_failures",
                self.breaker_failures as usize,
            ),
            ("rate_limit.max_keys", self.max_keys),
        ] {
            if value == 0 {
                return Err(ConfigError::new(setting, "0", "must be at least 1"));
            }
        }
        for (setting, d) in [
            ("rate_limit.timeout", self.timeout),
            ("rate_limit.breaker_cooldown", self.breaker_cooldown),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(setting, "0s", "must be greater than zero"));
            }
        }
        if let Some(path) = self.exempt.iter().find(|p| !p.starts_with('/')) {
            return Err(ConfigError::new(
                "rate_limit.exempt",
                path,
                "a path starts with `/`",
            ));
        }
        Ok(())
    }

    /// The `global` limiter of [`limits`](Self::limits), if any.
    pub fn global_limiter(&self) -> Result<Option<RateLimiter>, ConfigError> {
        if self.limits.is_empty() {
            return Ok(None);
        }
        let key: Key = self.key.parse()?;
        let limits = self
            .limits
            .iter()
            .map(|l| l.clone().algorithm(self.algorithm));
        let limiter = RateLimiter::new("global", limits).key(key);
        for limit in limiter.limits() {
            limit.validate()?;
        }
        Ok(Some(limiter))
    }

    /// The client-IP resolver these settings describe.
    pub fn client_ip(&self) -> Result<ClientIp, ConfigError> {
        ClientIp::new()
            .trusted_networks(self.trusted_proxies.iter().copied())
            .header(self.proxy_header)
            .ipv6_prefix(self.ipv6_prefix)
    }
    /// The environment variables of the rate limiter.
    pub(crate) const ENV: &'static [Setting<Self>] = &[
        Setting::new(
            "RUSTFORGE_RATE_LIMIT",
            "rate_limit.limits",
            "unset (no global limit)",
            "global limit(s) per client, decided together (`100/min`, `10/s,1000/hour`; `off`)",
            |c, var, v| {
                c.limits = match v.trim().to_ascii_lowercase().as_str() {
                    "" | "off" | "none" => Vec::new(),
                    _ => parse_list(var, v)?,
                };
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_ALGORITHM",
            "rate_limit.algorithm",
            "`gcra`",
            "`gcra` (token bucket), `sliding-window`, `fixed-window`, `sliding-log`",
            |c, var, v| {
                c.algorithm = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_KEY",
            "rate_limit.key",
            "`ip`",
            "what the global limit counts by: `ip`, `header:<name>`, `route`, `global`",
            |c, var, v| {
                v.parse::<Key>()
                    .map_err(|e| ConfigError::new(var, v, e.reason().to_owned()))?;
                c.key = v.trim().to_owned();
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_STORE",
            "rate_limit.store",
            "`redis` when `REDIS_URL` is set, else `memory`",
            "`memory` or `redis`",
            |c, var, v| {
                c.store = Some(parse::from_str(var, v)?);
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_ON_REDIS_FAILURE",
            "rate_limit.on_redis_failure",
            "`fallback`",
            "`fallback` (local limits), `fail-open`, `fail-closed` (503)",
            |c, var, v| {
                c.on_redis_failure = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_FALLBACK_REPLICAS",
            "rate_limit.fallback_replicas",
            "`1`",
            "app servers; the local fallback divides each limit by it",
            |c, var, v| {
                c.fallback_replicas = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_TIMEOUT",
            "rate_limit.timeout",
            "`10ms`",
            "time allowed for one Redis check",
            |c, var, v| {
                c.timeout = parse::duration(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_HEADERS",
            "rate_limit.headers",
            "`ietf`",
            "`ietf` (`RateLimit-Policy`/`RateLimit`), `legacy` (`X-RateLimit-*`), `both`, `none`",
            |c, var, v| {
                c.headers = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_RATE_LIMIT_IPV6_PREFIX",
            "rate_limit.ipv6_prefix",
            "`64`",
            "IPv6 clients share a limit per network of this size",
            |c, var, v| {
                c.ipv6_prefix = parse::from_str(var, v)?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_TRUSTED_PROXIES",
            "rate_limit.trusted_proxies",
            "none",
            "proxies whose forwarding header is believed (CIDRs)",
            |c, var, v| {
                c.trusted_proxies = parse_cidrs(var, parse::list(v))?;
                Ok(())
            },
        ),
        Setting::new(
            "RUSTFORGE_PROXY_HEADER",
            "rate_limit.proxy_header",
            "`x-forwarded-for`",
            "the header they set: `x-forwarded-for`, `forwarded` or `x-real-ip`",
            |c, var, v| {
                c.proxy_header = parse::from_str(var, v)?;
                Ok(())
            },
        ),
    ];
}

/// `RUSTFORGE_RATE_LIMIT_STORE=redis` with no Redis configured (or compiled in).
pub(crate) fn redis_store_without_redis() -> ConfigError {
    crate::backend::redis_store_without_redis("rate_limit.store")
}

/// The layer of `ProductionLayer`: the global limiter plus the named ones, on the configured
/// store; `None` when there is no limiter at all.
pub(crate) fn build_layer(
    rl: &RateLimitConfig,
    limiters: Vec<RateLimiter>,
    redis: RedisRef<'_>,
    exempt_routes: impl IntoIterator<Item = String>,
    request_id_header: Option<http::HeaderName>,
) -> Result<Option<super::RateLimitLayer>, ConfigError> {
    use std::sync::Arc;

    use super::{MemoryStore, RateLimitLayer, Store};

    let global = rl.global_limiter()?;
    if global.is_none() && limiters.is_empty() {
        return Ok(None);
    }
    let kind = rl.store.unwrap_or(match redis {
        Some(_) => StoreKind::Redis,
        None => StoreKind::Memory,
    });
    let store: Arc<dyn Store> = match (kind, redis) {
        #[cfg(feature = "redis")]
        (StoreKind::Redis, Some(redis)) => {
            Arc::new(super::RedisStore::from_config(redis.clone(), rl))
        }
        (StoreKind::Redis, _) => return Err(redis_store_without_redis()),
        (StoreKind::Memory, _) => Arc::new(MemoryStore::new().max_keys(rl.max_keys)),
    };
    let mut exempt = rl.exempt.clone();
    exempt.extend(exempt_routes);
    let mut builder = RateLimitLayer::builder(store)
        .client_ip(rl.client_ip()?)
        .headers(rl.headers)
        .exempt(exempt)
        .request_id_header(request_id_header);
    for limiter in global.into_iter().chain(limiters) {
        builder = builder.limiter(limiter);
    }
    builder.build().map(Some)
}
