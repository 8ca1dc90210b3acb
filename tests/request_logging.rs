//! Request logging: captured JSON lines through a real HTTP server. Every test in this binary
//! installs its own capture, so no thread ever hits a log callsite without a subscriber.

mod support;

use rustforge_prod::middleware::HttpConfig;
use serde_json::Value;
use support::apps::{assert_error_json, header, serve};
use support::http::{client, get};
use support::logs::LogCapture;

#[tokio::test(flavor = "current_thread")]
async fn every_log_line_of_a_request_carries_its_id_and_route() {
    let (logs, _guard) = LogCapture::install();
    let (server, _) = serve(HttpConfig::default()).await;
    let res = get(server.url("/users/17"), &[("x-request-id", "trace-me-1")]).await;
    assert_eq!(res.status(), 200);
    let lines = logs.for_request("trace-me-1");
    assert_eq!(
        lines.len(),
        2,
        "the handler's line and the request line: {lines:?}"
    );
    let handler = &lines[0];
    assert_eq!(handler["message"], "in handler");
    assert_eq!(handler["user"], "17");
    let done = &lines[1];
    assert_eq!(done["message"], "request completed");
    assert_eq!(done["status"], 200);
    assert!(done["latency_us"].is_u64());
    assert_eq!(done["method"], "GET");
    assert_eq!(
        done["route"], "/users/{id}",
        "the template, not the raw path"
    );
    assert_eq!(done["level"], "INFO");

    // A generated id is in the log too.
    let res = client().get(server.url("/")).send().await.unwrap();
    let id = header(&res, "x-request-id").unwrap().to_owned();
    assert_eq!(logs.for_request(&id).len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn unmatched_paths_log_no_route() {
    let (logs, _guard) = LogCapture::install();
    let (server, _) = serve(HttpConfig::default()).await;
    let res = get(
        server.url("/no/such/path/123"),
        &[("x-request-id", "scan-1")],
    )
    .await;
    assert_eq!(res.status(), 404);
    let lines = logs.for_request("scan-1");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["route"], "");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404, "request_id": "scan-1"})
    );
}

#[tokio::test(flavor = "current_thread")]
async fn panic_answers_500_json_and_is_logged_with_the_request_id() {
    let (logs, _guard) = LogCapture::install();
    let (server, _) = serve(HttpConfig::default()).await;
    let res = get(server.url("/panic"), &[("x-request-id", "panic-1")]).await;
    assert_error_json(res, 500).await;
    let lines = logs.for_request("panic-1");
    let panic_line = lines
        .iter()
        .find(|l| l["message"] == "handler panicked")
        .unwrap_or_else(|| panic!("panic not logged: {:?}", logs.lines()));
    assert_eq!(panic_line["panic"], "boom in handler");
    assert_eq!(panic_line["level"], "ERROR");
    // The server keeps serving.
    assert_eq!(
        client().get(server.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "current_thread")]
async fn health_probes_are_not_logged() {
    let (logs, _guard) = LogCapture::install();
    let prod = rustforge_prod::ProductionLayer::builder()
        .build()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hi" }))
        .merge(prod.routes())
        .layer(prod.layer());
    let server = support::http::TestServer::start(app).await;
    for path in ["/health/live", "/health/ready", "/health"] {
        let res = get(server.url(path), &[("x-request-id", "probe-1")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["x-request-id"],
            "probe-1",
            "ids still propagate"
        );
    }
    assert!(logs.for_request("probe-1").is_empty(), "{:?}", logs.lines());
    get(server.url("/"), &[("x-request-id", "app-1")]).await;
    assert_eq!(logs.for_request("app-1").len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_incoming_traceparent_continues_in_every_log_line() {
    let (logs, _guard) = LogCapture::install();
    let (server, _) = serve(HttpConfig::default()).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let res = get(
        server.url("/users/9"),
        &[
            ("traceparent", parent.as_str()),
            ("x-request-id", "traced-1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let lines = logs.for_request("traced-1");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let span_id = lines[0]["span_id"].as_str().expect("span_id").to_owned();
    assert_eq!(span_id.len(), 16);
    assert_ne!(
        span_id, "00f067aa0ba902b7",
        "the request span is a child of the caller's span"
    );
    for line in &lines {
        assert_eq!(line["trace_id"], trace_id, "{line}");
        assert_eq!(line["span_id"], span_id.as_str(), "{line}");
        assert_eq!(line["request_id"], "traced-1");
    }

    // Without a traceparent the request starts a new trace.
    get(server.url("/"), &[("x-request-id", "fresh-1")]).await;
    let fresh = logs.for_request("fresh-1");
    let id = fresh[0]["trace_id"].as_str().expect("trace_id");
    assert_eq!(id.len(), 32);
    assert_ne!(id, trace_id);
    // A malformed traceparent is ignored, not trusted.
    get(
        server.url("/"),
        &[("x-request-id", "bad-1"), ("traceparent", "00-zz-yy-01")],
    )
    .await;
    assert_eq!(
        logs.for_request("bad-1")[0]["trace_id"]
            .as_str()
            .unwrap()
            .len(),
        32
    );
}

#[tokio::test(flavor = "current_thread")]
async fn handlers_pass_the_trace_on_to_the_services_they_call() {
    use axum::routing::get as route_get;
    use axum::{Extension, Router};
    use rustforge_prod::logging::TraceContext;
    use rustforge_prod::middleware::HttpStack;
    use support::http::TestServer;

    let (logs, _guard) = LogCapture::install();
    // The downstream service echoes the trace headers it received.
    let downstream = TestServer::start(Router::new().route(
        "/",
        route_get(|headers: http::HeaderMap| async move {
            let h = |name: &str| {
                headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            format!("{}|{}", h("traceparent"), h("tracestate"))
        }),
    ))
    .await;
    let url = downstream.url("/");
    let upstream = Router::new()
        .route(
            "/call",
            route_get(move |Extension(trace): Extension<TraceContext>| {
                let url = url.clone();
                async move {
                    let mut headers = http::HeaderMap::new();
                    trace.inject(&mut headers);
                    let res = client().get(url).headers(headers).send().await.unwrap();
                    res.text().await.unwrap()
                }
            }),
        )
        .layer(HttpStack::new(&HttpConfig::default()).unwrap());
    let upstream = TestServer::start(upstream).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = get(
        upstream.url("/call"),
        &[
            (
                "traceparent",
                format!("00-{trace_id}-00f067aa0ba902b7-01").as_str(),
            ),
            ("tracestate", "vendor=opaque"),
            ("x-request-id", "calls-out"),
        ],
    )
    .await;
    let echoed = res.text().await.unwrap();
    let span_id = logs.for_request("calls-out")[0]["span_id"]
        .as_str()
        .expect("span_id")
        .to_owned();
    // The downstream call is a child of this request's span, in the same trace.
    assert_eq!(echoed, format!("00-{trace_id}-{span_id}-01|vendor=opaque"));
}
