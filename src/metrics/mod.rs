//! Metrics: OpenTelemetry metrics with a Prometheus endpoint.
//!
//! **Not implemented yet** — this module is planned in issue #5 and exports nothing today.
//! Enabling the `metrics` feature compiles this empty module only; nothing here pretends to work.
//!
//! ```
//! // The feature exists so that dependants can already name it in Cargo.toml.
//! assert!(cfg!(feature = "metrics"));
//! ```
