//! The OpenTelemetry HTTP semantic conventions the modules share: the instrumentation scope,
//! histogram buckets, and how a request's method and scheme are named.

use http::{HeaderMap, Method, Uri};

/// The name of the instrumentation scope of the crate's own instruments.
pub const SCOPE: &str = "rustforge-prod";

/// Bucket boundaries of `http.server.request.duration`, from the semantic conventions (s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bucket boundaries of the body-size histograms (bytes).
pub const SIZE_BUCKETS: &[f64] = &[
    0.0,
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
    100_000_000.0,
];

pub(crate) const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// The method as the semantic conventions name it: one of the nine standard methods, else
/// `_OTHER`, so a client cannot create attribute values (or log fields) of its own.
pub(crate) fn method_name(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .copied()
        .find(|m| *m == method.as_str())
        .unwrap_or("_OTHER")
}

/// `https` when the request says so (its URI, or `X-Forwarded-Proto` from a proxy), else `http`.
pub(crate) fn scheme(uri: &Uri, headers: &HeaderMap) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .map(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if uri.scheme_str() == Some("https") || forwarded == Some(true) {
        "https"
    } else {
        "http"
    }
}
