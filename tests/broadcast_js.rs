//! The real clients: `pusher-js` 8 and the `pusher` server SDK (npm, `tests/js/`, lock file
//! committed) against the broadcaster over real WebSockets and HTTP.

mod support;

use support::pusher::{config, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_and_the_pusher_sdk_work_unchanged() {
    let (server, _prod) = serve(config()).await;
    let port = server.addr.port().to_string();
    support::node::run_tests("pusher.test.js", 9, 20_000, &[("BROADCAST_PORT", port)]).await;
}
