//! [`RequestSpanHook`]: what follows the request span besides the log line.

use std::fmt;

use http::{HeaderMap, Method, StatusCode, Uri, Version};
use tracing::Span;

use super::TraceContext;

/// The parts of a request a [`RequestSpanHook`] reads, borrowed from it.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))] // read by the OTLP hook
pub(crate) struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) version: Version,
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub(crate) fn of<B>(request: &'a http::Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
        }
    }
}

/// Told when the middleware makes a request span and when the response starts: the OTLP span
/// export (feature `otlp`) is one. The middleware calls it; the production wiring installs it.
pub(crate) trait RequestSpanHook: Send + Sync + 'static {
    /// The span of a request was made; `route` is its template (empty when unmatched).
    fn on_request(&self, span: &Span, trace: &TraceContext, head: RequestHead<'_>, route: &str);

    /// The response of the span's request starts with `status`.
    fn on_response(&self, span: &Span, status: StatusCode);
}

impl fmt::Debug for dyn RequestSpanHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestSpanHook")
    }
}
