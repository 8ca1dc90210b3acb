//! Broadcasting: a Pusher-protocol WebSocket server with memory and Redis backends.
//!
//! **Not implemented yet** — this module is planned in issue #6 and exports nothing today.
//! Enabling the `broadcast` feature compiles this empty module only; nothing here pretends to work.
//!
//! ```
//! // The feature exists so that dependants can already name it in Cargo.toml.
//! assert!(cfg!(feature = "broadcast"));
//! ```
