//! Structured logging: JSON lines in production, pretty output in development.
//!
//! ```no_run
//! use rustforge_prod::{init_logging, LogConfig, LogFormat};
//!
//! # fn main() -> Result<(), rustforge_prod::Error> {
//! // Keep the guard alive for the life of the program: dropping it flushes the log writer.
//! let _guard = init_logging(&LogConfig { format: LogFormat::Json, filter: Some("info".into()) })?;
//! tracing::info!(answer = 42, "logging is ready");
//! # Ok(()) }
//! ```
//!
//! Every request handled by the [middleware stack](crate::middleware) runs inside a `request` span
//! that carries `method`, `route` and `request_id`, so each line logged while serving it — by
//! the crate or by the application — names the request it belongs to. In JSON each line is one
//! flat object ([`JsonFormat`]):
//!
//! ```text
//! {"timestamp":"2026-11-27T06:27:46.121144Z","level":"INFO","target":"rustforge_prod::middleware::trace","message":"request completed","status":200,"latency_us":344,"method":"GET","route":"/users/{id}","request_id":"01a21bb0-4348-7466-96b4-ea325c7259b2"}
//! ```

mod config;
mod json;
mod subscriber;
mod writer;

#[cfg(feature = "metrics")]
pub use crate::telemetry::{TraceContext, link_request_span};
pub use config::{DEFAULT_LOG_FILTER, LogConfig, LogFormat};
pub use json::{JsonFields, JsonFormat};
pub use subscriber::{LogGuard, init_logging, subscriber};
pub(crate) use subscriber::{build_subscriber, install};
// The OTLP span exporter is such a layer (feature `otlp`).
#[allow(unused_imports)]
pub(crate) use subscriber::SpanLayer;
pub use writer::{BatchWriter, FLUSH_AT, FLUSH_INTERVAL, MAX_BUFFERED, WriterGuard, non_blocking};
