//! Laravel Echo (2.5, with pusher-js 8) and `js/pusher-recovery` in headless Chromium: the page
//! listens on a private channel through Echo; its connection is dropped and refused while events
//! are published, then accepted again; pusher-js reconnects on its own and the plugin resumes.
//! Every event reaches the Echo listener once, in order, and no `resume_failed` is heard.

mod support;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::json;
use support::chromium::{REPORT, outcome, report};
use support::proxy::CuttingProxy;
use support::pusher::{KEY, config, serve_with_routes};

/// A script file the page loads, served as JavaScript.
fn script(path: &str) -> axum::routing::MethodRouter {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{} ({e}): npm ci --prefix tests/js (scripts/test.sh runs it)",
            file.display()
        )
    });
    get(move || async move { ([("content-type", "text/javascript")], text) })
}

/// The page: Echo on the proxy's port, the plugin on Echo's pusher-js; it tells `/__seen` when
/// event 10 reached its listener, and on the `done` event it writes what its listeners heard and
/// reports it.
fn page(ws_port: u16) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><pre id="out"></pre>
<script src="/pusher.js"></script>
<script src="/echo.js"></script>
<script type="module">
import {{ enableRecovery }} from "/pusher-recovery.js";
const out = document.getElementById("out");
const EchoClass = Echo.default ?? Echo;
const echo = new EchoClass({{
  broadcaster: "pusher",
  key: "{KEY}",
  cluster: "mt1",
  wsHost: "127.0.0.1",
  wsPort: {ws_port},
  forceTLS: false,
  enabledTransports: ["ws"],
  authEndpoint: "/broadcasting/auth",
  auth: {{ headers: {{ "X-User-Id": "ann" }} }},
}});
enableRecovery(echo.connector.pusher);
const got = [], failures = [], states = [];
echo.connector.pusher.connection.bind("state_change", (s) => states.push(s.current));
echo.private("recovery")
  .listen(".n", (e) => {{
    got.push(e.n);
    if (e.n === 10) fetch("/__seen", {{ method: "POST" }});
  }})
  .listen(".pusher:resume_failed", (e) => failures.push(e.reason))
  .listen(".done", () => {{
    out.textContent = `got=${{got.join(",")}}\nfailures=${{failures.join(",")}}\nstates=${{states.join(",")}}\n`;
    {REPORT};
  }});
</script>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_the_plugin_handles_every_missed_event_once() {
    let (report_route, page_report) = report();
    // The page needs the proxy's port; the proxy needs the server's: the page is served from a
    // cell filled once both are known.
    let page_html = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let html = page_html.clone();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<()>();
    let routes = Router::new()
        .route(
            "/",
            get(move || async move { Html(html.get().cloned().unwrap_or_default()) }),
        )
        .route(
            "/pusher.js",
            script("tests/js/node_modules/pusher-js/dist/web/pusher.js"),
        )
        .route(
            "/echo.js",
            script("tests/js/node_modules/laravel-echo/dist/echo.iife.js"),
        )
        .route("/pusher-recovery.js", script("js/pusher-recovery/index.js"))
        .route(
            "/__seen",
            axum::routing::post(move || async move {
                let _ = seen_tx.send(());
            }),
        )
        .merge(report_route);
    let (server, prod) = serve_with_routes(config(), routes).await;
    let proxy = CuttingProxy::start(server.addr.port()).await;
    page_html.set(page(proxy.port())).unwrap();
    let broadcaster = prod.broadcaster().unwrap().clone();
    let subscribed = |count: usize| {
        let broadcaster = broadcaster.clone();
        move || {
            let broadcaster = broadcaster.clone();
            async move {
                let info = broadcaster.channel_info("private-recovery").await.unwrap();
                info.subscription_count == count
            }
        }
    };
    let publish = |n: u32| {
        let broadcaster = broadcaster.clone();
        async move {
            broadcaster
                .publish(["private-recovery"], "n", &json!({ "n": n }))
                .await
                .unwrap();
        }
    };

    let browser = tokio::spawn(page_report.run(server.url("/")));
    support::eventually("Echo to subscribe", subscribed(1)).await;
    for n in 1..=10 {
        publish(n).await;
    }
    // The server counting the subscription does not mean the page has its
    // `subscription_succeeded` and events yet: cut only once event 10 reached the listener (a
    // page cut before that never subscribed, and rightly resumes from nothing; seen in CI).
    tokio::time::timeout(std::time::Duration::from_secs(30), seen.recv())
        .await
        .expect("the page heard event 10 within 30 s")
        .expect("the /__seen route is alive");
    // Offline: the connection dropped, new ones refused, while 30 events are published.
    proxy.cut();
    support::eventually("the server to see the drop", subscribed(0)).await;
    for n in 11..=40 {
        publish(n).await;
    }
    proxy.restore().await;
    // Back: pusher-js reconnects on its own schedule and the plugin resumes; 10 more are
    // published the moment the channel is subscribed again, during the replay.
    support::eventually_within(
        "Echo to subscribe again",
        std::time::Duration::from_secs(45),
        subscribed(1),
    )
    .await;
    for n in 41..=50 {
        publish(n).await;
    }
    broadcaster
        .publish(["private-recovery"], "done", &json!({}))
        .await
        .unwrap();

    let results = browser.await.unwrap();
    let expected: Vec<String> = (1..=50).map(|n| n.to_string()).collect();
    assert_eq!(
        outcome(&results, "got"),
        expected.join(","),
        "every event once, in order:\n{results}"
    );
    assert_eq!(outcome(&results, "failures"), "", "{results}");
    assert!(
        outcome(&results, "states").contains("connecting"),
        "the page went offline and back: {results}"
    );
}
