//! The real clients: `pusher-js` 8 and the `pusher` server SDK (npm, `tests/js/`, lock file
//! committed) against the broadcaster over real WebSockets and HTTP.

mod support;

use std::process::Command;

use support::pusher::{APP_ID, KEY, SECRET, config, serve};

const HINT: &str = "needs Node.js ≥ 20 and `npm ci` in tests/js (scripts/test.sh does both)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_and_the_pusher_sdk_work_unchanged() {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/pusher-js").is_dir(),
        "tests/js/node_modules is missing: {HINT}"
    );
    let (server, _prod) = serve(config()).await;
    let port = server.addr.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([
                "--test",
                "--test-concurrency=1",
                "--test-timeout=20000",
                "pusher.test.js",
            ])
            .current_dir(&js)
            .env("BROADCAST_PORT", &port)
            .env("PUSHER_APP_ID", APP_ID)
            .env("PUSHER_APP_KEY", KEY)
            .env("PUSHER_APP_SECRET", SECRET)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node ({e}): {HINT}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node tests failed:\n{stdout}\n{stderr}"
    );
    // Every scenario ran: none skipped, none missing.
    assert!(stdout.contains("# pass 9"), "{stdout}");
    assert!(
        stdout.contains("# fail 0") && stdout.contains("# skipped 0"),
        "{stdout}"
    );
}
