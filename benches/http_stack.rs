//! The cost of the middleware stack: (A) bare axum, (B) the same routes behind a typical
//! hand-assembled tower-http stack, (C) behind `ProductionLayer` with its defaults — driven with
//! the same HTTP/1.1 keep-alive load over loopback, interleaved A,B,C for several rounds.
//!
//! ```sh
//! cargo bench --bench http_stack                 # defaults: 4 rounds × 3 s, 32 connections
//! BENCH_ROUNDS=6 BENCH_SECS=5 BENCH_CONNS=64 cargo bench --bench http_stack
//! BENCH_SERVE=120 cargo bench --bench http_stack   # only serve A, B, C (for wrk), 120 s
//! ```
//!
//! B and C both log one JSON line per request to a file through a non-blocking writer — B with
//! tracing-subscriber's JSON formatter and tracing-appender (what a hand-assembled app uses), C with
//! this crate's `init_logging` pieces; A logs nothing. `BENCH_PROFILE=C` drives one variant only,
//! for `perf record`.
//! Part 1 serves a 13-byte text (under the compression threshold); part 2 a 2 KB JSON body with
//! compression on, once per encoding — B and C at the same level (1, the crate's default), so
//! the ratio compares the stacks, not the compression levels.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::routing::get;
use common::{env, load, median, runtime, serve};
use rustforge_prod::middleware::CorsConfig;
use rustforge_prod::{LogConfig, LogFormat, ProductionLayer};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

const ORIGIN: &str = "https://app.example.com";

fn json_2k() -> String {
    let items: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({ "id": i, "name": format!("item {i:02}"), "ok": true }))
        .collect();
    serde_json::to_string(&items).unwrap()
}

fn routes() -> Router {
    let json = json_2k();
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route(
            "/json",
            get(move || {
                let json = json.clone();
                async move { ([("content-type", "application/json")], json) }
            }),
        )
}

/// B: what a careful user writes by hand with tower-http (the usual order, default settings).
fn hand_assembled() -> Router {
    routes().layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                axum::http::header::AUTHORIZATION,
                axum::http::header::COOKIE,
            ]))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(
                CorsLayer::new()
                    .allow_origin(HeaderValue::from_static(ORIGIN))
                    .allow_methods([Method::GET, Method::POST]),
            )
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(30),
            ))
            .layer(RequestBodyLimitLayer::new(2 << 20))
            // The same level as C's default: compare stacks, not compression levels.
            .layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Precise(1))),
    )
}

/// C: the same routes behind `ProductionLayer` with its defaults (plus the CORS origin); any
/// `RUSTFORGE_*` variable set for the run applies, e.g. `RUSTFORGE_COMPRESSION_LEVEL=1`.
async fn production() -> Router {
    let prod = ProductionLayer::builder()
        .cors(CorsConfig::origins([ORIGIN]))
        .from_env()
        .unwrap()
        .build()
        .await
        .unwrap();
    routes().layer(prod.layer())
}

/// `BENCH_PROFILE=C` (or `A`, `B`) drives only that variant, for `perf record`.
fn profiled(variant: usize) -> bool {
    std::env::var("BENCH_PROFILE").map_or(true, |v| {
        v.as_bytes().first() == Some(&(b'A' + variant as u8))
    })
}

async fn compare(
    title: &str,
    addrs: [SocketAddr; 3],
    path: &'static str,
    encoding: Option<&'static str>,
) {
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    let names = [
        "A bare axum",
        "B hand-assembled tower-http",
        "C ProductionLayer",
    ];
    let mut rps: [Vec<f64>; 3] = Default::default();
    let mut p50: [Vec<f64>; 3] = Default::default();
    let mut p99: [Vec<f64>; 3] = Default::default();
    // Warm-up, then interleave A,B,C so that drift on the machine hits every variant alike.
    for addr in addrs {
        load(addr, path, encoding, conns, 1).await;
    }
    for _ in 0..rounds {
        for (i, addr) in addrs.iter().enumerate() {
            if !profiled(i) {
                continue;
            }
            let mut s = load(*addr, path, encoding, conns, secs).await;
            assert_eq!(s.failed, 0, "{} answered errors", names[i]);
            rps[i].push(s.rps());
            p50[i].push(s.percentile(0.50) as f64);
            p99[i].push(s.percentile(0.99) as f64);
        }
    }
    println!("\n### {title}\n");
    println!("| variant | req/s (median of {rounds}) | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    let mut med = [0.0; 3];
    for i in (0..3).filter(|&i| profiled(i)) {
        med[i] = median(&mut rps[i]);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            names[i],
            med[i],
            median(&mut p50[i]),
            median(&mut p99[i])
        );
    }
    println!(
        "\nC/A = {:.2}, C/B = {:.2}, B/A = {:.2}",
        med[2] / med[0],
        med[2] / med[1],
        med[1] / med[0]
    );
}

/// A server runtime whose threads log through `dispatch` (A: none, B: tracing-subscriber's stock
/// JSON formatter as a hand-assembled app would set it up, C: this crate's).
fn server_runtime(dispatch: tracing::Dispatch) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // Each runtime thread keeps its dispatcher for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap()
}

fn main() {
    // One JSON line per request (B and C) written to a file through a non-blocking writer, as in
    // production: B's through tracing-appender, C's through the crate's BatchWriter (what
    // `init_logging` uses), each to its own file.
    let log_file = |variant: &str| {
        std::env::temp_dir().join(format!(
            "http_stack_bench_{}_{variant}.log",
            std::process::id()
        ))
    };
    let log_files = [log_file("B"), log_file("C")];
    let (stock_writer, _stock_guard) =
        tracing_appender::non_blocking(std::fs::File::create(&log_files[0]).unwrap());
    let stock = tracing_subscriber::fmt()
        .json()
        .with_env_filter("info")
        .with_writer(stock_writer)
        .finish();
    let config = LogConfig {
        format: LogFormat::Json,
        filter: Some("info".into()),
    };
    let (batch_writer, _batch_guard) =
        rustforge_prod::logging::non_blocking(std::fs::File::create(&log_files[1]).unwrap());
    let ours = rustforge_prod::logging::subscriber(&config, batch_writer).unwrap();

    let runtimes = [
        server_runtime(tracing::Dispatch::none()),
        server_runtime(tracing::Dispatch::new(stock)),
        server_runtime(tracing::Dispatch::from(ours)),
    ];
    let bare = runtimes[0].block_on(serve(routes()));
    let hand = runtimes[1].block_on(serve(hand_assembled()));
    let prod = runtimes[2].block_on(async { serve(production().await).await });
    let addrs = [bare, hand, prod];

    if let Ok(secs) = std::env::var("BENCH_SERVE") {
        // Serve only, for an external load generator such as wrk.
        println!("A http://{bare}/  B http://{hand}/  C http://{prod}/");
        std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(60)));
        return;
    }
    let client = runtime();
    client.block_on(async {
        println!(
            "http_stack: {} connections, {} rounds × {} s, log files {} and {}",
            env("BENCH_CONNS", 32),
            env("BENCH_ROUNDS", 4),
            env("BENCH_SECS", 3),
            log_files[0].display(),
            log_files[1].display()
        );
        compare(
            "13-byte text, no compression (JSON log line per request in B and C)",
            addrs,
            "/",
            None,
        )
        .await;
        if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "text") {
            return;
        }
        for encoding in ["gzip", "br", "zstd"] {
            compare(
                &format!("2 KB JSON, Accept-Encoding: {encoding}"),
                addrs,
                "/json",
                Some(encoding),
            )
            .await;
        }
    });
    drop(runtimes);
    for file in log_files {
        let _ = std::fs::remove_file(file);
    }
}
