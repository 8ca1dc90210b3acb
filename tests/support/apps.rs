//! The app the middleware tests serve, and assertions they share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::{any, get, post};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use rustforge_prod::middleware::{HttpConfig, HttpStack};
use serde_json::Value;

use super::http::TestServer;

/// About 9 KiB of JSON, well above the 1 KiB compression threshold.
pub fn big_json() -> String {
    let items: Vec<Value> = (0..200)
        .map(|i| serde_json::json!({ "id": i, "name": format!("item number {i}") }))
        .collect();
    serde_json::to_string(&items).unwrap()
}

pub fn app(config: &HttpConfig, hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move {
                tracing::info!(user = %id, "in handler");
                "user"
            }),
        )
        .route(
            "/big",
            get(|| async { ([(CONTENT_TYPE, "application/json")], big_json()) }),
        )
        .route(
            "/image",
            get(|| async { ([(CONTENT_TYPE, "image/png")], vec![7u8; 8192]) }),
        )
        .route(
            "/sse",
            get(|| async {
                (
                    [(CONTENT_TYPE, "text/event-stream")],
                    "data: tick\n\n".repeat(500),
                )
            }),
        )
        .route(
            "/zip",
            get(|| async { ([(CONTENT_TYPE, "application/zip")], "PK".repeat(4096)) }),
        )
        .route("/slow", get(std::future::pending::<&'static str>))
        .route("/panic", get(|| async { panic_now() }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/sensitive",
            get(|headers: HeaderMap| async move {
                let auth = headers.get(AUTHORIZATION).is_some_and(|v| v.is_sensitive());
                format!("{auth}")
            }),
        )
        .route(
            "/count",
            any(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "counted"
                }
            }),
        )
        .layer(HttpStack::new(config).expect("valid config"))
}

pub fn panic_now() -> &'static str {
    panic!("boom in handler")
}

pub async fn serve(config: HttpConfig) -> (TestServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    (TestServer::start(app(&config, hits.clone())).await, hits)
}

pub fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

pub fn assert_uuid_v7(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("not a UUID: {id}"));
    assert_eq!(uuid.get_version_num(), 7, "{id}");
}

pub async fn assert_error_json(res: reqwest::Response, status: u16) {
    assert_eq!(res.status(), status);
    assert_eq!(
        header(&res, "content-type"),
        Some("application/problem+json")
    );
    let id = header(&res, "x-request-id").unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], id.as_str());
    let reason = http::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason();
    assert_eq!(body["title"].as_str(), reason);
}
