//! The cost of the middleware stack: (A) bare axum, (B) the same routes behind a typical
//! hand-assembled tower-http stack, (C) behind `ProductionLayer` with its defaults — driven with
//! the same HTTP/1.1 keep-alive load over loopback, interleaved A,B,C for several rounds.
//!
//! ```sh
//! cargo bench --bench http_stack                 # defaults: 4 rounds × 3 s, 32 connections
//! BENCH_ROUNDS=6 BENCH_SECS=5 BENCH_CONNS=64 cargo bench --bench http_stack
//! BENCH_SERVE=120 cargo bench --bench http_stack   # only serve the variants (for wrk), 120 s
//! BENCH_ONLY=serve cargo bench --bench http_stack  # only the server comparison
//! ```
//!
//! Last, the server: the bare routes and the ProductionLayer app each under `axum::serve` and
//! under `rustforge_prod::serve`'s `Server` (timeouts, connection cap, bounded heads), with the
//! ratio serve/axum::serve.
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
use axum::serve::Listener as _;
use common::{env, load, median, runtime, serve, server_runtime};
use rustforge_prod::middleware::CorsConfig;
use rustforge_prod::server::{Server, ServerConfig};
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

/// `BENCH_PROFILE=C` (or `A`, `B`, …) drives only the variant whose name starts with it, for
/// `perf record`.
fn profiled(name: &str) -> bool {
    std::env::var("BENCH_PROFILE").map_or(true, |v| name.starts_with(v.as_str()))
}

/// Drives each variant with the same load, interleaved for several rounds; prints a table and
/// returns each variant's median req/s.
async fn compare(
    title: &str,
    variants: &[(&str, SocketAddr)],
    path: &'static str,
    encoding: Option<&'static str>,
) -> Vec<f64> {
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    let n = variants.len();
    let mut rps = vec![Vec::new(); n];
    let mut p50 = vec![Vec::new(); n];
    let mut p99 = vec![Vec::new(); n];
    // Warm-up, then interleave the variants so that drift on the machine hits every one alike.
    for (_, addr) in variants {
        load(*addr, path, encoding, conns, 1).await;
    }
    for _ in 0..rounds {
        for (i, (name, addr)) in variants.iter().enumerate() {
            if !profiled(name) {
                continue;
            }
            let mut s = load(*addr, path, encoding, conns, secs).await;
            assert_eq!(s.failed, 0, "{name} answered errors");
            rps[i].push(s.rps());
            p50[i].push(s.percentile(0.50) as f64);
            p99[i].push(s.percentile(0.99) as f64);
        }
    }
    println!("\n### {title}\n");
    println!("| variant | req/s (median of {rounds}) | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    let mut med = vec![0.0; n];
    for (i, (name, _)) in variants.iter().enumerate() {
        if !profiled(name) {
            continue;
        }
        med[i] = median(&mut rps[i]);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            med[i],
            median(&mut p50[i]),
            median(&mut p99[i])
        );
    }
    med
}

/// The three stacks compared: C/A, C/B, B/A.
async fn compare_stacks(
    title: &str,
    addrs: [SocketAddr; 3],
    path: &'static str,
    encoding: Option<&'static str>,
) {
    let names = [
        "A bare axum",
        "B hand-assembled tower-http",
        "C ProductionLayer",
    ];
    let variants: Vec<_> = names.into_iter().zip(addrs).collect();
    let med = compare(title, &variants, path, encoding).await;
    println!(
        "\nC/A = {:.2}, C/B = {:.2}, B/A = {:.2}",
        med[2] / med[0],
        med[2] / med[1],
        med[1] / med[0]
    );
}

/// The server compared: the same app under `axum::serve` and under `rustforge_prod::serve`'s
/// [`Server`] with its default limits (both on `rustforge_prod::bind`'s listener, both passing
/// the peer address on).
async fn compare_servers(pairs: [(&str, [SocketAddr; 2]); 2]) {
    for (app, [axum, ours]) in pairs {
        let variants = [("axum::serve", axum), ("rustforge_prod::serve", ours)];
        let med = compare(
            &format!("server: {app}, 13-byte text"),
            &variants,
            "/",
            None,
        )
        .await;
        println!("\nserve/axum::serve = {:.3}", med[1] / med[0]);
    }
}

/// `app` under `axum::serve`, with the peer address as `ConnectInfo`.
async fn serve_axum(app: Router) -> SocketAddr {
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `app` under the crate's [`Server`] with its default limits.
async fn serve_ours(app: Router) -> SocketAddr {
    let listener = rustforge_prod::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ServerConfig::default()).unwrap();
    tokio::spawn(async move { server.serve(listener, app, std::future::pending()).await });
    addr
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
    // The server comparison: bare routes (where the server is the largest share of the work)
    // and the ProductionLayer app, each under both servers.
    let servers = [
        (
            "bare axum routes",
            runtimes[0]
                .block_on(async { [serve_axum(routes()).await, serve_ours(routes()).await] }),
        ),
        (
            "ProductionLayer app",
            runtimes[2].block_on(async {
                [
                    serve_axum(production().await).await,
                    serve_ours(production().await).await,
                ]
            }),
        ),
    ];

    if let Ok(secs) = std::env::var("BENCH_SERVE") {
        // Serve only, for an external load generator such as wrk: the stacks A, B, C, and the
        // server pairs (bare routes under axum::serve SA / our server SO, production app PA / PO).
        let [sa, so] = servers[0].1;
        let [pa, po] = servers[1].1;
        println!(
            "A http://{bare}/  B http://{hand}/  C http://{prod}/  SA http://{sa}/  SO http://{so}/  PA http://{pa}/  PO http://{po}/"
        );
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
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if only == "serve" {
            compare_servers(servers).await;
            return;
        }
        compare_stacks(
            "13-byte text, no compression (JSON log line per request in B and C)",
            addrs,
            "/",
            None,
        )
        .await;
        if only == "text" {
            return;
        }
        for encoding in ["gzip", "br", "zstd"] {
            compare_stacks(
                &format!("2 KB JSON, Accept-Encoding: {encoding}"),
                addrs,
                "/json",
                Some(encoding),
            )
            .await;
        }
        compare_servers(servers).await;
    });
    drop(runtimes);
    for file in log_files {
        let _ = std::fs::remove_file(file);
    }
}
