//! OTLP export (feature `otlp`): metrics pushed to an OpenTelemetry collector next to (or
//! instead of) the Prometheus endpoint, and one server span per request with the HTTP semantic
//! conventions' attributes, continuing an incoming W3C `traceparent`.
//!
//! Export uses OTLP over HTTP/protobuf (port 4318), the protocol the OpenTelemetry spec makes
//! the default. Set `OTEL_EXPORTER_OTLP_ENDPOINT` (or [`OtlpConfig::endpoint`]) and both signals
//! are exported; `OTEL_METRICS_EXPORTER` / `OTEL_TRACES_EXPORTER` choose per signal.
//!
//! ```
//! use rustforge_prod::{Config, ProductionLayer};
//! use rustforge_prod::otlp::OtlpConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rustforge_prod::Error> {
//! let mut config = Config::default();
//! let mut otlp = OtlpConfig::default();
//! otlp.endpoint = Some("http://127.0.0.1:4318".into()); // the collector
//! config.otlp = otlp;
//! let prod = ProductionLayer::builder().config(config).build().await?;
//! let _logs = prod.init_logging()?; // JSON logs + a span per request, exported over OTLP
//! // ... rustforge_prod::serve(listener, app, &prod).await, which ends with:
//! prod.flush().await; // export what is still buffered before the process exits
//! # Ok(()) }
//! ```
//!
//! The span of a request has the same `trace_id` and `span_id` as its log lines and as the
//! [`TraceContext`](crate::telemetry::TraceContext) handlers pass on, so a trace in the
//! collector and the log lines of the same request find each other.

mod config;
mod ids;
mod layer;
#[cfg(feature = "middleware")]
mod request;

pub use config::OtlpConfig;
#[cfg(feature = "middleware")]
use layer::exporting;
pub(crate) use layer::layer;
#[cfg(feature = "middleware")]
pub(crate) use request::SpanExport;
