//! W3C trace context for requests: each request gets a [`TraceContext`] — its `trace_id`
//! continued from an incoming `traceparent` (or new), and a new `span_id` of its own — recorded
//! on the request span so every line logged while serving it carries them, and available to
//! handlers to pass on to the services they call.
//!
//! This gives correlated logs without building an OpenTelemetry span per request: measured in
//! `benches/http_stack.rs`, a `tracing-opentelemetry` layer behind every span cost about a
//! quarter of the stack's throughput. Exporting spans is opt-in (feature `otlp`).

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
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

/// The W3C trace context of the request being served. The middleware stack puts it in the
/// request extensions; take it with `Extension<TraceContext>` and
/// [`inject`](Self::inject) it into outgoing requests so the next service continues the trace.
///
/// ```
/// use axum::Extension;
/// use rustforge_prod::logging::TraceContext;
///
/// async fn handler(Extension(trace): Extension<TraceContext>) -> String {
///     let mut headers = http::HeaderMap::new();
///     trace.inject(&mut headers); // traceparent (and tracestate) for the downstream call
///     // reqwest::Client::new().get(url).headers(headers).send().await ...
///     headers["traceparent"].to_str().unwrap().to_owned()
/// }
///
/// let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", incoming.parse().unwrap());
/// let trace = TraceContext::from_headers(&headers);
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(trace.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
/// assert_ne!(trace.span_id(), "00f067aa0ba902b7"); // this request is a new span
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    /// The caller's span, from a valid incoming `traceparent`.
    parent: Option<SpanId>,
    sampled: bool,
    tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// Continues a valid incoming `traceparent` (keeping its sampled flag and `tracestate`),
    /// else starts a new trace. A malformed `traceparent` is ignored, never trusted.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let ids = RandomIdGenerator::default();
        let parent = headers
            .contains_key("traceparent")
            .then(|| {
                let context = TraceContextPropagator::new().extract(&Headers(headers));
                context.span().span_context().clone()
            })
            .filter(|context| context.is_valid());
        match parent {
            Some(parent) => Self {
                trace_id: parent.trace_id(),
                span_id: ids.new_span_id(),
                parent: Some(parent.span_id()),
                sampled: parent.is_sampled(),
                tracestate: headers.get("tracestate").cloned(),
            },
            None => Self {
                trace_id: ids.new_trace_id(),
                span_id: ids.new_span_id(),
                parent: None,
                sampled: true,
                tracestate: None,
            },
        }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.trace_id.to_string()
    }

    /// This request's span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        self.span_id.to_string()
    }

    /// The `traceparent` for an outgoing request: this request's span is its parent.
    pub fn traceparent(&self) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id, self.span_id)
    }

    /// Sets `traceparent` (and the incoming `tracestate`, if any) on an outgoing request's
    /// headers — for reqwest (`.headers(..)`), hyper or any `http` client.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.traceparent()) {
            headers.insert("traceparent", value);
        }
        if let Some(state) = &self.tracestate {
            headers.insert("tracestate", state.clone());
        }
    }

    /// The ids as OpenTelemetry types: (trace, this request's span, the caller's span).
    #[cfg(all(feature = "otlp", feature = "middleware"))]
    pub(crate) fn ids(&self) -> (TraceId, SpanId, Option<SpanId>) {
        (self.trace_id, self.span_id, self.parent)
    }

    /// Whether the caller sampled this trace (new traces are sampled).
    #[cfg(all(feature = "otlp", feature = "middleware"))]
    pub(crate) fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The incoming `tracestate`, if any.
    #[cfg(all(feature = "otlp", feature = "middleware"))]
    pub(crate) fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_ref().and_then(|v| v.to_str().ok())
    }

    /// Records `trace_id` and `span_id` on `span`.
    pub fn record(&self, span: &Span) {
        span.record("trace_id", tracing::field::display(self.trace_id));
        span.record("span_id", tracing::field::display(self.span_id));
    }

    /// Puts the request's context in its extensions (done by the middleware stack).
    #[cfg(feature = "middleware")]
    pub(crate) fn attach<B>(mut request: http::Request<B>) -> http::Request<B> {
        let context = Self::from_headers(request.headers());
        request.extensions_mut().insert(context);
        request
    }
}

/// Records `trace_id` (from a valid incoming `traceparent`, else a new random one) and a new
/// `span_id` on `span`. A malformed `traceparent` is ignored, never trusted.
pub fn link_request_span(span: &Span, headers: &HeaderMap) {
    if span.is_none() {
        return;
    }
    TraceContext::from_headers(headers).record(span);
}
