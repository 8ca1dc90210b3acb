//! Rate limiting: GCRA, sliding-window, fixed-window and sliding-log limits with a memory store
//! for one process and a Redis store shared by many.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use rustforge_prod::ProductionLayer;
//! use rustforge_prod::ratelimit::{Limit, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let prod = ProductionLayer::builder()
//!     // A global limit per client IP; from the environment: RUSTFORGE_RATE_LIMIT=100/min
//!     .from_vars([("RUSTFORGE_RATE_LIMIT", "100/min")])?
//!     // A stricter named limiter on one route: 5 per minute and 20 per hour, decided together.
//!     .rate_limiter(
//!         RateLimiter::new("login", [Limit::per_minute(5), Limit::per_hour(20)]).routes(["/login"]),
//!     )
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .route("/login", post(|| async { "welcome" }))
//!     .merge(prod.routes())
//!     .layer(prod.layer()); // answers 429 + RateLimit headers + Retry-After when a limit is hit
//! // Limiting by IP needs the peer address: `rustforge_prod::serve` passes it on; with
//! // `axum::serve`, serve this:
//! let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! # let _ = service; Ok(()) }
//! ```
//!
//! * [`Limit`] — `n` requests per period with a burst (`Limit::per_minute(100)`, `"100/min"`);
//!   [`Algorithm`] — GCRA (the default; a token bucket is the same limiter), sliding-window
//!   counter, fixed window from the first hit (quotas), sliding log (exact, capped).
//! * [`RateLimiter`] — a named set of limits, a [`Key`] (client IP, header, user, route, any
//!   function), routes and a cost. All limits of one limiter are decided atomically.
//! * [`Store`] — [`MemoryStore`] (sharded, bounded) or [`RedisStore`] (feature `redis`: one Lua
//!   script per check, Redis clock, Cluster-ready keys, timeout, circuit breaker,
//!   [`FailurePolicy`], deny cache). Both pass the same conformance suite.
//! * [`RateLimitLayer`] — the tower layer, inside [`ProductionLayer`](crate::ProductionLayer) or
//!   on its own; headers per draft-ietf-httpapi-ratelimit-headers-11 ([`HeaderDialect`]), 429
//!   bodies in RFC 9457 `application/problem+json`.
//! * [`ClientIp`] — forwarding headers only from trusted proxies, rightmost untrusted address,
//!   IPv6 keyed by /64.
//!
//! `docs/rate-limiting.md` explains the algorithms, memory per key, failure policies, proxies and
//! Redis Cluster, with the benchmark figures.

mod algorithm;
mod builder;
mod config;
#[cfg(feature = "redis")]
mod deny_cache;
mod headers;
#[cfg(feature = "metrics")]
mod instruments;
mod key;
mod layer;
mod limit;
mod limiter;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod response;
mod service;
mod store;

pub use builder::{RateLimitLayerBuilder, Rejection};
pub use config::{FailurePolicy, RateLimitConfig, StoreKind};
pub(crate) use config::{build_layer, redis_store_without_redis};
pub use headers::HeaderDialect;
#[cfg(feature = "metrics")]
pub(crate) use instruments::observe as instruments;
pub use key::{ClientIp, Key, ProxyHeader};
pub use layer::RateLimitLayer;
pub use limit::{Algorithm, Limit, SLIDING_LOG_MAX};
pub use limiter::RateLimiter;
pub use memory::{ManualClock, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use service::RateLimitService;
pub use store::{
    BoxFuture, Decision, LimitStatus, RateLimitError, Source, Statuses, Store, StoreStats,
};
