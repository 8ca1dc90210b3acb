//! Rate limiting: GCRA, sliding-window and fixed-window limits with memory and Redis backends.
//!
//! **Not implemented yet** — this module is planned in issue #3 and exports nothing today.
//! Enabling the `ratelimit` feature compiles this empty module only; nothing here pretends to work.
//!
//! ```
//! // The feature exists so that dependants can already name it in Cargo.toml.
//! assert!(cfg!(feature = "ratelimit"));
//! ```
