//! The cost of a session per request: load and save on every request, against the same route
//! without the session layer, on the memory store and on Redis.
//!
//! ```sh
//! cargo bench --bench session --features redis     # spawns its own redis-server
//! ```
//!
//! Each connection keeps its cookie, so every request loads its session, increments a counter
//! and saves it (the worst case: a session changed on every request). Rounds are interleaved;
//! `BENCH_ROUNDS` (default 4), `BENCH_SECS` (default 3), `BENCH_CONNS` (default 32).

mod common;

use axum::Router;
use axum::routing::get;
use common::{Redis, env, load_with, median, runtime, serve};
use rustforge_prod::ProductionLayer;
use rustforge_prod::session::Session;

async fn counter(session: Session) -> String {
    let n: u64 = session.get("n").await.unwrap().unwrap_or(0);
    session.insert("n", n + 1).await.unwrap();
    (n + 1).to_string()
}

/// A server with `/plain` (no session layer) and `/session` (load + save per request).
async fn server(vars: &[(&str, &str)]) -> std::net::SocketAddr {
    let prod = ProductionLayer::builder()
        .from_vars(vars.iter().copied())
        .unwrap()
        .build()
        .await
        .unwrap();
    let sessions = Router::new()
        .route("/session", get(counter))
        .layer(prod.session_layer());
    let app = Router::new()
        .route("/plain", get(|| async { "1" }))
        .merge(sessions);
    serve(app).await
}

fn main() {
    let redis = Redis::start();
    let url = redis.url();
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    runtime().block_on(async {
        println!("\n### Session load + save per request ({conns} connections, {rounds} rounds × {secs} s)\n");
        println!("| store | route | req/s (median) | p99 µs | ratio to no session |");
        println!("|---|---|---:|---:|---:|");
        for store in ["memory", "redis"] {
            let addr = server(&[
                ("REDIS_URL", url.as_str()),
                ("RUSTFORGE_SESSION_STORE", store),
                ("RUSTFORGE_SESSION_SECRET", "a-bench-secret-of-more-than-thirty-two-bytes"),
            ])
            .await;
            let paths = ["/plain", "/session"];
            for path in paths {
                load_with(addr, path, None, true, conns, 1).await;
            }
            let (mut rps, mut p99) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
            for _ in 0..rounds {
                for (i, path) in paths.iter().enumerate() {
                    let mut sample = load_with(addr, path, None, true, conns, secs).await;
                    assert_eq!(sample.failed, 0, "{store} {path} failed");
                    rps[i].push(sample.rps());
                    p99[i].push(f64::from(sample.percentile(0.99)));
                }
            }
            let plain = median(&mut rps[0]);
            for (i, label) in ["no session layer", "session: load + save"].iter().enumerate() {
                let r = median(&mut rps[i]);
                let p = median(&mut p99[i]);
                println!("| {store} | {label} | {r:.0} | {p:.0} | {:.2} |", r / plain);
            }
        }
    });
}
