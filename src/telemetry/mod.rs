//! Telemetry primitives the modules share: the HTTP semantic conventions (scope, buckets, method
//! and scheme names), and with the `metrics` feature the W3C [`TraceContext`] of a request and
//! the hook through which the OTLP exporter follows request spans. Modules use these; none of
//! them is a module's own instrument.

// Each module uses what it needs; with some features off, some go unused.
#![allow(dead_code, unused_imports, unreachable_pub)]

mod conventions;
#[cfg(all(feature = "metrics", feature = "middleware"))]
mod span_hook;
#[cfg(feature = "metrics")]
mod trace_context;

pub use conventions::{DURATION_BUCKETS, SCOPE, SIZE_BUCKETS};
pub(crate) use conventions::{KNOWN_METHODS, method_name, scheme};
#[cfg(all(feature = "metrics", feature = "middleware"))]
pub(crate) use span_hook::{RequestHead, RequestSpanHook};
#[cfg(feature = "metrics")]
pub use trace_context::{TraceContext, link_request_span};
