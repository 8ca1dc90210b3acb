//! The whole default stack with no Redis and no S3: `cargo run --example quickstart`.
//!
//! It reads the environment like README's snippet (`from_env`): with nothing set, every
//! backend is embedded; `REDIS_URL=redis://127.0.0.1:6379` (feature `redis`) moves rate limits,
//! cache and sessions to Redis, and a bad value stops it with a message naming the variable.
//!
//! Then try `curl -i localhost:3000/` and `curl -i --compressed localhost:3000/api/items`.

use std::process::ExitCode;

use axum::serve::Listener as _;
use axum::{Json, Router, routing::get};
use rustforge_prod::{LogConfig, LogFormat, ProductionLayer, init_logging};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> ExitCode {
    // The error as a sentence (`RUSTFORGE_RATE_LIMIT="often": …`), not as a Rust struct.
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quickstart: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let log = LogConfig {
        format: LogFormat::Pretty,
        filter: None,
    };
    let _logs = init_logging(&log)?;
    let prod = ProductionLayer::builder().from_env()?.build().await?;

    let app = Router::new()
        .route("/", get(|| async { "Hello from rustforge-prod!\n" }))
        .route("/api/items", get(items))
        .merge(prod.routes())
        .layer(prod.layer());

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = rustforge_prod::bind(format!("0.0.0.0:{port}")).await?;
    println!("quickstart listening on http://{}", listener.local_addr()?);
    rustforge_prod::serve(listener, app, &prod).await;
    Ok(())
}

/// A JSON array of about 6 KiB, so that compression applies.
async fn items() -> Json<Value> {
    let items: Vec<Value> = (1..=100)
        .map(|id| json!({ "id": id, "name": format!("Item {id}"), "in_stock": id % 3 != 0 }))
        .collect();
    Json(Value::Array(items))
}
