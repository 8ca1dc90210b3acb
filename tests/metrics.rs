//! `/metrics` through real HTTP: exact counts per route/method/status, no series for unmatched
//! paths, promtool's lint, custom instruments, the active-requests gauge and the health metrics.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use rustforge_prod::ProductionLayer;
use rustforge_prod::metrics::MetricsConfig;
use support::http::{TestServer, client, get as get_with};
use tokio::sync::Notify;

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The samples named `name` whose labels include all of `labels`.
fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

async fn scrape(server: &TestServer) -> (String, Vec<Sample>) {
    let res = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

async fn app(prod: &ProductionLayer, release: Arc<Notify>) -> TestServer {
    let router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/created", post(|| async { (StatusCode::CREATED, "made") }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route(
            "/slow",
            get(move || {
                let release = release.clone();
                async move {
                    release.notified().await;
                    "done"
                }
            }),
        )
        .merge(prod.routes())
        .layer(prod.layer());
    TestServer::start(router).await
}

#[tokio::test]
async fn counts_per_route_method_and_status_are_exact() {
    let prod = ProductionLayer::builder().build().await.unwrap();
    let server = app(&prod, Arc::new(Notify::new())).await;
    for id in 1..=5 {
        client()
            .get(server.url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..3 {
        client()
            .post(server.url("/created"))
            .body("x".repeat(100))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        client().get(server.url("/fail")).send().await.unwrap();
    }
    let (_, samples) = scrape(&server).await;
    let duration = "http_server_request_duration_seconds_count";
    let users = [
        ("http_route", "/users/{id}"),
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("url_scheme", "http"),
    ];
    assert_eq!(value(&samples, duration, &users), 5.0);
    assert_eq!(
        value(
            &samples,
            duration,
            &[
                ("http_route", "/created"),
                ("http_request_method", "POST"),
                ("http_response_status_code", "201")
            ]
        ),
        3.0
    );
    let fail = [
        ("http_route", "/fail"),
        ("http_response_status_code", "500"),
        ("error_type", "500"),
    ];
    assert_eq!(value(&samples, duration, &fail), 2.0);
    assert!(
        find(
            &samples,
            duration,
            &[("http_route", "/users/{id}"), ("error_type", "200")]
        )
        .is_empty()
    );

    // Buckets: cumulative, ending in +Inf = count.
    let buckets = find(
        &samples,
        "http_server_request_duration_seconds_bucket",
        &users,
    );
    assert_eq!(buckets.len(), 15, "14 boundaries + +Inf");
    let les: Vec<&str> = buckets.iter().map(|b| b.labels["le"].as_str()).collect();
    assert_eq!(les[0], "0.005");
    assert_eq!(*les.last().unwrap(), "+Inf");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    assert_eq!(buckets.last().unwrap().value, 5.0);

    // Body sizes: 100-byte requests, counted response bytes.
    let created = [("http_route", "/created")];
    assert_eq!(
        value(
            &samples,
            "http_server_request_body_size_bytes_sum",
            &created
        ),
        300.0
    );
    assert_eq!(
        value(
            &samples,
            "http_server_response_body_size_bytes_sum",
            &created
        ),
        12.0
    );
    // The crate's own endpoints are not measured.
    assert!(find(&samples, duration, &[("http_route", "/metrics")]).is_empty());
}

#[tokio::test]
async fn unmatched_paths_add_no_series() {
    let prod = ProductionLayer::builder().build().await.unwrap();
    let server = app(&prod, Arc::new(Notify::new())).await;
    client()
        .get(server.url("/no-such-page"))
        .send()
        .await
        .unwrap();
    let series =
        |samples: &[Sample]| find(samples, "http_server_request_duration_seconds_count", &[]).len();
    let (_, before) = scrape(&server).await;
    let unmatched = find(
        &before,
        "http_server_request_duration_seconds_count",
        &[("http_response_status_code", "404")],
    );
    assert_eq!(unmatched.len(), 1);
    assert!(
        !unmatched[0].labels.contains_key("http_route"),
        "no route label: {:?}",
        unmatched[0]
    );
    for i in 0..1000 {
        let path = format!("/scan/{i}/.env?x={}", i * 7919);
        assert_eq!(
            client()
                .get(server.url(&path))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    let (_, after) = scrape(&server).await;
    assert_eq!(series(&before), series(&after));
    let count = value(
        &after,
        "http_server_request_duration_seconds_count",
        &[("http_response_status_code", "404")],
    );
    assert_eq!(count, 1001.0);
}

#[tokio::test]
async fn active_requests_rise_during_a_slow_request_and_fall_after() {
    let prod = ProductionLayer::builder().build().await.unwrap();
    let release = Arc::new(Notify::new());
    let server = app(&prod, release.clone()).await;
    let active = |samples: &[Sample]| {
        find(
            samples,
            "http_server_active_requests",
            &[("http_request_method", "GET"), ("url_scheme", "http")],
        )
        .first()
        .map_or(0.0, |s| s.value)
    };
    let slow = tokio::spawn(client().get(server.url("/slow")).send());
    // Wait (bounded) until the slow request is inside the handler.
    let mut seen = 0.0;
    for _ in 0..500 {
        seen = active(&scrape(&server).await.1);
        if seen >= 1.0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(seen, 1.0);
    release.notify_one();
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(active(&scrape(&server).await.1), 0.0);
}

#[tokio::test]
async fn custom_instruments_and_health_metrics_share_the_endpoint() {
    let prod = ProductionLayer::builder().build().await.unwrap();
    let server = app(&prod, Arc::new(Notify::new())).await;
    let meter = prod.metrics().meter("shop");
    meter
        .u64_counter("shop.orders")
        .with_description("Orders placed.")
        .build()
        .add(7, &[opentelemetry::KeyValue::new("channel", "web")]);
    client().get(server.url("/health")).send().await.unwrap();
    let (_, samples) = scrape(&server).await;
    assert_eq!(
        value(&samples, "shop_orders_total", &[("channel", "web")]),
        7.0
    );
    assert_eq!(
        value(
            &samples,
            "rustforge_health_check_status",
            &[("check", "memory")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "rustforge_health_check_duration_seconds_count",
            &[("check", "memory")]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_endpoint_can_require_a_token_and_move() {
    let mut config = MetricsConfig::default();
    config.token = Some("scrape-me".into());
    config.path = "/internal/metrics".into();
    let prod = ProductionLayer::builder()
        .metrics(config)
        .build()
        .await
        .unwrap();
    let server = app(&prod, Arc::new(Notify::new())).await;
    assert_eq!(
        client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client()
            .get(server.url("/internal/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let res = get_with(
        server.url("/internal/metrics"),
        &[("authorization", "Bearer scrape-me")],
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// The default layer plus a global rate limit, so the rate limiter's instruments exist too.
/// Rate limiting and an in-memory storage disk on: their instruments appear too.
async fn with_rate_limit() -> ProductionLayer {
    ProductionLayer::builder()
        .from_vars([
            ("RUSTFORGE_RATE_LIMIT", "100/min"),
            ("RUSTFORGE_STORAGE_DISK", "memory"),
        ])
        .unwrap()
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn promtool_accepts_the_output() {
    let prod = with_rate_limit().await;
    let server = app(&prod, Arc::new(Notify::new())).await;
    client().get(server.url("/users/1")).send().await.unwrap();
    client().get(server.url("/fail")).send().await.unwrap();
    client().get(server.url("/health")).send().await.unwrap();
    let storage = prod.storage().unwrap();
    storage.put("a.txt", "x").await.unwrap();
    assert!(storage.get("missing.txt").await.is_err());
    prod.metrics()
        .meter("shop")
        .u64_counter("shop.orders")
        .with_description("Orders placed.")
        .build()
        .add(1, &[]);
    let (text, _) = scrape(&server).await;
    support::promtool::check_metrics(&text);
}

#[tokio::test]
async fn the_endpoint_can_have_its_own_port() {
    let prod = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_METRICS_PORT", "0")])
        .unwrap()
        .build()
        .await
        .unwrap();
    let addr = prod.metrics_addr().expect("a separate metrics listener");
    let server = app(&prod, Arc::new(Notify::new())).await;
    client().get(server.url("/users/1")).send().await.unwrap();
    // The app's router no longer serves /metrics; the separate port does.
    let res = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = client()
        .get(format!("http://127.0.0.1:{}/metrics", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"http_route="/users/{id}""#), "{text}");
    // Shutdown stops it.
    prod.shutdown().trigger();
    let mut refused = false;
    for _ in 0..100 {
        let url = format!("http://127.0.0.1:{}/metrics", addr.port());
        if client().get(url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "the metrics listener closed after shutdown");
    // A port that is taken is a ConfigError naming the variable.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = ProductionLayer::builder()
        .from_vars([("RUSTFORGE_METRICS_PORT", port.as_str())])
        .unwrap()
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RUSTFORGE_METRICS_PORT"), "{err}");
}
