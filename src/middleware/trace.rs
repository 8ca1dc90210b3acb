//! Request logging: one `request` span per request and one line when the response starts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::MatchedPath;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use tower_http::request_id::RequestId;
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::Span;

#[cfg(feature = "metrics")]
use crate::telemetry::{RequestHead, RequestSpanHook, TraceContext, link_request_span};

/// Request-logging settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// Create the `request` span and log one line per request (default `true`).
    pub enabled: bool,
    /// Route templates that get no span and no log line (the builder adds the health routes,
    /// which probes poll every few seconds).
    pub quiet_routes: Vec<String>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quiet_routes: Vec::new(),
        }
    }
}

/// Makes the `request` span: `method`, `route` (the axum route template such as `/users/{id}`,
/// empty for unmatched paths, so a scanner cannot flood logs with distinct values),
/// `request_id`, read from the extension `SetRequestId` put there before the span is made
/// (tower-http#351), and — with the `metrics` feature — `trace_id` and `span_id`, continuing an
/// incoming W3C `traceparent`.
///
/// Every field a client controls is bounded, so one request cannot write a huge log line:
///
/// | field | bound |
/// |---|---|
/// | `method` | one of the nine standard methods, else `_OTHER` (at most 7 bytes) |
/// | `route` | a route template of the application, or empty; never the raw path |
/// | `request_id` | 1–128 visible ASCII characters, else replaced by a new UUID v7 |
/// | `trace_id`, `span_id` | 32 and 16 hex digits; a malformed `traceparent` is ignored |
/// | `status`, `latency_us` | numbers |
#[derive(Clone, Debug, Default)]
pub struct MakeRequestSpan {
    quiet_routes: Arc<[String]>,
    #[cfg(feature = "metrics")]
    hook: Option<Arc<dyn RequestSpanHook>>,
}

impl MakeRequestSpan {
    /// Spans for every route except `quiet_routes`.
    pub fn new(quiet_routes: &[String]) -> Self {
        Self {
            quiet_routes: quiet_routes.into(),
            #[cfg(feature = "metrics")]
            hook: None,
        }
    }

    /// The same, also telling `hook` of each span it makes.
    #[cfg(feature = "metrics")]
    #[allow(dead_code)] // the hooks exist with the `otlp` feature
    pub(crate) fn with_hook(self, hook: Arc<dyn RequestSpanHook>) -> Self {
        Self {
            hook: Some(hook),
            ..self
        }
    }

    /// The response logger that goes with these spans.
    pub(crate) fn log_response(&self) -> LogResponse {
        LogResponse {
            #[cfg(feature = "metrics")]
            hook: self.hook.clone(),
        }
    }
}

impl<B> MakeSpan<B> for MakeRequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("");
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("");
        if !self.quiet_routes.is_empty() && self.quiet_routes.iter().any(|r| r == route) {
            return Span::none();
        }
        let span = tracing::info_span!(
            "request",
            // A made-up method is `_OTHER`, as in the metrics: a client cannot write what it
            // likes into the log.
            method = crate::telemetry::method_name(request.method()),
            route,
            request_id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            // Set only when spans are exported (feature `otlp`); never logged.
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        #[cfg(feature = "metrics")]
        match request.extensions().get::<TraceContext>() {
            Some(context) => {
                context.record(&span);
                if let Some(hook) = &self.hook {
                    hook.on_request(&span, context, RequestHead::of(request), route);
                }
            }
            None => link_request_span(&span, request.headers()),
        }
        span
    }
}

/// Logs the one line per request: `status` and `latency_us`, inside the `request` span (none
/// for quiet routes).
#[derive(Clone, Debug, Default)]
pub struct LogResponse {
    #[cfg(feature = "metrics")]
    hook: Option<Arc<dyn RequestSpanHook>>,
}

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        if span.is_none() {
            return;
        }
        #[cfg(feature = "metrics")]
        if let Some(hook) = &self.hook {
            hook.on_response(span, response.status());
        }
        tracing::info!(
            status = response.status().as_u16(),
            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            "request completed"
        );
    }
}
