//! OTLP export (feature `otlp`): metrics pushed and request spans exported by the real
//! `opentelemetry-otlp` HTTP exporter to an OTLP/HTTP receiver on loopback, through a real
//! axum server; the spans' ids are those of the request's log lines.

mod support;

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use rustforge_prod::config::Config;
use rustforge_prod::logging::TraceContext;
use rustforge_prod::otlp::OtlpConfig;
use rustforge_prod::{Error, ProductionLayer};
use support::http::{TestServer, client, get as get_with, get_text};
use support::logs::LogCapture;
use support::otlp::{Collector, attribute, hex};

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn otlp(endpoint: String) -> OtlpConfig {
    let mut otlp = OtlpConfig::default();
    otlp.endpoint = Some(endpoint);
    // Only an explicit flush pushes metrics: the test decides when data is sent.
    otlp.metrics_interval = Duration::from_secs(3600);
    otlp.timeout = Duration::from_secs(2);
    otlp
}

async fn user(Path(id): Path<u32>) -> Result<String, StatusCode> {
    let _inner = tracing::info_span!("load_user", user = id).entered();
    tracing::info!("in handler");
    match id {
        0 => Err(StatusCode::NOT_FOUND),
        500 => Err(StatusCode::INTERNAL_SERVER_ERROR),
        id => Ok(format!("user {id}")),
    }
}

async fn serve(prod: &ProductionLayer) -> TestServer {
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route(
            "/downstream",
            get(
                |axum::Extension(trace): axum::Extension<TraceContext>| async move {
                    trace.traceparent()
                },
            ),
        )
        .merge(prod.routes())
        .layer(prod.layer());
    TestServer::start(app).await
}

async fn build(otlp_config: OtlpConfig, service: &str) -> ProductionLayer {
    let mut config = Config::default();
    config.metrics.service_name = Some(service.to_owned());
    config.otlp = otlp_config;
    prod_from(config).await
}

async fn prod_from(config: Config) -> ProductionLayer {
    ProductionLayer::builder()
        .config(config)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn http_metrics_are_pushed_on_flush() {
    let collector = Collector::start().await;
    let prod = build(otlp(collector.endpoint()), "orders-api").await;
    let server = serve(&prod).await;
    for path in ["/users/1", "/users/2", "/users/0"] {
        client().get(server.url(path)).send().await.unwrap();
    }
    assert!(
        collector.metrics().is_empty(),
        "nothing pushed before the flush"
    );

    prod.flush().await;

    let (resource, duration) = collector
        .metric("http.server.request.duration")
        .expect("the duration histogram was pushed");
    assert_eq!(
        attribute(&resource, "service.name").as_deref(),
        Some("orders-api")
    );
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(histogram)) = &duration.data else {
        panic!("a histogram: {duration:?}");
    };
    let count = |status: &str| -> u64 {
        histogram
            .data_points
            .iter()
            .filter(|p| {
                attribute(&p.attributes, "http.route").as_deref() == Some("/users/{id}")
                    && attribute(&p.attributes, "http.response.status_code").as_deref()
                        == Some(status)
            })
            .map(|p| p.count)
            .sum()
    };
    assert_eq!((count("200"), count("404")), (2, 1));
    // Pushing is an addition: /metrics still serves the same data.
    let text = get_text(server.url("/metrics")).await;
    assert!(text.contains("http_server_request_duration_seconds_count{"));
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_is_a_server_span_with_the_ids_of_its_log_lines() {
    let collector = Collector::start().await;
    let prod = build(otlp(collector.endpoint()), "users-api").await;
    let (logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;

    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let res = get_with(
        server.url("/users/7?full=1&signature=s3cr3t"),
        &[
            ("traceparent", traceparent.as_str()),
            ("x-request-id", "span-1"),
            ("user-agent", "otlp-test/1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = get_with(server.url("/users/500"), &[("x-request-id", "span-2")]).await;
    assert_eq!(res.status(), 500);
    prod.flush().await;

    let spans = collector.spans();
    let request_span = |request_id: &str| {
        let line = logs
            .for_request(request_id)
            .into_iter()
            .find(|l| l["message"] == "request completed")
            .expect("the request line");
        assert!(
            line.get("otel.name").is_none(),
            "otel.* fields are not logged: {line}"
        );
        let span_id = line["span_id"].as_str().unwrap().to_owned();
        let trace_id = line["trace_id"].as_str().unwrap().to_owned();
        let (resource, span) = spans
            .iter()
            .find(|(_, s)| hex(&s.span_id) == span_id)
            .unwrap_or_else(|| panic!("no exported span {span_id} among {spans:?}"));
        assert_eq!(hex(&span.trace_id), trace_id, "same trace as the log line");
        assert_eq!(
            attribute(resource, "service.name").as_deref(),
            Some("users-api")
        );
        span.clone()
    };

    let ok = request_span("span-1");
    assert_eq!(
        hex(&ok.trace_id),
        PARENT_TRACE,
        "continues the incoming trace"
    );
    assert_eq!(
        hex(&ok.parent_span_id),
        PARENT_SPAN,
        "child of the caller's span"
    );
    assert_eq!(ok.name, "GET /users/{id}");
    assert_eq!(ok.kind, SpanKind::Server as i32);
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/users/{id}"),
        ("http.response.status_code", "200"),
        ("url.path", "/users/7"),
        ("url.query", "full=1&signature=REDACTED"),
        ("url.scheme", "http"),
        ("server.address", "127.0.0.1"),
        ("user_agent.original", "otlp-test/1"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(
            attribute(&ok.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    assert_ne!(
        ok.status.clone().unwrap_or_default().code,
        SpanStatus::Error as i32
    );

    // The handler's own span is a child of the request span, in the same trace.
    let inner = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "load_user" && s.parent_span_id == ok.span_id)
        .expect("the handler's span, parented to the request span");
    assert_eq!(inner.trace_id, ok.trace_id);
    assert_eq!(attribute(&inner.attributes, "user").as_deref(), Some("7"));

    // A 5xx is an error span; without a traceparent the span starts a new trace (a root).
    let failed = request_span("span-2");
    assert!(failed.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        attribute(&failed.attributes, "error.type").as_deref(),
        Some("500")
    );
    assert_eq!(failed.status.unwrap().code, SpanStatus::Error as i32);
}

/// A query on `db.pool()` is a client span named `db.query`, a child of the request's span, with
/// the semantic-convention attributes and no statement text.
#[cfg(feature = "sqlx-postgres")]
#[tokio::test(flavor = "current_thread")]
async fn a_query_on_the_pool_is_a_client_span_of_the_request() {
    let pg = support::postgres::PgServer::start();
    let collector = Collector::start().await;
    let mut config = Config::from_vars([("DATABASE_URL", pg.url())]).unwrap();
    config.otlp = otlp(collector.endpoint());
    let prod = prod_from(config).await;
    let (_logs, _guard) = LogCapture::install_for(&prod);
    let db = prod.database().unwrap().clone();
    let app = Router::new()
        .route(
            "/answer",
            get(move || async move {
                let n: i32 = sqlx::query_scalar("SELECT 42 AS secret_column")
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                n.to_string()
            }),
        )
        .layer(prod.layer());
    let server = TestServer::start(app).await;
    assert_eq!(get_text(server.url("/answer")).await, "42");
    prod.flush().await;
    let (_, request) = collector.span("GET /answer").expect("the request span");
    let query = collector
        .spans()
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "db.query")
        .expect("the query's span");
    assert_eq!(
        query.parent_span_id, request.span_id,
        "a child of the request"
    );
    assert_eq!(query.trace_id, request.trace_id);
    assert_eq!(query.kind, SpanKind::Client as i32);
    for (key, value) in [
        ("db.system.name", "postgresql"),
        ("db.operation.name", "SELECT"),
    ] {
        assert_eq!(
            attribute(&query.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    assert!(
        !format!("{:?}", query.attributes).contains("secret_column"),
        "no statement text: {:?}",
        query.attributes
    );
}

#[tokio::test(flavor = "current_thread")]
async fn handlers_pass_on_the_exported_span_as_parent() {
    let collector = Collector::start().await;
    let prod = build(otlp(collector.endpoint()), "gateway").await;
    let (_logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let res = get_with(server.url("/downstream"), &[("traceparent", traceparent)]).await;
    let outgoing = res.text().await.unwrap();
    prod.flush().await;
    let (_, span) = collector.span("GET /downstream").expect("the request span");
    assert_eq!(
        outgoing,
        format!("00-{PARENT_TRACE}-{}-01", hex(&span.span_id)),
        "the downstream call's parent is the span the collector has"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_collector_holds_no_request() {
    // A collector that accepts connections and never answers: each export waits for its whole
    // timeout (10 s here).
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let mut config = otlp(endpoint);
    config.timeout = Duration::from_secs(10);
    let prod = build(config, "stuck").await;
    let (_logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;
    client().get(server.url("/users/1")).send().await.unwrap();
    // An export of metrics and spans is now stuck in the collector.
    let flushing = tokio::spawn({
        let prod = prod.clone();
        async move { prod.flush().await }
    });
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let sent = std::time::Instant::now();
        let res = client().get(server.url("/users/3")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        slowest = slowest.max(sent.elapsed());
    }
    // Every request was answered while the export still hung: none waited for it.
    assert!(
        !flushing.is_finished() && started.elapsed() < Duration::from_secs(10),
        "the export finished first; the slowest request took {slowest:?}"
    );
    println!("slowest of 20 requests during a hung export: {slowest:?}");
    tokio::time::timeout(Duration::from_secs(60), flushing)
        .await
        .expect("flush returns after the export timeout")
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_collector_is_logged_and_flush_returns() {
    // A port nobody listens on: every export is refused.
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let prod = build(otlp(dead), "lonely").await;
    let (logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;
    for _ in 0..20 {
        let res = client().get(server.url("/users/3")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // A hang guard, not a timing assertion: the export timeout is 2 s.
    tokio::time::timeout(Duration::from_secs(60), prod.flush())
        .await
        .expect("flush returns although the collector is down");
    let warned = logs
        .lines()
        .iter()
        .any(|l| l["level"] == "WARN" && l["message"] == "could not push metrics");
    assert!(warned, "the failed push is logged: {:?}", logs.lines());
}

#[tokio::test(flavor = "current_thread")]
async fn otlp_only_turns_the_prometheus_endpoint_off() {
    let collector = Collector::start().await;
    let config = Config::from_vars([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_METRICS_EXPORTER", "otlp".into()),
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".into()),
    ])
    .unwrap();
    assert!(!config.metrics.prometheus && config.otlp.metrics && !config.otlp.traces);
    let prod = prod_from(config).await;
    let (_logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;
    let res = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404, "no Prometheus endpoint");
    client().get(server.url("/users/1")).send().await.unwrap();
    prod.flush().await;
    assert!(collector.metric("http.server.request.duration").is_some());
    assert!(collector.spans().is_empty(), "traces are off");
}

#[tokio::test(flavor = "current_thread")]
async fn per_signal_endpoints_are_used_as_they_are() {
    let collector = Collector::start().await;
    // Only the per-signal variables: no base endpoint at all.
    let config = Config::from_vars([
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/v1/metrics", collector.endpoint()),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", collector.endpoint()),
        ),
    ])
    .unwrap();
    let prod = prod_from(config).await;
    let (_logs, _guard) = LogCapture::install_for(&prod);
    let server = serve(&prod).await;
    client().get(server.url("/users/4")).send().await.unwrap();
    prod.flush().await;
    assert!(collector.span("GET /users/{id}").is_some());
    assert!(collector.metric("http.server.request.duration").is_some());
}

#[test]
fn bad_otel_settings_name_the_variable() {
    let cases = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_METRICS_EXPORTER", "otlp,statsd"),
        ("OTEL_METRICS_EXPORTER", ""),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-5"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector/v1/traces"),
    ];
    for (var, value) in cases {
        let err = Config::from_vars([(var, value)]).unwrap_err();
        assert!(
            err.to_string().contains(var) && err.to_string().contains(value),
            "{var}={value}: {err}"
        );
    }
    let zero = Config::from_vars([("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).unwrap_err();
    assert!(
        zero.to_string().contains("OTEL_EXPORTER_OTLP_TIMEOUT"),
        "{zero}"
    );
    let err = Config::from_vars([("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
    // Set in code, the same mistake is found by build().
    let mut config = Config::default();
    config.otlp.endpoint = Some("ftp://collector".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let built = runtime.block_on(ProductionLayer::builder().config(config).build());
    match built {
        Err(Error::Config(err)) => assert_eq!(err.setting(), "otlp.endpoint"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn none_exports_nothing() {
    let config = Config::from_vars([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ])
    .unwrap();
    assert!(!config.metrics.prometheus && !config.otlp.metrics && !config.otlp.traces);
}
