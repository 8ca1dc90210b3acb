//! Shared conformance suites for the backends of every module (feature `test-util`).
//!
//! Each suite is a set of async functions taking a backend. This crate runs them against the
//! memory backend and against real Redis; a downstream crate that writes its own backend runs
//! the same functions against it.
//!
//! ```
//! assert!(cfg!(feature = "test-util"));
//! ```

#[cfg(feature = "ratelimit")]
pub mod ratelimit;

#[cfg(feature = "storage")]
pub mod storage;
