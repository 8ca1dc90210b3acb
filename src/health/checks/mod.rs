//! The built-in checks.

mod disk;
mod function;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use disk::{DiskCheck, DiskSpace};
pub use function::{FnCheck, check_fn};
pub use memory::{MemoryCheck, MemoryUsage};
#[cfg(feature = "redis")]
pub use redis::RedisCheck;
