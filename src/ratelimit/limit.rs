//! [`Limit`] (n requests per period, with a burst) and [`Algorithm`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The largest limit the sliding-log algorithm accepts: it stores one entry per admitted request
/// (≈ 120 B each in Redis), so 1,000 costs ≈ 118 KB per active key.
pub const SLIDING_LOG_MAX: u32 = 1_000;

/// How a [`Limit`] counts. Every algorithm admits a fresh key `quota` requests at once (the
/// burst) and behaves the same on the memory and the Redis store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Generic cell rate algorithm — the default. A token bucket with capacity `burst` refilled
    /// at `quota / period` is the same limiter (same maths, one number of state): `per_hour(50)`
    /// admits 50 at once, then one more every 72 s. Exact, no window-edge burst, but *not* "at
    /// most n in any window" — use [`SlidingLog`](Self::SlidingLog) for that.
    #[default]
    #[serde(alias = "token-bucket")]
    Gcra,
    /// Sliding-window counter: the previous window's count weighted by how much of it still
    /// overlaps, plus the current window's (Cloudflare's estimate). About n per window, no 2×
    /// burst at the boundary; ≈ 64 B per key in Redis.
    SlidingWindow,
    /// Fixed window starting at the key's first hit and ending when it expires — for daily or
    /// monthly quotas. Up to 2× the quota across a boundary; ≈ 56–80 B per key.
    FixedWindow,
    /// Sliding-window log: every admitted request is stored, so "at most n in any window" holds
    /// exactly. Memory grows with the quota, which is capped at [`SLIDING_LOG_MAX`].
    SlidingLog,
}

impl Algorithm {
    /// The name used in configuration and in the Redis script.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::SlidingWindow => "sliding-window",
            Self::FixedWindow => "fixed-window",
            Self::SlidingLog => "sliding-log",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "gcra" | "token-bucket" => Ok(Self::Gcra),
            "sliding-window" => Ok(Self::SlidingWindow),
            "fixed-window" => Ok(Self::FixedWindow),
            "sliding-log" => Ok(Self::SlidingLog),
            _ => Err("expected gcra, sliding-window, fixed-window or sliding-log".into()),
        }
    }
}

/// `quota` requests per `period`: `Limit::per_minute(100)` is 100 requests per minute, never
/// "one request every 100 minutes".
///
/// ```
/// use std::time::Duration;
/// use rustforge_prod::ratelimit::{Algorithm, Limit};
///
/// let api = Limit::per_second(10).burst(20);          // 10/s on average, 20 at once
/// let daily: Limit = "5000/day".parse()?;              // from config or env
/// let daily = daily.algorithm(Algorithm::FixedWindow); // a quota that resets
/// assert_eq!(daily.quota(), 5000);
/// assert_eq!(daily.period(), Duration::from_secs(86_400));
/// assert!(Limit::per_minute(0).validate().is_err());
/// # let _ = api; Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    quota: u32,
    period: Duration,
    /// `period` in whole microseconds, kept so checks do no division to get it.
    period_us: u64,
    burst: Option<u32>,
    algorithm: Algorithm,
    name: Option<String>,
}

impl Limit {
    /// `quota` requests per `period`.
    pub fn new(quota: u32, period: Duration) -> Self {
        Self {
            quota,
            period,
            period_us: period.as_micros().min(u128::from(u64::MAX)) as u64,
            burst: None,
            algorithm: Algorithm::Gcra,
            name: None,
        }
    }

    /// `n` requests per second.
    pub fn per_second(n: u32) -> Self {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` requests per minute.
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60))
    }

    /// `n` requests per hour.
    pub fn per_hour(n: u32) -> Self {
        Self::new(n, Duration::from_secs(3_600))
    }

    /// `n` requests per day.
    pub fn per_day(n: u32) -> Self {
        Self::new(n, Duration::from_secs(86_400))
    }

    /// How many requests a fresh key may make at once (GCRA only; default: the quota).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The counting algorithm (default [`Algorithm::Gcra`]).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The policy name in the `RateLimit` headers (default: the limiter's name, with the quota and
    /// window appended when the limiter has several limits).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Requests per period.
    pub fn quota(&self) -> u32 {
        self.quota
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests a fresh key may make at once: the burst for GCRA, the quota otherwise.
    pub fn burst_size(&self) -> u32 {
        self.burst.unwrap_or(self.quota)
    }

    /// The algorithm.
    pub fn get_algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The explicit policy name, if one was set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The period in microseconds (the unit of both stores).
    pub(crate) fn period_us(&self) -> f64 {
        self.period_us as f64
    }

    /// A short id that tells limits apart in store keys: `gcra-10-1000ms-b20`.
    #[cfg(feature = "redis")]
    pub(crate) fn id(&self) -> String {
        let mut id = format!(
            "{}-{}-{}ms",
            self.algorithm,
            self.quota,
            self.period.as_millis()
        );
        if let Some(burst) = self.burst.filter(|b| *b != self.quota) {
            id.push_str(&format!("-b{burst}"));
        }
        id
    }

    /// The same limit with the quota (and burst) divided by `replicas`, at least 1 — the local
    /// fallback share of one app server.
    #[cfg(any(feature = "redis", test))]
    pub(crate) fn divided(&self, replicas: u32) -> Self {
        let share = |n: u32| (n / replicas.max(1)).max(1);
        Self {
            quota: share(self.quota),
            burst: self.burst.map(share),
            ..self.clone()
        }
    }

    /// Rejects values that cannot work: zero quota or period, sub-millisecond or longer-than-a-year
    /// periods, more than a million requests per second, a burst on a window algorithm, a
    /// sliding log above [`SLIDING_LOG_MAX`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::new("rate_limit.limits", self.to_string(), reason);
        if self.quota == 0 {
            return Err(bad("the quota must be at least 1 request"));
        }
        if self.period < Duration::from_millis(1) || self.period > Duration::from_secs(366 * 86_400)
        {
            return Err(bad("the period must be between 1 ms and 366 days"));
        }
        if self.quota as f64 / self.period.as_secs_f64() > 1e6 {
            return Err(bad(
                "more than 1,000,000 requests per second is not a limit",
            ));
        }
        match (self.algorithm, self.burst) {
            (Algorithm::Gcra, Some(0)) => return Err(bad("the burst must be at least 1")),
            (Algorithm::Gcra, _) | (_, None) => {}
            (_, Some(_)) => return Err(bad("a burst applies to the GCRA algorithm only")),
        }
        if self.algorithm == Algorithm::SlidingLog && self.quota > SLIDING_LOG_MAX {
            return Err(bad(
                "the sliding log stores every request: at most 1000 (use sliding-window above)",
            ));
        }
        if let Some(name) = &self.name
            && !valid_name(name)
        {
            return Err(bad(
                "a policy name is 1-64 characters of A-Z a-z 0-9 - _ . :",
            ));
        }
        Ok(())
    }
}

/// Policy and limiter names: they appear as Structured Field strings in the `RateLimit` headers
/// and in store keys, so only 1-64 characters of A-Z a-z 0-9 - _ . :
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `100/min`, `10/s`, `5000/day`, `20/30s` (any [humantime](https://docs.rs/humantime) period).
impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let unit = match (secs, self.period.subsec_nanos()) {
            (1, 0) => "s".to_owned(),
            (60, 0) => "min".to_owned(),
            (3_600, 0) => "hour".to_owned(),
            (86_400, 0) => "day".to_owned(),
            _ => humantime::format_duration(self.period).to_string(),
        };
        write!(f, "{}/{unit}", self.quota)
    }
}

impl FromStr for Limit {
    type Err = ConfigError;

    /// Parses `N/unit` (`s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hour`, `d`, `day`) or
    /// `N/<duration>` (`100/30s`, `5/15m`), and validates the result.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::new("rate_limit.limits", s, reason);
        let (n, per) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("expected requests/period, e.g. 100/min, 10/s, 5000/day"))?;
        let quota: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("the quota must be a whole number of requests, e.g. 100/min"))?;
        let period = match per.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3_600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other)
                .map_err(|_| bad("the period is s, min, hour, day or a duration like 30s"))?,
        };
        let limit = Self::new(quota, period);
        limit.validate()?;
        Ok(limit)
    }
}

/// Parses a comma-separated list of limits (`10/s,1000/hour`).
pub(crate) fn parse_list(setting: &str, value: &str) -> Result<Vec<Limit>, ConfigError> {
    crate::env::parse::list(value)
        .iter()
        .map(|item| {
            item.parse::<Limit>()
                .map_err(|e| ConfigError::new(setting, value, e.reason().to_owned()))
        })
        .collect()
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_readable_limits() {
        for (text, quota, secs) in [
            ("100/min", 100, 60),
            ("10/s", 10, 1),
            ("5000/day", 5000, 86_400),
            (" 7 / hour ", 7, 3_600),
            ("20/30s", 20, 30),
        ] {
            let limit: Limit = text.parse().unwrap();
            assert_eq!(
                (limit.quota(), limit.period().as_secs()),
                (quota, secs),
                "{text}"
            );
        }
        assert_eq!(Limit::per_minute(100).to_string(), "100/min");
        assert_eq!("20/30s".parse::<Limit>().unwrap().to_string(), "20/30s");
    }

    #[test]
    fn rejects_nonsense() {
        for text in [
            "",
            "100",
            "0/min",
            "-1/min",
            "1.5/s",
            "10/fortnight",
            "10/0s",
            "5/500us",
            "2000000/s",
            "10/400days",
        ] {
            let err = text.parse::<Limit>().unwrap_err();
            assert_eq!(err.setting(), "rate_limit.limits", "{text}");
        }
        assert!(Limit::per_second(5).burst(0).validate().is_err());
        let window = Limit::per_second(5).algorithm(Algorithm::FixedWindow);
        assert!(window.clone().burst(2).validate().is_err());
        assert!(window.validate().is_ok());
        let log = Limit::per_minute(1001).algorithm(Algorithm::SlidingLog);
        assert!(log.validate().is_err());
        assert!(Limit::per_second(1).named("bad name").validate().is_err());
    }

    #[test]
    fn divides_for_fallback_and_never_to_zero() {
        let l = Limit::per_second(10).burst(20).divided(3);
        assert_eq!((l.quota(), l.burst_size()), (3, 6));
        assert_eq!(Limit::per_second(2).divided(8).quota(), 1);
    }
}
