//! Rate limiting: GCRA, sliding-window, fixed-window and sliding-log limits with memory and Redis
//! stores.

mod algorithm;
#[cfg(feature = "redis")]
mod breaker;
mod config;
#[cfg(feature = "redis")]
mod deny_cache;
mod headers;
mod key;
mod layer;
mod limit;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod store;

pub(crate) use config::build_layer;
pub use config::{FailurePolicy, RateLimitConfig, StoreKind};
pub use headers::HeaderDialect;
pub use key::{ClientIp, Key, ProxyHeader};
pub use layer::{RateLimitLayer, RateLimitLayerBuilder, RateLimitService, RateLimiter, Rejection};
pub use limit::{Algorithm, Limit, SLIDING_LOG_MAX};
pub use memory::{ManualClock, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use store::{BoxFuture, Decision, LimitStatus, RateLimitError, Source, Store, StoreStats};
