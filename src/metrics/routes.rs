//! The `/metrics` route.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Metrics;

/// The Prometheus text exposition content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Endpoint {
    metrics: Metrics,
    token: Option<String>,
}

impl Metrics {
    /// The `/metrics` route at `path`; with `token`, callers must send `Authorization: Bearer`
    /// with it (401 otherwise).
    pub fn routes<S>(&self, path: &str, token: Option<String>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route(path, get(render)).with_state(Endpoint {
            metrics: self.clone(),
            token,
        })
    }
}

async fn render(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(token) = &endpoint.token
        && !crate::util::bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        )
            .into_response();
    }
    let body = tokio::task::spawn_blocking(move || endpoint.metrics.render())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_TEXT),
        )],
        body,
    )
        .into_response()
}
