//! Storage: a Laravel-Storage-like facade over object_store.
//!
//! **Not implemented yet** — this module is planned in issue #7 and exports nothing today.
//! Enabling the `storage` feature compiles this empty module only; nothing here pretends to work.
//!
//! ```
//! // The feature exists so that dependants can already name it in Cargo.toml.
//! assert!(cfg!(feature = "storage"));
//! ```
