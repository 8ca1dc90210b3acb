//! W3C trace context for request logs: each request span gets a `trace_id` — continued from an
//! incoming `traceparent`, or new — and its own `span_id`, recorded as span fields so every line
//! logged while serving the request carries them.
//!
//! This gives correlated logs without building an OpenTelemetry span per request: measured in
//! `benches/http_stack.rs`, a `tracing-opentelemetry` layer behind every span cost about a
//! quarter of the stack's throughput. Exporting spans (OTLP) is planned as an opt-in feature.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::Span;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Records `trace_id` (from a valid incoming `traceparent`, else a new random one) and a new
/// `span_id` on `span`. A malformed `traceparent` is ignored, never trusted.
pub fn link_request_span(span: &Span, headers: &HeaderMap) {
    if span.is_none() {
        return;
    }
    let ids = RandomIdGenerator::default();
    let trace_id = if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let context = parent.span().span_context().clone();
        if context.is_valid() {
            context.trace_id()
        } else {
            ids.new_trace_id()
        }
    } else {
        ids.new_trace_id()
    };
    span.record("trace_id", tracing::field::display(trace_id));
    span.record("span_id", tracing::field::display(ids.new_span_id()));
}
