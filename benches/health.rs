//! The cost of the health endpoints, and readiness latency while Redis hangs.
//!
//! ```sh
//! cargo bench --bench health --features redis     # 4 rounds × 3 s, 32 connections
//! ```
//!
//! Part 1 serves, from one server, a bare axum handler and the health routes with the report
//! cached (as under probe traffic), interleaved per round, and reports each as a ratio to the
//! bare handler. Part 2 points the Redis check at a "black hole" — a loopback socket that accepts
//! connections and never answers, the worst kind of outage — and reports the latency of
//! `/health/ready` under load against the check timeout.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{env, load, median, runtime, serve};
use rustforge_prod::ProductionLayer;
use rustforge_prod::health::HealthConfig;

/// Accepts TCP connections and never answers on them.
fn black_hole() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

async fn cached_endpoints() {
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    let mut health = HealthConfig::default();
    health.cache_ttl = Duration::from_secs(3600);
    health.public_details = true;
    let prod = ProductionLayer::builder()
        .health(health)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .merge(prod.routes());
    let addr = serve(app).await;
    let paths = ["/ok", "/health/live", "/health/ready", "/health"];
    let labels = [
        "bare axum handler",
        "/health/live",
        "/health/ready (cached)",
        "/health (cached, full details)",
    ];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for path in paths {
        load(addr, path, None, conns, 1).await;
    }
    for _ in 0..rounds {
        for (i, path) in paths.iter().enumerate() {
            let mut s = load(addr, path, None, conns, secs).await;
            assert_eq!(s.failed, 0, "{path} answered errors");
            rps[i].push(s.rps());
            p99[i].push(s.percentile(0.99) as f64);
        }
    }
    println!(
        "\n### Health endpoints, report cached ({conns} connections, {rounds} rounds × {secs} s)\n"
    );
    println!("| endpoint | req/s (median) | p99 µs | ratio to bare handler |");
    println!("|---|---:|---:|---:|");
    let bare = median(&mut rps[0]);
    for i in 0..paths.len() {
        let m = median(&mut rps[i]);
        println!(
            "| {} | {m:.0} | {:.0} | {:.2} |",
            labels[i],
            median(&mut p99[i]),
            m / bare
        );
    }
}

async fn readiness_while_redis_hangs() {
    let secs = env("BENCH_SECS", 3) * env("BENCH_ROUNDS", 4);
    let conns = env("BENCH_CONNS", 32);
    let hole = black_hole();
    let timeout = Duration::from_secs(1);
    let mut health = HealthConfig::default();
    health.timeout = timeout;
    let redis = rustforge_prod::redis::RedisConfig::new(format!("redis://{hole}"))
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300));
    let prod = ProductionLayer::builder()
        .health(health)
        .redis(redis)
        .build()
        .await
        .unwrap();
    let addr = serve(Router::new().merge(prod.routes())).await;
    let mut s = load(addr, "/health/ready", None, conns, secs).await;
    println!("\n### /health/ready while Redis accepts connections and never answers ({secs} s)\n");
    println!("| requests | answered 503 | req/s | p50 µs | p99 µs | max µs | check timeout |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let max = s.latencies_us.iter().copied().max().unwrap_or(0);
    let (p50, p99) = (s.percentile(0.50), s.percentile(0.99));
    println!(
        "| {} | {} | {:.0} | {} | {} | {max} | {} ms |",
        s.requests,
        s.failed,
        s.rps(),
        p50,
        p99,
        timeout.as_millis()
    );
}

fn main() {
    let runtime = runtime();
    runtime.block_on(async {
        cached_endpoints().await;
        readiness_while_redis_hangs().await;
    });
}
