//! [`RateLimiter`]: a named set of limits, its key, its cost and its routes.

use super::Limit;
use super::key::Key;
use super::limit::valid_name;
use crate::error::ConfigError;

/// A named set of limits, counted by one [`Key`], for some or all routes.
///
/// All limits of a limiter are decided together: `RateLimiter::new("api", [per_second(10),
/// per_hour(1000)])` admits a request only if both have room, and a request denied by one
/// consumes nothing from the other.
///
/// ```
/// use rustforge_prod::ratelimit::{Key, Limit, RateLimiter};
///
/// let api = RateLimiter::new("api", [Limit::per_second(10), Limit::per_hour(1000)])
///     .routes(["/api/"]);
/// let login = RateLimiter::new("login", [Limit::per_minute(5)])
///     .routes(["/login"])
///     .key(Key::ip());
/// # let _ = (api, login);
/// ```
#[derive(Clone, Debug)]
pub struct RateLimiter {
    pub(super) name: String,
    pub(super) limits: Vec<Limit>,
    pub(super) policy_names: Vec<String>,
    pub(super) key: Key,
    pub(super) cost: u32,
    pub(super) routes: Vec<String>,
}

impl RateLimiter {
    /// A limiter counting by client IP on every route, each request costing 1.
    pub fn new(name: impl Into<String>, limits: impl IntoIterator<Item = Limit>) -> Self {
        Self {
            name: name.into(),
            limits: limits.into_iter().collect(),
            policy_names: Vec::new(),
            key: Key::ip(),
            cost: 1,
            routes: Vec::new(),
        }
    }

    /// What requests are counted by (default [`Key::ip`]).
    pub fn key(mut self, key: Key) -> Self {
        self.key = key;
        self
    }

    /// Units each request consumes (default 1).
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Limits only these paths: an entry matches itself and everything below it (`/api`
    /// matches `/api` and `/api/items`; `/api/` only the latter). Default: every route.
    pub fn routes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.routes = strings(prefixes);
        self
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    pub(super) fn validate(mut self) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::new("rate_limit.limiters", &self.name, reason);
        if !valid_name(&self.name) {
            return Err(bad(
                "a limiter name is 1-64 characters of A-Z a-z 0-9 - _ . :",
            ));
        }
        if self.limits.is_empty() {
            return Err(bad("a limiter needs at least one limit"));
        }
        if self.cost == 0 {
            return Err(bad("the cost must be at least 1"));
        }
        for limit in &self.limits {
            limit.validate()?;
            if self.cost > limit.burst_size() {
                return Err(bad(
                    "the cost exceeds a limit's burst: no request could pass",
                ));
            }
        }
        if let Some(route) = self.routes.iter().find(|r| !r.starts_with('/')) {
            return Err(ConfigError::new(
                "rate_limit.limiters",
                route,
                "a route prefix starts with `/`",
            ));
        }
        let several = self.limits.len() > 1;
        self.policy_names = self
            .limits
            .iter()
            .map(|l| match l.name() {
                Some(name) => name.to_owned(),
                None if several => format!("{}-{}", self.name, l.to_string().replace('/', "-")),
                None => self.name.clone(),
            })
            .collect();
        Ok(self)
    }

    pub(super) fn applies_to(&self, path: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| path_matches(r, path))
    }
}

pub(super) fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// `prefix` matches itself and paths below it.
pub(super) fn path_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/items"));
        assert!(!path_matches("/api", "/apiary"));
        assert!(path_matches("/api/", "/api/items"));
        assert!(!path_matches("/api/", "/api"));
        assert!(path_matches("/health", "/health/live"));
    }
}
