//! [`RateLimitLayerBuilder`]: the limiters, the store and the response settings of a layer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::HeaderName;
use http::request::Parts;

use super::headers::HeaderDialect;
use super::key::ClientIp;
use super::layer::{RateLimitLayer, Shared};
use super::limiter::{RateLimiter, strings};
use super::store::Decision;
use crate::error::ConfigError;

/// What a custom 429 response is told about the rejection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Rejection {
    /// The limiter that refused the request.
    pub limiter: String,
    /// The policies (limits) that were exhausted.
    pub violated_policies: Vec<String>,
    /// How long the client should wait.
    pub retry_after: Duration,
    /// The request id, when the request-id middleware set one.
    pub request_id: Option<String>,
}

pub(super) type OnLimited = dyn Fn(&Parts, &Rejection) -> Response + Send + Sync;
pub(super) type Observer = dyn Fn(&str, &Decision) + Send + Sync;

/// Builds a [`RateLimitLayer`]: the layer's settings, checked by [`build`](Self::build).
#[must_use = "call .build() to get the layer"]
pub struct RateLimitLayerBuilder {
    pub(super) shared: Shared,
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("store", &self.shared.store)
            .field("limiters", &self.shared.limiters)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayerBuilder {
    /// Adds a limiter. Several limiters may apply to one request; each is checked in turn and
    /// the first that refuses answers 429.
    pub fn limiter(mut self, limiter: RateLimiter) -> Self {
        self.shared.limiters.push(limiter);
        self
    }

    /// How the client IP is found (trusted proxies, IPv6 prefix).
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.shared.client_ip = client_ip;
        self
    }

    /// Which headers responses carry (default [`HeaderDialect::Ietf`]).
    pub fn headers(mut self, dialect: HeaderDialect) -> Self {
        self.shared.headers = dialect;
        self
    }

    /// Paths never limited: each matches itself and everything below it. Default: `/health`
    /// and `/metrics`.
    pub fn exempt<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared.exempt = strings(paths);
        self
    }

    /// The request-id header quoted in 429 bodies (default `x-request-id`; `None` for none).
    pub fn request_id_header(mut self, header: Option<HeaderName>) -> Self {
        self.shared.request_id = header;
        self
    }

    /// Replaces the 429 response. The rate-limit headers and `Retry-After` are added to what
    /// the function returns.
    pub fn on_limited(
        mut self,
        f: impl Fn(&Parts, &Rejection) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.shared.on_limited = Some(Arc::new(f));
        self
    }

    /// Called with every decision (limiter name, decision) — the metrics module uses it.
    pub fn observer(mut self, f: impl Fn(&str, &Decision) + Send + Sync + 'static) -> Self {
        self.shared.observer = Some(Arc::new(f));
        self
    }

    /// Checks every limiter and builds the layer.
    pub fn build(mut self) -> Result<RateLimitLayer, ConfigError> {
        let limiters = std::mem::take(&mut self.shared.limiters)
            .into_iter()
            .map(RateLimiter::validate)
            .collect::<Result<Vec<_>, _>>()?;
        for (i, l) in limiters.iter().enumerate() {
            if limiters[..i].iter().any(|other| other.name == l.name) {
                return Err(ConfigError::new(
                    "rate_limit.limiters",
                    &l.name,
                    "two limiters have this name (their counts would mix)",
                ));
            }
        }
        self.shared.limiters = limiters;
        Ok(RateLimitLayer {
            shared: Arc::new(self.shared),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{Limit, MemoryStore, Store};

    #[test]
    fn rejects_bad_limiters() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let build = |l: RateLimiter| RateLimitLayer::builder(store.clone()).limiter(l).build();
        assert!(build(RateLimiter::new("api", [])).is_err());
        assert!(build(RateLimiter::new("bad name", [Limit::per_second(1)])).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(1)]).cost(2)).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(0)])).is_err());
        assert!(build(RateLimiter::new("api", [Limit::per_second(1)]).routes(["api"])).is_err());
        let twice = RateLimitLayer::builder(store.clone())
            .limiter(RateLimiter::new("a", [Limit::per_second(1)]))
            .limiter(RateLimiter::new("a", [Limit::per_second(2)]))
            .build();
        assert!(twice.is_err());
    }
}
