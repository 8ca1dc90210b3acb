//! The request span: what the middleware's `make_span` and `on_response` add when spans are
//! exported.

use opentelemetry::trace::{SpanContext, Status, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, KeyValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::exporting;
use crate::telemetry::{RequestHead, RequestSpanHook, TraceContext};

/// The OTLP export of request spans, as the middleware's [`RequestSpanHook`]; it does nothing
/// until the span layer is installed (`ProductionLayer::init_logging`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SpanExport;

impl RequestSpanHook for SpanExport {
    fn on_request(&self, span: &Span, trace: &TraceContext, head: RequestHead<'_>, route: &str) {
        start_request_span(span, trace, head, route);
    }

    fn on_response(&self, span: &Span, status: http::StatusCode) {
        end_request_span(span, status);
    }
}

/// Prepares the request span for export: name `GET /users/{id}`, kind server, the semantic
/// conventions' request attributes, the incoming `traceparent` as parent and the ids of the
/// request's [`TraceContext`]. Declared fields `otel.name` and `otel.kind` must exist on `span`.
fn start_request_span(span: &Span, trace: &TraceContext, request: RequestHead<'_>, route: &str) {
    if !exporting() || span.is_none() {
        return;
    }
    let method = crate::telemetry::method_name(request.method);
    let name = match (method, route) {
        ("_OTHER", "") => "HTTP".to_owned(),
        ("_OTHER", route) => format!("HTTP {route}"),
        (method, "") => method.to_owned(),
        (method, route) => format!("{method} {route}"),
    };
    span.record("otel.name", name);
    span.record("otel.kind", "server");
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", request.uri.path().to_owned()),
        KeyValue::new(
            "url.scheme",
            crate::telemetry::scheme(request.uri, request.headers),
        ),
        KeyValue::new(
            "network.protocol.version",
            match request.version {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_3 => "3",
                _ => "1.1",
            },
        ),
    ];
    if method == "_OTHER" {
        attributes.push(KeyValue::new(
            "http.request.method_original",
            request.method.as_str().to_owned(),
        ));
    }
    if !route.is_empty() {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    if let Some(query) = request.uri.query() {
        attributes.push(KeyValue::new("url.query", redact_query(query)));
    }
    let header = |name| request.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(agent) = header(http::header::USER_AGENT) {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    if let Some(authority) =
        header(http::header::HOST).and_then(|h| h.parse::<http::uri::Authority>().ok())
    {
        attributes.push(KeyValue::new("server.address", authority.host().to_owned()));
        if let Some(port) = authority.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    for attribute in attributes {
        span.set_attribute(attribute.key, attribute.value);
    }
    let (trace_id, span_id, parent) = trace.ids();
    if let Some(parent) = parent {
        let flags = match trace.is_sampled() {
            true => TraceFlags::SAMPLED,
            false => TraceFlags::default(),
        };
        let state = trace
            .tracestate()
            .and_then(|s| s.parse::<TraceState>().ok());
        let parent = SpanContext::new(trace_id, parent, flags, true, state.unwrap_or_default());
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
    // Start the OpenTelemetry span now, on this thread, with the request's ids.
    super::ids::with_ids((trace_id, span_id), || span.context());
}

/// Records the response status on the request span; a 5xx marks it as an error, as the
/// conventions say for server spans.
fn end_request_span(span: &Span, status: http::StatusCode) {
    if !exporting() || span.is_none() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_attribute("error.type", status.as_str().to_owned());
        span.set_status(Status::error(""));
    }
}

/// Query parameters whose values never leave the process: the conventions' list (signed-URL
/// signatures and access keys) plus the usual credentials. Matched without regard to case.
const SECRET_PARAMS: &[&str] = &[
    "awsaccesskeyid",
    "signature",
    "sig",
    "x-goog-signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "password",
];

/// `url.query` with the values of [`SECRET_PARAMS`] replaced by `REDACTED`, as the semantic
/// conventions ask, so a signed URL or a token in a query string is not exported.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) => {
                format!("{key}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_the_query_are_redacted() {
        assert_eq!(
            super::redact_query("page=2&Signature=abc&X-Amz-Credential=AKIA%2F&q=a=b&token"),
            "page=2&Signature=REDACTED&X-Amz-Credential=REDACTED&q=a=b&token"
        );
    }
}
