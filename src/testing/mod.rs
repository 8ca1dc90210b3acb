//! Shared conformance suites for the backends of every module (feature `test-util`).
//!
//! **Empty today**: the suites arrive with the modules they check (rate limiting, broadcasting,
//! storage). Each suite will be a set of async functions taking a backend, run by this crate's
//! tests against the memory backend and against real Redis / S3-protocol servers, and usable by
//! downstream crates that write their own backend.
//!
//! ```
//! assert!(cfg!(feature = "test-util"));
//! ```
