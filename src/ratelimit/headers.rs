//! Response headers: `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11),
//! legacy `X-RateLimit-*`, and `Retry-After`.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{Limit, LimitStatus};

/// Which rate-limit headers responses carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderDialect {
    /// `RateLimit-Policy` and `RateLimit` as Structured Field lists (draft -11) — the default.
    #[default]
    Ietf,
    /// GitHub/Laravel style `X-RateLimit-Limit`, `-Remaining`, `-Reset` (Unix seconds), for the
    /// limit closest to exhaustion.
    Legacy,
    /// Both.
    Both,
    /// None (a 429 still carries `Retry-After`).
    None,
}

impl FromStr for HeaderDialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ietf" | "draft" => Ok(Self::Ietf),
            "legacy" | "x" => Ok(Self::Legacy),
            "both" => Ok(Self::Both),
            "none" | "off" => Ok(Self::None),
            _ => Err("expected ietf, legacy, both or none".into()),
        }
    }
}

/// One limit of one checked limiter, as the headers see it.
pub(crate) struct PolicyState<'a> {
    pub(crate) name: &'a str,
    pub(crate) limit: &'a Limit,
    pub(crate) status: LimitStatus,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

/// `t` of a policy: the wait until it admits again when it denied, else the time to full reset.
fn reset_secs(state: &PolicyState<'_>) -> u64 {
    match state.status.retry_after {
        Some(wait) => retry_secs(wait),
        None => ceil_secs(state.status.reset_after),
    }
}

/// `Retry-After`: whole seconds, rounded up, at least 1.
pub(crate) fn retry_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

pub(crate) fn apply(dialect: HeaderDialect, states: &[PolicyState<'_>], headers: &mut HeaderMap) {
    if states.is_empty() {
        return;
    }
    if matches!(dialect, HeaderDialect::Ietf | HeaderDialect::Both) {
        let mut policy = String::new();
        let mut current = String::new();
        for (i, s) in states.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let w = ceil_secs(s.limit.period()).max(1);
            let _ = write!(policy, "{sep}\"{}\";q={};w={w}", s.name, s.limit.quota());
            let _ = write!(
                current,
                "{sep}\"{}\";r={};t={}",
                s.name,
                s.status.remaining,
                reset_secs(s)
            );
        }
        insert(headers, "ratelimit-policy", policy);
        insert(headers, "ratelimit", current);
    }
    if matches!(dialect, HeaderDialect::Legacy | HeaderDialect::Both) {
        // Laravel: with several limits the one with the lowest remaining wins.
        if let Some(s) = states.iter().min_by_key(|s| s.status.remaining) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            insert(headers, "x-ratelimit-limit", s.limit.quota().to_string());
            insert(
                headers,
                "x-ratelimit-remaining",
                s.status.remaining.to_string(),
            );
            insert(
                headers,
                "x-ratelimit-reset",
                (now + reset_secs(s)).to_string(),
            );
        }
    }
}

pub(crate) fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_lists() {
        let per_min = Limit::per_minute(100);
        let per_day = Limit::per_day(1000);
        let states = [
            PolicyState {
                name: "api",
                limit: &per_min,
                status: LimitStatus {
                    remaining: 0,
                    reset_after: Duration::from_secs(60),
                    retry_after: Some(Duration::from_millis(11_200)),
                },
            },
            PolicyState {
                name: "daily",
                limit: &per_day,
                status: LimitStatus {
                    remaining: 811,
                    reset_after: Duration::from_millis(3_599_001),
                    retry_after: None,
                },
            },
        ];
        let mut h = HeaderMap::new();
        apply(HeaderDialect::Both, &states, &mut h);
        assert_eq!(
            h["ratelimit-policy"],
            r#""api";q=100;w=60, "daily";q=1000;w=86400"#
        );
        assert_eq!(h["ratelimit"], r#""api";r=0;t=12, "daily";r=811;t=3600"#);
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(2001)), 3);
    }
}
