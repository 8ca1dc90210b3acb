//! Real servers for the integration tests: Redis (single node and a 3-master cluster), the app
//! under test on a loopback port, captured JSON logs, an in-process S3-protocol server and a
//! Pusher-protocol WebSocket client. Nothing here mocks the crate's own backends.
#![allow(dead_code)]

pub mod apps;
pub mod chromium;
pub mod fleet;
pub mod http;
pub mod logs;
pub mod nginx;
#[cfg(feature = "broadcast")]
pub mod node;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "sqlx-postgres")]
pub mod postgres;
pub mod process;
pub mod prod;
pub mod promtool;
pub mod proxy;
#[cfg(feature = "broadcast")]
pub mod pusher;
pub mod redis;
#[cfg(feature = "storage")]
pub mod s3;
pub mod sentinel;
pub mod tls;

/// A free TCP port on 127.0.0.1 (bound, read, released; callers retry on the rare race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// Polls `ready` every 10 ms; fails the test after 10 s, naming `what` it waited for.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// [`wait_until`] for a condition that awaits (an API call): polled every 20 ms, for 10 s.
pub async fn eventually<F, Fut>(what: &str, ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, std::time::Duration::from_secs(10), ready).await;
}

/// [`eventually`], failing the test after `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: std::time::Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !ready().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The example binary `cargo test` built next to the test binaries.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: run the tests with `cargo test` (it builds examples)",
        path.display()
    );
    path
}
