//! The cost of HTTP metrics: (A) bare axum, (P) axum-prometheus, (M) this crate's
//! `HttpMetricsLayer` (duration histogram, active-requests gauge, both body-size histograms),
//! interleaved A,P,M for several rounds; then the time to render `/metrics` with 100 routes ×
//! 5 statuses recorded.
//!
//! ```sh
//! cargo bench --bench metrics      # 4 rounds × 3 s, 32 connections
//! ```

mod common;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use common::{env, load, median, runtime, serve};
use rustforge_prod::metrics::{HttpMetrics, HttpMetricsLayer, Metrics, MetricsConfig, SCOPE};
use tower::ServiceExt;

fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
}

fn ours(metrics: &Metrics) -> HttpMetricsLayer {
    HttpMetricsLayer::new(HttpMetrics::new(&metrics.meter(SCOPE), &[]))
}

async fn throughput() {
    let (rounds, secs, conns) = (
        env("BENCH_ROUNDS", 4),
        env("BENCH_SECS", 3),
        env("BENCH_CONNS", 32),
    );
    let (prometheus_layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let metrics = Metrics::new(&MetricsConfig::default()).unwrap();
    let addrs = [
        serve(routes()).await,
        serve(routes().layer(prometheus_layer)).await,
        serve(routes().layer(ours(&metrics))).await,
    ];
    let names = [
        "A bare axum",
        "P axum-prometheus 0.10",
        "M rustforge HttpMetricsLayer",
    ];
    let mut rps: [Vec<f64>; 3] = Default::default();
    let mut p99: [Vec<f64>; 3] = Default::default();
    for addr in addrs {
        load(addr, "/users/7", None, conns, 1).await;
    }
    for _ in 0..rounds {
        for (i, addr) in addrs.iter().enumerate() {
            let mut s = load(*addr, "/users/7", None, conns, secs).await;
            assert_eq!(s.failed, 0);
            rps[i].push(s.rps());
            p99[i].push(f64::from(s.percentile(0.99)));
        }
    }
    println!("\n### GET /users/{{id}} ({conns} connections, {rounds} rounds × {secs} s)\n");
    println!("| variant | req/s (median) | p99 µs |");
    println!("|---|---:|---:|");
    let mut med = [0.0; 3];
    for i in 0..3 {
        med[i] = median(&mut rps[i]);
        println!(
            "| {} | {:.0} | {:.0} |",
            names[i],
            med[i],
            median(&mut p99[i])
        );
    }
    println!(
        "\nM/A = {:.2}, P/A = {:.2}, M/P = {:.2}",
        med[2] / med[0],
        med[1] / med[0],
        med[2] / med[1]
    );
}

async fn render_time() {
    let metrics = Metrics::new(&MetricsConfig::default()).unwrap();
    let mut app = Router::new();
    for route in 0..100 {
        app = app.route(
            &format!("/r{route}/{{status}}"),
            get(|Path(status): Path<u16>| async move { StatusCode::from_u16(status).unwrap() }),
        );
    }
    let app = app.layer(ours(&metrics));
    for route in 0..100 {
        for status in [200, 201, 404, 429, 500] {
            let request = Request::get(format!("/r{route}/{status}"))
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
    }
    // Interleaved: the whole render; its first half alone (opentelemetry-prometheus collecting
    // the OpenTelemetry data into Prometheus families); and the baseline, the same families
    // written by the `prometheus` crate's encoder (what `render` did before).
    let (mut render, mut collect, mut baseline) = (vec![], vec![], vec![]);
    let mut size = 0;
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1000.0;
    for _ in 0..20 {
        let start = Instant::now();
        size = metrics.render().len();
        render.push(ms(start));
        let start = Instant::now();
        let families = metrics.registry().gather();
        collect.push(ms(start));
        let mut text = String::with_capacity(size);
        prometheus::TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .unwrap();
        baseline.push(ms(start));
        assert_eq!(text.len(), size, "the same text");
    }
    let (render, collect, baseline) = (
        median(&mut render),
        median(&mut collect),
        median(&mut baseline),
    );
    println!("\n### Rendering /metrics with 100 routes × 5 statuses (medians of 20)\n");
    println!("{size} bytes\n");
    println!("| step | ms |\n|---|---:|");
    println!("| collect (opentelemetry-prometheus `gather`) | {collect:.2} |");
    println!("| render = collect + our text writer | {render:.2} |");
    println!("| baseline = collect + `prometheus::TextEncoder` | {baseline:.2} |");
    println!(
        "\nwriting: ours {:.2} ms, TextEncoder {:.2} ms; render/baseline = {:.2}",
        render - collect,
        baseline - collect,
        render / baseline
    );
}

fn main() {
    let runtime = runtime();
    runtime.block_on(async {
        throughput().await;
        render_time().await;
    });
}
