//! The responses the rate limiter answers with itself: 429 when limited, 503 (or the request passes) when the store fails, 500 when client addresses are unknown — RFC 9457 problem details.

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use http::request::Parts;

use super::builder::Rejection;
use super::headers;
use super::layer::Shared;
use super::limiter::RateLimiter;
use super::service::states;
use super::store::{Decision, RateLimitError};

impl Shared {
    pub(super) fn request_id(&self, parts: &Parts) -> Option<String> {
        let header = self.request_id.as_ref()?;
        parts
            .headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub(super) fn limited(&self, parts: &Parts, checked: &[(&RateLimiter, Decision)]) -> Response {
        let states = states(checked);
        let (limiter, decision) = checked.last().expect("the refusing limiter was checked");
        let wait = decision.retry_after().unwrap_or(Duration::from_secs(1));
        let retry_after = headers::retry_secs(wait);
        let rejection = Rejection {
            limiter: limiter.name.clone(),
            violated_policies: states
                .iter()
                .filter(|s| s.status.retry_after.is_some())
                .map(|s| s.name.to_owned())
                .collect(),
            retry_after: Duration::from_secs(retry_after),
            request_id: self.request_id(parts),
        };
        let mut response = match &self.on_limited {
            Some(f) => f(parts, &rejection),
            None => problem(
                StatusCode::TOO_MANY_REQUESTS,
                "quota-exceeded",
                &format!(
                    "Rate limit `{}` exceeded; retry in {retry_after} s.",
                    rejection.limiter
                ),
                serde_json::json!({
                    "violated-policies": rejection.violated_policies,
                    "retry_after": retry_after,
                    "request_id": rejection.request_id,
                }),
            ),
        };
        headers::apply(self.headers, &states, response.headers_mut());
        headers::insert(
            response.headers_mut(),
            "retry-after",
            retry_after.to_string(),
        );
        response
    }

    pub(super) fn unavailable(
        &self,
        parts: &Parts,
        limiter: &RateLimiter,
        err: &RateLimitError,
    ) -> Response {
        tracing::debug!(limiter = %limiter.name, error = %err, "rate limit check failed");
        let (status, kind) = match err {
            RateLimitError::Cost { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rate-limit-misconfigured",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporary-reduced-capacity",
            ),
        };
        let mut response = problem(
            status,
            kind,
            &format!("Rate limit `{}` could not be checked: {err}", limiter.name),
            serde_json::json!({ "request_id": self.request_id(parts) }),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers::insert(response.headers_mut(), "retry-after", "1".into());
        }
        response
    }

    pub(super) fn missing_peer(&self, parts: &Parts, limiter: &RateLimiter) -> Response {
        static LOGGED: std::sync::Once = std::sync::Once::new();
        LOGGED.call_once(|| {
            tracing::error!(
                limiter = %limiter.name,
                "rate limiting by IP needs the peer address: serve the app with \
                 rustforge_prod::serve, or with axum::serve and \
                 into_make_service_with_connect_info::<SocketAddr>()"
            );
        });
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rate-limit-misconfigured",
            "The server cannot tell client addresses apart: it must be served with \
             rustforge_prod::serve, or with axum::serve and \
             into_make_service_with_connect_info::<SocketAddr>().",
            serde_json::json!({ "request_id": self.request_id(parts) }),
        )
    }
}

/// An RFC 9457 `application/problem+json` response of the problem type `kind`.
fn problem(status: StatusCode, kind: &str, detail: &str, extra: serde_json::Value) -> Response {
    crate::problem::response(status, Some(kind), Some(detail), extra)
}
