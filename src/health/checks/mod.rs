//! The built-in checks.

mod disk;
mod function;
mod latency;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod utilization;

pub use disk::{DiskCheck, DiskSpace};
pub use function::{FnCheck, check_fn};
pub use latency::LatencyCheck;
#[cfg(feature = "sqlx-postgres")]
pub use latency::postgres_check;
pub use memory::{MemoryCheck, MemorySource, MemoryUsage};
#[cfg(feature = "redis")]
pub use redis::RedisCheck;
