//! The `tracing-opentelemetry` layer that turns request spans into exported OpenTelemetry
//! spans, and the switch that says whether it is installed.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

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
pub(super) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}
