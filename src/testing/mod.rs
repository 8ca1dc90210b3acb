//! Shared conformance suites for the backends of every module (feature `test-util`).
//!
//! Each suite is a set of async functions taking a backend (or, for broadcasting, a fleet of
//! servers). This crate runs them against the memory backend and against real Redis and Redis
//! Cluster; a downstream crate that writes its own backend runs the same functions against it.
//!
//! ```
//! assert!(cfg!(feature = "test-util"));
//! ```

#[cfg(feature = "broadcast")]
pub mod broadcast;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;

#[cfg(feature = "storage")]
pub mod storage;
