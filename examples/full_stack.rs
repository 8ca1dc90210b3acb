//! The same app configured purely from the environment — the example the deployment configs run
//! and the end-to-end tests start.
//!
//! ```sh
//! PORT=8080 RUSTFORGE_LOG_FORMAT=json RUSTFORGE_CORS_ORIGINS=https://app.example.com \
//!   RUSTFORGE_REQUEST_TIMEOUT=10s RUSTFORGE_BODY_LIMIT=1MiB RUSTFORGE_RATE_LIMIT=100/min \
//!   REDIS_URL=redis://127.0.0.1:6379 cargo run --example full_stack --features redis
//! ```
//!
//! Add `OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318` (feature `otlp`) to push metrics
//! and export one span per request; the last ones are flushed when the server stops.
//!
//! It shows each module: a cached, tagged route (`/api/stats`, flushed by
//! `POST /api/stats/refresh`), a stale-while-revalidate one (`/api/dashboard`), a session
//! counter behind the CSRF layer (`/api/visits`, reset by `POST /api/visits/reset` with the
//! `XSRF-TOKEN`, which flashes a message for `/api/visits/status`), and with `DATABASE_URL` set
//! (feature `sqlx-postgres`) a query (`/api/db/time`). With no variable set it needs no server
//! at all: the cache and sessions live in the process.
//!
//! Every variable is listed in the README and in `rustforge_prod::config`. A bad value stops the
//! program at start with a message naming the variable.
//!
//! With `PUSHER_APP_ID`, `PUSHER_APP_KEY` and `PUSHER_APP_SECRET` set it also serves the Pusher
//! WebSocket endpoint `/app/{key}`, the auth endpoints and the HTTP API. Its authorizer admits
//! any user to any private or presence channel, taking the user id from an `X-User-Id` header —
//! an example, not a production policy. For a page on another origin to send that header, allow
//! it next to the default CORS headers:
//!
//! ```sh
//! RUSTFORGE_CORS_ORIGINS=https://app.example.com \
//!   RUSTFORGE_CORS_HEADERS=accept,authorization,content-type,x-socket-id,x-csrf-token,x-xsrf-token,x-user-id \
//!   PUSHER_APP_ID=1 PUSHER_APP_KEY=app-key PUSHER_APP_SECRET=secret cargo run --example full_stack
//! ```

use std::process::ExitCode;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::Listener as _;
use axum::{Json, Router};
use rustforge_prod::ProductionLayer;
use rustforge_prod::broadcast::{Access, User, authorizer_fn};
use rustforge_prod::cache::Cache;
use rustforge_prod::session::{self, Session, flash};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("full_stack: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let prod = ProductionLayer::builder()
        .from_env()?
        .authorizer(authorizer_fn(|request| async move {
            // Example policy: whoever names a user id is that user.
            let user = request
                .headers
                .get("x-user-id")
                .and_then(|v| v.to_str().ok());
            match user {
                Some(id) if !id.is_empty() => {
                    Access::Member(User::new(id, json!({ "name": format!("User {id}") })))
                }
                _ => Access::Deny,
            }
        }))
        .build()
        .await?;
    // JSON logs; with OTEL_EXPORTER_OTLP_ENDPOINT set (feature `otlp`) also a span per request.
    let _logs = prod.init_logging()?;

    let app = Router::new()
        .route("/", get(|| async { "rustforge-prod full stack\n" }))
        .route("/api/items", get(items))
        .route("/api/items/{id}", get(item))
        .route("/api/stats", get(stats))
        .route("/api/stats/refresh", post(refresh_stats))
        .route("/api/dashboard", get(dashboard))
        .route("/api/echo", post(|body: Bytes| async move { body }))
        .with_state(prod.cache().clone())
        .merge(sessions(&prod))
        .merge(database(&prod))
        .merge(prod.routes())
        .layer(prod.layer());

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = rustforge_prod::bind(format!("0.0.0.0:{port}")).await?;
    // A log line like every other (stdout carries JSON only); scripts wait for its message.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "full_stack listening on http://{addr}");
    // Returns after SIGTERM, once in-flight requests finished and buffered OTLP data is pushed.
    rustforge_prod::serve(listener, app, &prod).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

fn catalogue() -> Vec<Value> {
    (1..=100)
        .map(|id| json!({ "id": id, "name": format!("Item {id}"), "in_stock": id % 3 != 0 }))
        .collect()
}

/// Counted once per ten minutes, per app (the cache is Redis when `REDIS_URL` is set), and
/// tagged so that `refresh_stats` invalidates it.
async fn stats(State(cache): State<Cache>) -> Result<Json<Value>, StatusCode> {
    let stats = cache
        .tags(&["catalogue"])
        .remember(
            "stats",
            Some(std::time::Duration::from_secs(600)),
            || async {
                let items = catalogue();
                let in_stock = items.iter().filter(|i| i["in_stock"] == true).count();
                Ok::<_, std::io::Error>(json!({ "items": items.len(), "in_stock": in_stock }))
            },
        )
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(stats))
}

/// Stale-while-revalidate: fresh for 5 s, then served up to 10 min old at once while one
/// request per fleet recomputes it in the background.
async fn dashboard(State(cache): State<Cache>) -> Result<Json<Value>, StatusCode> {
    let fresh = std::time::Duration::from_secs(5);
    let stale = std::time::Duration::from_secs(600);
    let dashboard = cache
        .flexible("dashboard", fresh, stale, || async {
            let computed_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Ok::<_, std::io::Error>(
                json!({ "items": catalogue().len(), "computed_at": computed_at }),
            )
        })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(dashboard))
}

async fn refresh_stats(State(cache): State<Cache>) -> StatusCode {
    match cache.tags(&["catalogue"]).flush().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `/api/visits`: a per-visitor counter in the session (in process, or on Redis with
/// `REDIS_URL`, so any server sees it), behind the CSRF layer: `GET /api/visits` hands out the
/// `XSRF-TOKEN` cookie, `POST /api/visits/reset` resets the counter only with the token back
/// (`X-XSRF-TOKEN` header, as axios sends it, or a `_token` form field) and flashes a message
/// that `GET /api/visits/status` shows once.
fn sessions(prod: &ProductionLayer) -> Router {
    async fn visits(session: Session) -> Result<String, axum::response::Response> {
        let visits: u64 = session
            .get("visits")
            .await
            .map_err(session::unavailable)?
            .unwrap_or(0);
        session
            .insert("visits", visits + 1)
            .await
            .map_err(session::unavailable)?;
        Ok(format!("{}\n", visits + 1))
    }
    async fn reset(session: Session) -> Result<String, axum::response::Response> {
        session
            .remove::<u64>("visits")
            .await
            .map_err(session::unavailable)?;
        flash::put(&session, "status", "visits reset")
            .await
            .map_err(session::unavailable)?;
        Ok("0\n".to_owned())
    }
    async fn status(session: Session) -> Result<Json<Value>, axum::response::Response> {
        let status: Option<String> = flash::get(&session, "status")
            .await
            .map_err(session::unavailable)?;
        Ok(Json(json!({ "status": status })))
    }
    Router::new()
        .route("/api/visits", get(visits))
        .route("/api/visits/reset", post(reset))
        .route("/api/visits/status", get(status))
        .layer(prod.csrf_layer())
        .layer(prod.session_layer())
}

/// `/api/db/time`: a query on the pool, when `DATABASE_URL` is set (feature `sqlx-postgres`).
fn database(prod: &ProductionLayer) -> Router {
    #[cfg(feature = "sqlx-postgres")]
    if let Some(db) = prod.database().cloned() {
        return Router::new().route(
            "/api/db/time",
            get(move || async move {
                sqlx::query_scalar::<_, String>("SELECT now()::text")
                    .fetch_one(db.pool())
                    .await
                    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
            }),
        );
    }
    let _ = prod;
    Router::new()
}

async fn items() -> Json<Value> {
    Json(Value::Array(catalogue()))
}

async fn item(Path(id): Path<usize>) -> Result<Json<Value>, StatusCode> {
    catalogue()
        .into_iter()
        .nth(id.wrapping_sub(1))
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}
