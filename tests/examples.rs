//! The two examples as a user runs them: real processes, configured by the environment, spoken
//! to over HTTP, stopped with SIGTERM.

mod support;

use std::process::Command;
use std::time::Duration;

use support::example;
use support::http::{client, get, get_text, keep_cookies};
use support::process::Running;

#[tokio::test]
async fn quickstart_serves_the_default_stack_and_stops_on_sigterm() {
    let app = Running::start("quickstart", &[]);
    let res = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert!(res.text().await.unwrap().starts_with("Hello"));

    let res = get(app.url("/api/items"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let mut json = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&res.bytes().await.unwrap()[..]),
        &mut json,
    )
    .unwrap();
    assert!(json.len() > 4096, "the items list is larger than 4 KiB");
    let items: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(items.len(), 100);
    app.terminate();
}

/// The quickstart reads the environment like README's snippet above its command: a bad value
/// stops it with a message naming the variable (it used to ignore every variable).
#[test]
fn quickstart_reads_the_environment() {
    let mut child = Command::new(example("quickstart"))
        .env_clear()
        .env("PORT", "0")
        .env("RUSTFORGE_RATE_LIMIT", "often")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A quickstart that ignores the variable starts serving instead of exiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the quickstart started with a bad RUSTFORGE_RATE_LIMIT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("RUSTFORGE_RATE_LIMIT"), "{stderr}");
    assert!(
        stderr.starts_with("quickstart: ") && !stderr.contains("ConfigError {"),
        "a sentence, not a Debug dump: {stderr}"
    );
}

#[tokio::test]
async fn full_stack_is_configured_by_the_environment() {
    let app = Running::start(
        "full_stack",
        &[
            ("RUSTFORGE_LOG_FORMAT", "json"),
            ("RUSTFORGE_CORS_ORIGINS", "http://allowed.test"),
            ("RUSTFORGE_BODY_LIMIT", "1KiB"),
            ("RUSTFORGE_REQUEST_TIMEOUT", "5s"),
            ("RUSTFORGE_SHUTDOWN_DRAIN", "3s"),
            ("RUSTFORGE_RATE_LIMIT", "6/hour"),
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "e2e-key"),
            ("PUSHER_APP_SECRET", "e2e-secret"),
        ],
    );
    let res = get(
        app.url("/api/items/7"),
        &[("origin", "http://allowed.test"), ("x-request-id", "e2e-1")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
    let line = app.wait_for_line(|l| l.contains("e2e-1"));
    let line: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(line["route"], "/api/items/{id}");
    assert_eq!(line["status"], 200);
    // Everything it printed so far is a JSON log line, the one saying where it listens too.
    let printed = app.lines_read();
    let json: Vec<serde_json::Value> = printed
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let listening = format!("full_stack listening on http://0.0.0.0:{}", app.port);
    assert!(
        json.iter().any(|l| l["message"] == listening.as_str()),
        "{printed:#?}"
    );

    let res = client()
        .post(app.url("/api/echo"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = client()
        .get(app.url("/api/items/1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Broadcasting is on: the example's authorizer signs channels for the X-User-Id user.
    let res = client()
        .post(app.url("/broadcasting/auth"))
        .header("x-user-id", "7")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("socket_id=1.2&channel_name=presence-room")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["auth"].as_str().unwrap().starts_with("e2e-key:"),
        "{body}"
    );
    assert_eq!(
        body["channel_data"],
        r#"{"user_id":"7","user_info":{"name":"User 7"}}"#
    );
    // RUSTFORGE_RATE_LIMIT=6/hour per client IP: the four requests above and two more pass.
    for _ in 0..2 {
        let res = client().get(app.url("/")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["ratelimit"], r#""global";r=0;t=600"#);
    // Health probes are never limited.
    let res = client().get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // SIGTERM: readiness turns 503 while the server still answers (the drain), then it exits.
    app.sigterm();
    let mut ready = 200;
    for _ in 0..100 {
        ready = client()
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 503, "readiness during the drain");
    assert_eq!(
        client()
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.wait_for_clean_exit();
}

/// The cached, tagged route and the session counter of the example, in process (no server at
/// all): the second read is a hit, the tag flush makes the next one a miss again.
#[tokio::test]
async fn full_stack_caches_a_tagged_route_without_any_server() {
    let app = Running::start("full_stack", &[]);
    let http = client();
    let stats = async || {
        let res = http.get(app.url("/api/stats")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json::<serde_json::Value>().await.unwrap()
    };
    let reads = async |result: &str| -> f64 {
        let text = get_text(app.url("/metrics")).await;
        let prefix = format!("rustforge_cache_reads_total{{result={result}");
        support::prod::metric_sum(&text, &prefix)
    };
    assert_eq!(
        stats().await,
        serde_json::json!({ "items": 100, "in_stock": 67 })
    );
    assert_eq!(stats().await["items"], 100);
    assert_eq!(reads("\"hit\"").await, 1.0, "the second read hits");
    let misses = reads("\"miss\"").await;
    let res = http
        .post(app.url("/api/stats/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(stats().await["in_stock"], 67);
    assert!(reads("\"miss\"").await > misses, "flushed: a miss again");

    // The session counter, with the cookie kept by hand (it is Secure: a browser would only
    // send it over HTTPS or to localhost).
    let first = http.get(app.url("/api/visits")).send().await.unwrap();
    let mut cookie = String::new();
    keep_cookies(&first, &mut cookie);
    assert_eq!(first.text().await.unwrap(), "1\n");
    let second = http
        .get(app.url("/api/visits"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    keep_cookies(&second, &mut cookie);
    assert_eq!(second.text().await.unwrap(), "2\n");
    // The reset changes state: refused without the session's CSRF token, done with it.
    let reset = |token: Option<String>| {
        let request = http
            .post(app.url("/api/visits/reset"))
            .header("cookie", &cookie);
        match token {
            Some(token) => request.header("x-xsrf-token", token),
            None => request,
        }
        .send()
    };
    let refused = reset(None).await.unwrap();
    assert_eq!(refused.status(), 419);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let token = cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("XSRF-TOKEN="))
        .unwrap_or_else(|| panic!("GET /api/visits hands out XSRF-TOKEN: {cookie}"))
        .to_owned();
    let done = reset(Some(token)).await.unwrap();
    assert_eq!(done.status(), 200);
    keep_cookies(&done, &mut cookie);
    // The reset flashed a message: shown by the next request, gone after it.
    for expected in [r#"{"status":"visits reset"}"#, r#"{"status":null}"#] {
        let res = http
            .get(app.url("/api/visits/status"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        keep_cookies(&res, &mut cookie);
        assert_eq!(res.text().await.unwrap(), expected);
    }
    let third = http
        .get(app.url("/api/visits"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(third.text().await.unwrap(), "1\n", "reset");
    // The flexible route: computed once, then served from the cache while fresh.
    let dashboard = || async {
        let res = http.get(app.url("/api/dashboard")).send().await.unwrap();
        res.json::<serde_json::Value>().await.unwrap()
    };
    let (first, again) = (dashboard().await, dashboard().await);
    assert_eq!(first["items"], 100);
    assert_eq!(first["computed_at"], again["computed_at"]);
    let res = http.get(app.url("/api/db/time")).send().await.unwrap();
    assert_eq!(res.status(), 404, "no DATABASE_URL: no database route");
    app.terminate();
}

/// With `DATABASE_URL`, the example queries PostgreSQL (a server of the test's own).
#[cfg(feature = "sqlx-postgres")]
#[tokio::test]
async fn full_stack_queries_the_database_when_configured() {
    let server = support::postgres::PgServer::start();
    let url = server.url();
    let app = Running::start("full_stack", &[("DATABASE_URL", url.as_str())]);
    let res = client().get(app.url("/api/db/time")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let now = res.text().await.unwrap();
    assert!(now.starts_with("20"), "a timestamp: {now}");
    let ready = client().get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the database check passes");
    app.terminate();
}

/// Graceful shutdown flushes telemetry: with a push interval of an hour, everything the
/// collector gets was sent by `prod.flush()` after SIGTERM. (Multi-threaded: the collector must
/// answer while this thread waits for the process to exit.)
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_flushes_otlp_metrics_and_spans_when_it_stops() {
    let collector = support::otlp::Collector::start().await;
    let endpoint = collector.endpoint();
    let app = Running::start(
        "full_stack",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
            ("OTEL_SERVICE_NAME", "full-stack-e2e"),
        ],
    );
    let res = get(app.url("/api/items/7"), &[("x-request-id", "otlp-e2e")]).await;
    assert_eq!(res.status(), 200);
    let line = app.wait_for_line(|l| l.contains("otlp-e2e"));
    let line: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert!(
        collector.metrics().is_empty(),
        "nothing pushed before shutdown"
    );
    app.terminate();

    let (resource, span) = collector
        .span("GET /api/items/{id}")
        .unwrap_or_else(|| panic!("the request span was flushed: {:?}", collector.spans()));
    assert_eq!(
        support::otlp::attribute(&resource, "service.name").as_deref(),
        Some("full-stack-e2e")
    );
    assert_eq!(support::otlp::hex(&span.span_id), line["span_id"]);
    assert_eq!(support::otlp::hex(&span.trace_id), line["trace_id"]);
    assert!(
        collector.metric("http.server.request.duration").is_some(),
        "the metrics were pushed at shutdown"
    );
}

#[test]
fn full_stack_refuses_a_bad_variable_and_names_it() {
    let output = Command::new(example("full_stack"))
        .env_clear()
        .env("RUSTFORGE_REQUEST_TIMEOUT", "whenever")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RUSTFORGE_REQUEST_TIMEOUT") && stderr.contains("whenever"),
        "{stderr}"
    );
}

#[tokio::test]
async fn chat_serves_its_page_and_pusher_js_and_publishes_to_others() {
    let app = Running::start("chat", &[]);
    let page = get_text(app.url("/")).await;
    assert!(page.contains(r#"<script src="/pusher.min.js">"#), "{page}");
    assert!(page.contains("chat-key"), "the page carries the app key");
    let js = client()
        .get(app.url("/pusher.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript");
    assert!(js.text().await.unwrap().contains("Pusher"));

    let addr = format!("127.0.0.1:{}", app.port).parse().unwrap();
    let mut listener = support::pusher::Client::connect_key(addr, "chat-key")
        .await
        .expect("handshake");
    let ok = listener.subscribe("chat", None, None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    let res = client()
        .post(app.url("/messages"))
        .json(&serde_json::json!({"from": "ann", "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let message = listener.frame().await;
    assert_eq!(message["event"], "message");
    assert_eq!(
        support::pusher::data(&message),
        serde_json::json!({"from": "ann", "text": "hi"})
    );
    app.terminate();
}
