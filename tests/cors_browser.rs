//! CORS as a real browser enforces it: headless Chromium loads a page from one loopback origin
//! and fetches from servers on other origins.

mod support;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use rustforge_prod::middleware::{CorsConfig, HttpConfig, HttpStack};
use support::chromium::{REPORT, outcome, report};
use support::http::TestServer;

async fn api(cors: CorsConfig) -> TestServer {
    let mut config = HttpConfig::default();
    config.cors = cors;
    let app = Router::new()
        .route("/data", get(|| async { "data" }))
        .layer(HttpStack::new(&config).unwrap());
    TestServer::start(app).await
}

/// Each case runs `fetch(url, init)` and prints `name=OK <status> <x-request-id>` or
/// `name=BLOCKED`.
fn page(cases: &[(&str, String, &str)]) -> String {
    let calls: String = cases
        .iter()
        .map(|(name, url, init)| format!("await run('{name}', '{url}', {init});\n"))
        .collect();
    format!(
        r#"<!doctype html><html><body><pre id="out"></pre><script>
const out = document.getElementById('out');
async function run(name, url, init) {{
  try {{
    const res = await fetch(url, init);
    await res.text();
    out.textContent += name + '=OK ' + res.status + ' ' + res.headers.get('x-request-id') + '\n';
  }} catch (e) {{
    out.textContent += name + '=BLOCKED\n';
  }}
}}
(async () => {{
{calls}out.textContent += 'END\n';
  {REPORT};
}})();
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_allows_and_blocks_as_configured() {
    // The page's origin is known only once its server listens, so bind it first.
    let page_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let page_origin = format!("http://{}", page_listener.local_addr().unwrap());

    let allowed = api(CorsConfig::origins([page_origin.as_str()])).await;
    let with_header = api(CorsConfig::origins([page_origin.as_str()]).headers(["x-test"])).await;
    let credentials = api(CorsConfig::origins([page_origin.as_str()]).credentials(true)).await;
    let elsewhere = api(CorsConfig::origins(["http://other.example"])).await;

    let cases = [
        ("simple", allowed.url("/data"), "{}"),
        (
            "custom_header",
            allowed.url("/data"),
            "{headers: {'X-Test': '1'}}",
        ),
        (
            "allowed_header",
            with_header.url("/data"),
            "{headers: {'X-Test': '1'}}",
        ),
        (
            "json_post_preflight",
            allowed.url("/data"),
            "{method: 'PUT', headers: {'Content-Type': 'application/json'}}",
        ),
        (
            "credentials",
            credentials.url("/data"),
            "{credentials: 'include'}",
        ),
        (
            "credentials_not_allowed",
            allowed.url("/data"),
            "{credentials: 'include'}",
        ),
        ("other_origin", elsewhere.url("/data"), "{}"),
        // What Laravel Echo sends to /broadcasting/auth from a Laravel page (the CSRF meta tag,
        // Axios' XSRF cookie copy, the socket id): allowed by the default headers.
        (
            "echo_auth",
            allowed.url("/data"),
            "{method: 'POST', headers: {'X-CSRF-TOKEN': 't', 'X-XSRF-TOKEN': 'x', 'X-Socket-ID': '1.2', 'Content-Type': 'application/x-www-form-urlencoded'}}",
        ),
    ];
    let html = page(&cases);
    page_listener.set_nonblocking(true).unwrap();
    let (report_route, page_report) = report();
    let page_server = TestServer::from_std(
        page_listener,
        Router::new()
            .route("/", get(move || async move { Html(html) }))
            .merge(report_route),
    );

    let dom = page_report.run(page_server.url("/")).await;
    let dom = dom.as_str();
    assert!(
        dom.lines().last() == Some("END") && dom.lines().count() == cases.len() + 1,
        "the page did not run every case: {dom}"
    );

    assert!(outcome(dom, "simple").starts_with("OK 200 "), "{dom}");
    // The request id is readable from script because it is an exposed header.
    assert_ne!(
        outcome(dom, "simple"),
        "OK 200 null",
        "x-request-id not exposed: {dom}"
    );
    assert_eq!(outcome(dom, "custom_header"), "BLOCKED", "{dom}");
    assert!(
        outcome(dom, "allowed_header").starts_with("OK 200"),
        "{dom}"
    );
    assert!(
        outcome(dom, "json_post_preflight").starts_with("OK 405"),
        "{dom}"
    );
    assert!(outcome(dom, "credentials").starts_with("OK 200"), "{dom}");
    assert_eq!(outcome(dom, "credentials_not_allowed"), "BLOCKED", "{dom}");
    assert_eq!(outcome(dom, "other_origin"), "BLOCKED", "{dom}");
    // The preflight passed: the POST reached the route (which only answers GET).
    assert!(outcome(dom, "echo_auth").starts_with("OK 405"), "{dom}");
}
