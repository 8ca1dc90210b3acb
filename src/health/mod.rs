//! Health checks: liveness, readiness and a detailed health report.
//!
//! **Not implemented yet** — this module is planned in issue #4 and exports nothing today.
//! Enabling the `health` feature compiles this empty module only; nothing here pretends to work.
//!
//! ```
//! // The feature exists so that dependants can already name it in Cargo.toml.
//! assert!(cfg!(feature = "health"));
//! ```
