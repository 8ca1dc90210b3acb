//! A chat room on the Pusher protocol: a public channel for messages the server publishes and a
//! presence channel for who is online and who is typing (client events), with a small HTML page
//! that uses the pusher-js browser build from the npm package (no CDN).
//!
//! ```sh
//! npm ci --prefix examples/chat          # once: pusher-js 8.6.0, pinned by the lock file
//! cargo run --example chat               # then open http://127.0.0.1:3000 in two browsers
//! ```
//!
//! The authorizer takes the user from the `X-User-Id` header the page sends — an example, not a
//! production policy: a real app derives the user from its session.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::serve::Listener as _;
use axum::{Json, Router};
use rustforge_prod::ProductionLayer;
use rustforge_prod::broadcast::{Access, AppConfig, BroadcastConfig, Event, User, authorizer_fn};
use serde_json::{Value, json};

const PUSHER_JS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/chat/node_modules/pusher-js/dist/web/pusher.min.js"
);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pusher_js = std::fs::read_to_string(PUSHER_JS)
        .map_err(|e| format!("{PUSHER_JS}: {e} — run `npm ci --prefix examples/chat` first"))?;
    let key = "chat-key";
    let prod = ProductionLayer::builder()
        .broadcast(BroadcastConfig::default().app(AppConfig::new("chat", key, "chat-secret")))
        .authorizer(authorizer_fn(|request| async move {
            match request
                .headers
                .get("x-user-id")
                .and_then(|v| v.to_str().ok())
            {
                Some(name) if !name.is_empty() => Access::Member(User::new(name, json!({}))),
                _ => Access::Deny,
            }
        }))
        .build()
        .await?;
    let broadcaster = prod.broadcaster().expect("broadcasting configured").clone();
    let page =
        include_str!("chat/index.html").replace("__CONFIG__", &json!({ "key": key }).to_string());

    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/pusher.min.js",
            get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], pusher_js) }),
        )
        .route(
            "/messages",
            post(move |headers: HeaderMap, Json(message): Json<Value>| {
                let broadcaster = broadcaster.clone();
                async move {
                    // Everyone but the sender's own connection (Laravel's `toOthers()`).
                    let mut event = Event::new(["chat"], "message", message.to_string());
                    if let Some(socket) = headers.get("x-socket-id").and_then(|v| v.to_str().ok()) {
                        event = event.except(socket);
                    }
                    match broadcaster.publish_event(event).await {
                        Ok(_) => StatusCode::NO_CONTENT.into_response(),
                        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
                    }
                }
            }),
        )
        .merge(prod.routes())
        .layer(prod.layer());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = rustforge_prod::bind(format!("127.0.0.1:{port}")).await?;
    println!("chat listening on http://{}", listener.local_addr()?);
    rustforge_prod::serve(listener, app, &prod).await;
    Ok(())
}
