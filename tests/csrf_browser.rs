//! The CSRF layer as a real browser meets it: headless Chromium loads a page from the app's
//! origin that uses axios (which sends the `XSRF-TOKEN` cookie back by itself), and a page on
//! another origin of the same site — where `SameSite=Lax` still sends the session cookie, so
//! only the token stops the forged request.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use rustforge_prod::session::{self, Session};
use support::chromium::{REPORT, outcome, report};
use support::http::TestServer;
use support::prod::from_vars;

/// What the app saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    origin: Option<String>,
    session_cookie: bool,
    xsrf_header: bool,
    status: u16,
}

impl Seen {
    fn of(req: &Request) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Self {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            origin: header("origin"),
            session_cookie: header("cookie").is_some_and(|c| c.contains("__Host-session=")),
            xsrf_header: header("x-xsrf-token").is_some(),
            status: 0,
        }
    }
}

async fn visits(session: Session) -> Result<String, Response> {
    let n: u64 = session
        .get("visits")
        .await
        .map_err(session::unavailable)?
        .unwrap_or(0);
    session
        .insert("visits", n + 1)
        .await
        .map_err(session::unavailable)?;
    Ok((n + 1).to_string())
}

async fn reset(session: Session) -> Result<&'static str, Response> {
    session
        .remove::<u64>("visits")
        .await
        .map_err(session::unavailable)?;
    Ok("reset")
}

/// The victim's page: visits, a token-less fetch, the attacker's frame, then axios' reset.
fn victim_page(attack: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out"></pre>
<script src="/axios.min.js"></script><script>
const out = document.getElementById('out');
const log = (name, value) => {{ out.textContent += name + '=' + value + '\n'; }};
(async () => {{
  try {{
    log('visit1', (await axios.get('/api/visits')).data);
    log('visit2', (await axios.get('/api/visits')).data);
    const plain = await fetch('/api/visits/reset', {{ method: 'POST' }});
    log('fetch_without_token', plain.status);
    await new Promise((resolve) => {{
      addEventListener('message', resolve, {{ once: true }});
      const frame = document.createElement('iframe');
      frame.src = '{attack}';
      document.body.appendChild(frame);
    }});
    log('visit3', (await axios.get('/api/visits')).data);
    log('axios_reset', (await axios.post('/api/visits/reset')).status);
    log('visit_after_reset', (await axios.get('/api/visits')).data);
  }} catch (e) {{
    log('error', e);
  }}
  out.textContent += 'END\n';
  {REPORT};
}})();
</script></body></html>"#
    )
}

/// The attacker's page: what a forged form post and a webhook-like call look like from a
/// script that cannot read the victim's cookies (`no-cors`, credentials included).
fn attack_page(app: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
(async () => {{
  const form = {{ method: 'POST', mode: 'no-cors', credentials: 'include',
    headers: {{ 'Content-Type': 'application/x-www-form-urlencoded' }}, body: '_token=forged' }};
  await fetch('{app}/api/visits/reset', form).catch(() => {{}});
  await fetch('{app}/hooks/ping', form).catch(() => {{}});
  parent.postMessage('done', '*');
}})();
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_axios_passes_and_another_origin_is_refused() {
    // Both pages are on `localhost`: one site, two origins (ports), so the browser sends the
    // session cookie (SameSite=Lax, Secure: localhost counts as a secure origin) with the
    // attacker's request too.
    let app_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let attacker_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_origin = format!(
        "http://localhost:{}",
        app_listener.local_addr().unwrap().port()
    );
    let attacker_origin = format!(
        "http://localhost:{}",
        attacker_listener.local_addr().unwrap().port()
    );

    let prod = from_vars(&[]).await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        move |req: Request, next: Next| {
            let seen = seen.clone();
            async move {
                let mut entry = Seen::of(&req);
                let res = next.run(req).await;
                entry.status = res.status().as_u16();
                seen.lock().unwrap().push(entry);
                res
            }
        }
    };
    let axios = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/js/node_modules/axios/dist/axios.min.js"
    ))
    .expect("axios from tests/js (npm ci --prefix tests/js, which scripts/test.sh runs)");
    let page = victim_page(&format!("{attacker_origin}/attack"));
    let (report_route, page_report) = report();
    let app = Router::new()
        .route("/api/visits", get(visits))
        .route("/api/visits/reset", post(reset))
        .route("/hooks/ping", post(|| async { "pong" }))
        .layer(prod.csrf_layer().exempt("/hooks"))
        .layer(prod.session_layer())
        .route("/", get(move || async move { Html(page) }))
        .merge(report_route)
        .route(
            "/axios.min.js",
            get(move || async move { ([("content-type", "text/javascript")], axios) }),
        )
        .merge(prod.routes())
        .layer(prod.layer())
        .layer(middleware::from_fn(record));
    app_listener.set_nonblocking(true).unwrap();
    let _app = TestServer::from_std(app_listener, app);
    let attack = attack_page(&app_origin);
    attacker_listener.set_nonblocking(true).unwrap();
    let _attacker = TestServer::from_std(
        attacker_listener,
        Router::new().route("/attack", get(move || async move { Html(attack) })),
    );

    let results = page_report.run(format!("{app_origin}/")).await;
    let results = results.as_str();
    assert!(
        results.ends_with("END\n"),
        "the page did not finish: {results}"
    );
    assert!(!results.contains("error="), "{results}");
    assert_eq!(outcome(results, "visit1"), "1");
    assert_eq!(outcome(results, "visit2"), "2");
    // The page's own fetch without the token: refused, same origin or not.
    assert_eq!(outcome(results, "fetch_without_token"), "419");
    // The attacker's forged reset did nothing...
    assert_eq!(outcome(results, "visit3"), "3", "{results}");
    // ...while axios, sending the cookie's token back by itself, resets.
    assert_eq!(outcome(results, "axios_reset"), "200");
    assert_eq!(outcome(results, "visit_after_reset"), "1");

    let seen = seen.lock().unwrap().clone();
    let from_attacker = |path: &str| {
        seen.iter()
            .find(|s| s.path == path && s.origin.as_deref() == Some(attacker_origin.as_str()))
            .unwrap_or_else(|| panic!("no request to {path} from the attacker's page: {seen:#?}"))
            .clone()
    };
    let forged = from_attacker("/api/visits/reset");
    assert!(
        forged.session_cookie,
        "the browser sent the session cookie with the forged request (same site), so only the \
         token stopped it: {forged:?}"
    );
    assert_eq!(forged.status, 419, "{forged:?}");
    let hook = from_attacker("/hooks/ping");
    assert_eq!(hook.status, 200, "an exempt route needs no token: {hook:?}");
    let axios_reset = seen
        .iter()
        .find(|s| s.method == "POST" && s.path == "/api/visits/reset" && s.status == 200)
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(
        axios_reset.xsrf_header,
        "axios sent X-XSRF-TOKEN: {axios_reset:?}"
    );
}
