//! Telemetry primitives the modules share (with the `metrics` feature): the HTTP semantic
//! conventions (scope, buckets, method and scheme names), the W3C [`TraceContext`] of a
//! request, and the hook through which the OTLP exporter follows request spans. Modules use these; none of them is a module's own instrument.

mod conventions;
#[cfg(feature = "middleware")]
mod span_hook;
mod trace_context;

pub use conventions::{DURATION_BUCKETS, SCOPE, SIZE_BUCKETS};
pub(crate) use conventions::{KNOWN_METHODS, method_name, scheme};
#[cfg(feature = "middleware")]
pub(crate) use span_hook::{RequestHead, RequestSpanHook};
pub use trace_context::{TraceContext, link_request_span};
