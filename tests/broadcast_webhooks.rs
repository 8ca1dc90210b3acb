//! Webhooks to a real HTTP receiver, checked with the `pusher` SDK's `webhook(req).isValid()`:
//! on one server, and cluster-wide on two servers sharing Redis.

mod support;

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use rustforge_prod::broadcast::{AppConfig, BroadcastConfig};
use rustforge_prod::redis::{RedisConfig, RedisHandle};
use serde_json::{Value, json};
use support::http::TestServer;
use support::pusher::{APP_ID, Client, KEY, SECRET, serve, serve_on_redis};
use support::redis::RedisServer;
use tokio::sync::mpsc;

const USER_A: &str = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;

/// Polls the `reaped` fleet's node set — (server, last heartbeat in ms) — until `done` says so.
async fn wait_for_heartbeats(
    redis: &RedisHandle,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let flat: Vec<String> = redis
            .query(
                redis::cmd("ZRANGE")
                    .arg("{reaped:bc}:nodes")
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await
            .unwrap();
        let beats: Vec<(String, String)> = flat
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        if done(&beats) {
            return beats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeats: {beats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A webhook receiver: every request's headers and raw body.
async fn receiver() -> (TestServer, mpsc::UnboundedReceiver<(HeaderMap, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(tx): State<mpsc::UnboundedSender<(HeaderMap, String)>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let _ = tx.send((headers, String::from_utf8_lossy(&body).into_owned()));
                    "ok"
                },
            ),
        )
        .with_state(tx);
    (TestServer::start(app).await, rx)
}

/// Validates a request with the pusher SDK and returns its events.
fn validated_events(headers: &HeaderMap, body: &str) -> Vec<Value> {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/pusher").is_dir(),
        "tests/js/node_modules is missing: run `npm ci` in tests/js (scripts/test.sh does)"
    );
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_str().unwrap().to_owned())))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        json!({ "headers": headers, "body": body }).to_string(),
    )
    .unwrap();
    let output = Command::new("node")
        .arg("webhook-check.js")
        .arg(file.path())
        .current_dir(&js)
        .env("PUSHER_APP_ID", APP_ID)
        .env("PUSHER_APP_KEY", KEY)
        .env("PUSHER_APP_SECRET", SECRET)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_ne!(
        stdout.trim(),
        "invalid",
        "the SDK refused the signature of {body}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Collects validated events until `count` have arrived (bounded: 10 s).
async fn events(rx: &mut mpsc::UnboundedReceiver<(HeaderMap, String)>, count: usize) -> Vec<Value> {
    let mut all = Vec::new();
    while all.len() < count {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("webhooks within 10 s")
            .unwrap();
        assert_eq!(headers["x-pusher-key"], KEY);
        all.extend(validated_events(&headers, &body));
    }
    all
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["name"].as_str().unwrap(),
                e["channel"].as_str().unwrap()
            )
        })
        .collect()
}

fn with_webhooks(url: &str) -> BroadcastConfig {
    BroadcastConfig::default().app(AppConfig::new(APP_ID, KEY, SECRET).webhook_url(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_sends_signed_webhooks_the_sdk_accepts() {
    let (hooks, mut rx) = receiver().await;
    let (server, _prod) = serve(with_webhooks(&hooks.url("/hook"))).await;
    let mut a = Client::connect(server.addr).await;
    a.subscribe("orders", None, None).await;
    assert_eq!(
        names(&events(&mut rx, 1).await),
        ["channel_occupied orders"]
    );

    a.subscribe_signed("presence-room", Some(USER_A)).await;
    let got = events(&mut rx, 2).await;
    assert_eq!(
        names(&got),
        [
            "channel_occupied presence-room",
            "member_added presence-room"
        ]
    );
    assert_eq!(got[1]["user_id"], "ann");

    a.send(json!({"event": "client-typing", "channel": "presence-room", "data": {"who": "ann"}}))
        .await;
    let got = events(&mut rx, 1).await;
    assert_eq!(got[0]["name"], "client_event");
    assert_eq!(got[0]["event"], "client-typing");
    assert_eq!(got[0]["data"], r#"{"who":"ann"}"#);
    assert_eq!(got[0]["socket_id"], a.socket_id.as_str());
    assert_eq!(got[0]["user_id"], "ann");

    a.subscribe("cache-prices", None, None).await;
    let got = events(&mut rx, 2).await;
    assert_eq!(
        names(&got),
        ["channel_occupied cache-prices", "cache_miss cache-prices"]
    );

    drop(a);
    let mut got = names(&events(&mut rx, 4).await);
    got.sort();
    assert_eq!(
        got,
        [
            "channel_vacated cache-prices",
            "channel_vacated orders",
            "channel_vacated presence-room",
            "member_removed presence-room",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_occupied_and_vacated_are_cluster_wide() {
    let redis = RedisServer::start();
    let (hooks, mut rx) = receiver().await;
    let config = with_webhooks(&hooks.url("/hook"));
    let (a, _prod_a) = serve_on_redis(config.clone(), &redis.url(), "hooks").await;
    let (b, _prod_b) = serve_on_redis(config, &redis.url(), "hooks").await;
    let mut on_a = Client::connect(a.addr).await;
    let mut on_b = Client::connect(b.addr).await;
    on_a.subscribe("orders", None, None).await;
    on_b.subscribe("orders", None, None).await; // second subscriber anywhere: no webhook
    drop(on_a); // one left on B: not vacated
    on_b.assert_alive().await;
    drop(on_b);
    // Markers from both servers: each server's webhooks go out in order, so once both markers
    // are in, every earlier webhook is too — duplicates included, if there were any.
    let mut marker_a = Client::connect(a.addr).await;
    marker_a.subscribe("marker-a", None, None).await;
    let mut marker_b = Client::connect(b.addr).await;
    marker_b.subscribe("marker-b", None, None).await;
    let mut got = Vec::new();
    while !(got.contains(&"channel_occupied marker-a".to_owned())
        && got.contains(&"channel_occupied marker-b".to_owned()))
    {
        got.extend(names(&events(&mut rx, 1).await));
    }
    got.sort();
    assert_eq!(
        got,
        [
            "channel_occupied marker-a",
            "channel_occupied marker-b",
            "channel_occupied orders",
            "channel_vacated orders",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_a_dead_server_sends_its_webhooks_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (hooks, mut rx) = receiver().await;
    let mut config = with_webhooks(&hooks.url("/hook"));
    config.node_timeout = std::time::Duration::from_secs(2);
    // Two survivors, both reaping.
    let (b, _prod_b) = serve_on_redis(config.clone(), &url, "reaped").await;
    let (c, _prod_c) = serve_on_redis(config.clone(), &url, "reaped").await;
    // Server A on its own runtime, which is dropped: no shutdown, as a killed process.
    let thread_url = url.clone();
    let thread_config = config.clone();
    let (runtime, server_a, prod_a) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (a, prod_a) = runtime.block_on(serve_on_redis(thread_config, &thread_url, "reaped"));
        (runtime, a, prod_a)
    })
    .join()
    .unwrap();
    let mut ann = Client::connect(server_a.addr).await;
    ann.subscribe_signed("presence-room", Some(USER_A)).await;
    let mut got = names(&events(&mut rx, 2).await);
    got.sort();
    assert_eq!(
        got,
        [
            "channel_occupied presence-room",
            "member_added presence-room"
        ]
    );
    std::mem::forget(server_a);
    std::mem::forget(prod_a);
    runtime.shutdown_background();
    // B and C both find A dead; the removal is announced by whichever reaped it, once.
    let mut got = names(&events(&mut rx, 2).await);
    // A reap that could still announce it again has finished once A is out of the node set and
    // each survivor has heartbeat since (a server's loop finishes its reaps before it beats).
    let redis_handle = RedisHandle::connect(&RedisConfig::new(&url)).unwrap();
    let at_removal = wait_for_heartbeats(&redis_handle, |beats| beats.len() == 2).await;
    wait_for_heartbeats(&redis_handle, |beats| {
        beats
            .iter()
            .all(|beat| at_removal.iter().all(|before| before != beat))
    })
    .await;
    // Markers from both survivors, queued after anything such a reap sent: once both are in,
    // any duplicate would be too.
    let mut marker_b = Client::connect(b.addr).await;
    marker_b.subscribe("marker-b", None, None).await;
    let mut marker_c = Client::connect(c.addr).await;
    marker_c.subscribe("marker-c", None, None).await;
    while !(got.contains(&"channel_occupied marker-b".to_owned())
        && got.contains(&"channel_occupied marker-c".to_owned()))
    {
        got.extend(names(&events(&mut rx, 1).await));
    }
    got.sort();
    assert_eq!(
        got,
        [
            "channel_occupied marker-b",
            "channel_occupied marker-c",
            "channel_vacated presence-room",
            "member_removed presence-room",
        ]
    );
    drop(ann);
}
