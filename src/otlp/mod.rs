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
//! // ... axum::serve(listener, app).with_graceful_shutdown(prod.shutdown_signal()).await?;
//! prod.flush().await; // export what is still buffered before the process exits
//! # Ok(()) }
//! ```
//!
//! The span of a request has the same `trace_id` and `span_id` as its log lines and as the
//! [`TraceContext`](crate::telemetry::TraceContext) handlers pass on, so a trace in the
//! collector and the log lines of the same request find each other.

mod config;
mod ids;
#[cfg(feature = "middleware")]
mod request;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use config::OtlpConfig;
#[cfg(feature = "middleware")]
pub(crate) use request::SpanExport;

/// Whether a span exporter is installed: the request span is only prepared for OpenTelemetry
/// when someone consumes it (the `tracing-opentelemetry` layer costs about a quarter of the
/// stack's throughput, see `benches/http_stack.rs`).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The layer turning `tracing` spans into OpenTelemetry spans for `provider`.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    EXPORTING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(crate::telemetry::SCOPE))
        // No code.*, thread.*, level/target or busy/idle attributes on every span: they say
        // little about a request and cost time on each one. Log lines inside a span still
        // become its events.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
}

/// Whether [`layer`] was installed (then the request span is prepared for export).
#[cfg(feature = "middleware")]
fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}
