//! [`ProductionStack`]: the middleware stack with the rate limiter and the HTTP metrics put in
//! their places.

use tower::Layer;

#[cfg(feature = "metrics")]
use crate::metrics::{HttpMetrics, HttpMetricsLayer};
#[cfg(any(feature = "ratelimit", feature = "metrics"))]
use crate::middleware::optional;
use crate::middleware::{HttpService, HttpServiceLike, HttpStack};
#[cfg(feature = "ratelimit")]
use crate::ratelimit::RateLimitLayer;

/// Every middleware of the crate as one tower [`Layer`], for [`Router::layer`](axum::Router::layer);
/// get it from [`ProductionLayer::layer`](crate::ProductionLayer::layer).
///
/// The order is [`HttpStack`]'s, with two layers of other modules put in: the rate limiter
/// inside CORS (browsers can read a 429) and outside everything that does work for the request;
/// the HTTP metrics inside the request span and outside CORS, so preflights and the stack's own
/// 408/413/429/500/503 responses are measured too.
#[derive(Clone, Debug)]
pub struct ProductionStack {
    pub(super) http: HttpStack,
    #[cfg(feature = "ratelimit")]
    pub(super) rate_limit: Option<RateLimitLayer>,
    #[cfg(feature = "metrics")]
    pub(super) metrics: Option<HttpMetrics>,
}

impl<S: HttpServiceLike> Layer<S> for ProductionStack {
    type Service = HttpService;

    fn layer(&self, inner: S) -> HttpService {
        let svc = self.http.inner(inner);
        #[cfg(feature = "ratelimit")]
        let svc = optional(svc, self.rate_limit.clone(), |r, s| r.layer(s));
        let svc = self.http.cors(svc);
        #[cfg(feature = "metrics")]
        let svc = optional(svc, self.metrics.clone(), |m, s| {
            HttpMetricsLayer::new(m).layer(s)
        });
        self.http.outer(svc)
    }
}
