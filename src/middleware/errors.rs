//! JSON bodies for the error responses the stack produces, and the panic handler.

use std::any::Any;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body as HttpBody;

use crate::problem::PROBLEM_JSON;

/// Gives an RFC 9457 problem-details body
/// (`{"type":"about:blank","title":"Service Unavailable","status":503,"request_id":"…"}`) to
/// error responses that have none: those of the timeout (empty),
/// the panic handler (empty), axum's defaults such as 404/405 (empty), and the body-limit 413s
/// (tower-http's and axum's plain-text ones). Responses the application gave a body to are left
/// alone.
pub(crate) fn fill_error_body(
    request_id_header: Option<&HeaderName>,
    mut response: Response<Body>,
) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let headers = response.headers();
    let empty =
        response.body().size_hint().exact() == Some(0) && !headers.contains_key(CONTENT_TYPE);
    let plain_413 = status == StatusCode::PAYLOAD_TOO_LARGE
        && headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(empty || plain_413) {
        return response;
    }
    let request_id = request_id_header
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok());
    let extra = serde_json::json!({ "request_id": request_id });
    let json = crate::problem::body(status, None, None, extra);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.remove(CONTENT_LENGTH);
    *response.body_mut() = Body::from(Bytes::from(json));
    response
}

/// Turns a panic in a handler into an empty 500 (filled by [`fill_error_body`]) and logs it
/// inside the request's span.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    tracing::error!(panic = message, "handler panicked");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
