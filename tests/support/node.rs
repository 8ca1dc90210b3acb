//! The JavaScript tests of `tests/js` (pusher-js, the pusher server SDK, js/pusher-recovery),
//! run with Node's own test runner against servers the Rust test started.

use std::process::Command;

const HINT: &str = "needs Node.js ≥ 20 and `npm ci` in tests/js (scripts/test.sh does both)";

/// Runs `file` of `tests/js` with `node --test` (one test at a time, each within `timeout_ms`)
/// and the app's credentials plus `env` in its environment; fails the test with Node's output
/// unless exactly `tests` tests ran and all passed.
pub async fn run_tests(file: &str, tests: usize, timeout_ms: u32, env: &[(&str, String)]) {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/pusher-js").is_dir(),
        "tests/js/node_modules is missing: {HINT}"
    );
    let mut command = Command::new("node");
    command
        .args([
            "--test",
            "--test-concurrency=1",
            &format!("--test-timeout={timeout_ms}"),
            file,
        ])
        .current_dir(&js)
        .env("PUSHER_APP_ID", super::pusher::APP_ID)
        .env("PUSHER_APP_KEY", super::pusher::KEY)
        .env("PUSHER_APP_SECRET", super::pusher::SECRET)
        .envs(env.iter().map(|(k, v)| (k, v)));
    let output = tokio::task::spawn_blocking(move || {
        command
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
    assert!(stdout.contains(&format!("# pass {tests}\n")), "{stdout}");
    assert!(
        stdout.contains("# fail 0") && stdout.contains("# skipped 0"),
        "{stdout}"
    );
}
