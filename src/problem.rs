//! RFC 9457 problem details: the one shape of every HTTP error body the crate writes itself
//! (the middleware's error responses, the rate limiter's 429/503, storage's errors, a session
//! store that is down). The
//! broadcaster's HTTP API keeps the Pusher format its clients expect.

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};

/// The media type of a problem-details body.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The body `{"type", "title", "status", "detail"?, …extra}`: `type` is the IANA HTTP problem
/// type `kind` (`…#rate-limited`), or `about:blank` when there is none; `title` the status'
/// reason phrase; `extra` is an object of extension members (`request_id`, …), whose `null`
/// members are left out, or `null`.
pub(crate) fn body(
    status: StatusCode,
    kind: Option<&str>,
    detail: Option<&str>,
    extra: Value,
) -> Vec<u8> {
    let mut body = Map::new();
    let kind = match kind {
        Some(kind) => format!("https://iana.org/assignments/http-problem-types#{kind}"),
        None => "about:blank".to_owned(),
    };
    body.insert("type".into(), kind.into());
    body.insert(
        "title".into(),
        status.canonical_reason().unwrap_or("Error").into(),
    );
    body.insert("status".into(), status.as_u16().into());
    if let Some(detail) = detail {
        body.insert("detail".into(), detail.into());
    }
    if let Value::Object(extra) = extra {
        body.extend(extra.into_iter().filter(|(_, v)| !v.is_null()));
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A whole `application/problem+json` response with [`body`].
#[cfg_attr(
    not(any(feature = "ratelimit", feature = "storage", feature = "session")),
    allow(dead_code)
)]
pub(crate) fn response(
    status: StatusCode,
    kind: Option<&str>,
    detail: Option<&str>,
    extra: Value,
) -> Response<Body> {
    let mut response = Response::new(Body::from(body(status, kind, detail, extra)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_of_rfc_9457() {
        let extra = serde_json::json!({ "request_id": "r1", "absent": null });
        let problem: Value = serde_json::from_slice(&body(
            StatusCode::TOO_MANY_REQUESTS,
            Some("rate-limited"),
            Some("slow down"),
            extra,
        ))
        .unwrap();
        assert_eq!(
            problem,
            serde_json::json!({
                "type": "https://iana.org/assignments/http-problem-types#rate-limited",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "slow down",
                "request_id": "r1",
            })
        );
        let blank: Value =
            serde_json::from_slice(&body(StatusCode::NOT_FOUND, None, None, Value::Null)).unwrap();
        assert_eq!(blank["type"], "about:blank");
        assert!(blank.get("detail").is_none());
    }
}
