//! Several servers on one real Redis: fan-out and `socket_id` exclusion across servers,
//! cluster-wide presence, a server that dies without a clean shutdown, and a Redis restart.

mod support;

use std::time::Duration;

use serde_json::json;
use support::pusher::{Client, config, data, serve_on_redis};
use support::redis::RedisServer;

const USER_A: &str = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
const USER_B: &str = r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#;

type Server = (support::http::TestServer, rustforge_prod::ProductionLayer);

/// Two servers sharing `redis` under the key prefix `prefix`.
async fn two_servers(
    redis: &RedisServer,
    config: rustforge_prod::broadcast::BroadcastConfig,
    prefix: &str,
) -> (Server, Server) {
    let a = serve_on_redis(config.clone(), &redis.url(), prefix).await;
    let b = serve_on_redis(config, &redis.url(), prefix).await;
    (a, b)
}

/// The occupied channels, cluster-wide, sorted.
async fn channel_names(broadcaster: &rustforge_prod::broadcast::Broadcaster) -> Vec<String> {
    let channels = broadcaster.channels("").await.unwrap();
    channels.into_iter().map(|(name, _)| name).collect()
}

fn fast_reaping() -> rustforge_prod::broadcast::BroadcastConfig {
    let mut settings = config();
    settings.node_timeout = Duration::from_secs(2);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_share_events_exclusion_and_presence() {
    let redis = RedisServer::start();
    let ((a, prod_a), (b, prod_b)) = two_servers(&redis, config(), "share").await;
    let mut on_a = Client::connect(a.addr).await;
    let mut on_b = Client::connect(b.addr).await;
    on_a.subscribe("news", None, None).await;
    on_b.subscribe("news", None, None).await;

    // Published on B, received on A.
    let b_api = prod_b.broadcaster().unwrap();
    assert_eq!(
        b_api
            .publish(["news"], "item", &json!({"n": 1}))
            .await
            .unwrap(),
        1
    );
    assert_eq!(on_a.frame().await["data"], r#"{"n":1}"#);
    assert_eq!(on_b.frame().await["data"], r#"{"n":1}"#);
    // Excluding a socket on the other server: A publishes "toOthers" of B's socket.
    let event =
        rustforge_prod::broadcast::Event::new(["news"], "item", "2").except(&on_b.socket_id);
    prod_a
        .broadcaster()
        .unwrap()
        .publish_event(event)
        .await
        .unwrap();
    assert_eq!(on_a.frame().await["data"], "2");
    b_api.publish(["news"], "item", &json!(3)).await.unwrap();
    assert_eq!(
        on_b.frame().await["data"],
        "3",
        "B skipped the excluded event"
    );
    assert_eq!(on_a.frame().await["data"], "3");

    // Presence: Ann on A, Bob on B — one member list everywhere.
    let f = on_a.subscribe_signed("presence-room", Some(USER_A)).await;
    assert_eq!(data(&f)["presence"]["count"], 1);
    let f = on_b.subscribe_signed("presence-room", Some(USER_B)).await;
    let p = data(&f)["presence"].clone();
    assert_eq!(p["count"], 2, "{p}");
    assert_eq!(p["hash"]["ann"], json!({"name": "Ann"}));
    let added = on_a.frame().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data(&added)["user_id"], "bob");
    for prod in [&prod_a, &prod_b] {
        let broadcaster = prod.broadcaster().unwrap();
        let info = broadcaster.channel_info("presence-room").await.unwrap();
        assert_eq!((info.subscription_count, info.user_count), (2, Some(2)));
        let ids = broadcaster.presence("presence-room").await.unwrap().ids;
        assert_eq!(ids, ["ann", "bob"]);
        assert_eq!(channel_names(broadcaster).await, ["news", "presence-room"]);
    }
    // Bob opens a second tab on A: no member_added; closing the tab on B removes nobody.
    let mut bob_on_a = Client::connect(a.addr).await;
    let f = bob_on_a
        .subscribe_signed("presence-room", Some(USER_B))
        .await;
    assert_eq!(data(&f)["presence"]["count"], 2);
    drop(on_b);
    on_a.assert_alive().await;
    drop(bob_on_a);
    let removed = on_a.frame().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed)["user_id"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_without_shutdown_loses_its_members_within_the_timeout() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (b, _prod_b) = serve_on_redis(fast_reaping(), &url, "reap").await;
    let mut on_b = Client::connect(b.addr).await;
    on_b.subscribe_signed("presence-room", Some(USER_B)).await;

    // Server A runs on its own runtime; dropping the runtime kills every task of it at once —
    // no shutdown, no cleanup — as a killed process would.
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_url = url.clone();
    let runtime_a = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (a, prod_a) = runtime.block_on(serve_on_redis(fast_reaping(), &thread_url, "reap"));
        tx.send(a.addr).unwrap();
        (runtime, a, prod_a)
    })
    .join()
    .unwrap();
    let addr_a = rx.recv().unwrap();
    let mut ann = Client::connect(addr_a).await;
    let f = ann.subscribe_signed("presence-room", Some(USER_A)).await;
    assert_eq!(data(&f)["presence"]["count"], 2);
    let added = on_b.frame().await;
    assert_eq!(data(&added)["user_id"], "ann");

    let started = std::time::Instant::now();
    let (runtime, server_a, prod_a) = runtime_a;
    std::mem::forget(server_a); // its task dies with the runtime
    std::mem::forget(prod_a);
    runtime.shutdown_background();
    // B notices A's silence and removes Ann (node timeout 2 s, heartbeats every 1/6 of it).
    let removed = on_b.frame().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(data(&removed)["user_id"], "ann");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "reaped after {waited:?}");
    drop(ann);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_servers_resubscribe_and_count_what_was_lost() {
    let mut redis = RedisServer::start();
    let ((a, _prod_a), (_b, prod_b)) = two_servers(&redis, config(), "restart").await;
    let mut on_a = Client::connect(a.addr).await;
    on_a.subscribe("feed", None, None).await;
    let b_api = prod_b.broadcaster().unwrap();
    b_api
        .publish(["feed"], "e", &json!("before"))
        .await
        .unwrap();
    assert_eq!(on_a.frame().await["data"], r#""before""#);

    redis.stop();
    b_api
        .publish(["feed"], "e", &json!("during"))
        .await
        .unwrap();
    // The publish fails against the stopped Redis and is counted as lost (waited for, bounded).
    let lost = |prod: &rustforge_prod::ProductionLayer| {
        prod.metrics()
            .render()
            .lines()
            .find(|l| l.starts_with("rustforge_broadcast_redis_events_total{outcome=\"lost\"}"))
            .map(|l| l.rsplit(' ').next().unwrap_or("0").to_owned())
            .unwrap_or_default()
    };
    let mut counted = false;
    for _ in 0..100 {
        if !matches!(lost(&prod_b).as_str(), "" | "0") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        counted,
        "the event published while Redis was down is counted as lost"
    );
    redis.restart();
    // Publish until A, resubscribed, receives (bounded): nothing is waited for by the clock.
    let mut received = None;
    for attempt in 0..100 {
        b_api.publish(["feed"], "e", &json!(attempt)).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), on_a.frame()).await {
            Ok(frame) => {
                received = Some(frame);
                break;
            }
            Err(_) => continue,
        }
    }
    let frame = received.expect("A receives B's events again after the restart");
    assert_eq!(frame["event"], "e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_removes_its_members_at_once() {
    let redis = RedisServer::start();
    let ((a, prod_a), (b, _prod_b)) = two_servers(&redis, config(), "drain").await;
    let mut ann = Client::connect(a.addr).await;
    ann.subscribe_signed("presence-room", Some(USER_A)).await;
    let mut bob = Client::connect(b.addr).await;
    bob.subscribe_signed("presence-room", Some(USER_B)).await;
    assert_eq!(data(&ann.frame().await)["user_id"], "bob");
    // The default node timeout is 30 s: a removal now comes from the shutdown, not the reaper.
    prod_a.shutdown().trigger();
    assert_eq!(ann.closed().await, Some(4200));
    let removed = bob.frame().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data(&removed)["user_id"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_during_a_redis_outage_is_retried_and_leaves_no_ghost() {
    let mut redis = RedisServer::start();
    let ((a, prod_a), (b, prod_b)) = two_servers(&redis, fast_reaping(), "ghost").await;
    let mut ann = Client::connect(a.addr).await;
    ann.subscribe_signed("presence-room", Some(USER_A)).await;
    let mut bob = Client::connect(b.addr).await;
    let f = bob.subscribe_signed("presence-room", Some(USER_B)).await;
    assert_eq!(data(&f)["presence"]["count"], 2);
    let _ = b;

    redis.stop();
    drop(ann); // A cannot record the leave now: it keeps it for a retry
    assert!(wait_for(|| gauge(&prod_a, "rustforge_broadcast_redis_pending") > 0).await);
    redis.restart();
    // A retries with its heartbeats: Ann disappears from the cluster-wide list (bounded wait).
    let broadcaster = prod_b.broadcaster().unwrap();
    let mut ids = Vec::new();
    for _ in 0..100 {
        if let Ok(presence) = broadcaster.presence("presence-room").await {
            ids = presence.ids;
            if ids == ["bob"] {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids, ["bob"], "no ghost after the outage");
    assert!(wait_for(|| gauge(&prod_a, "rustforge_broadcast_redis_pending") == 0).await);
    let info = broadcaster.channel_info("presence-room").await.unwrap();
    assert_eq!(info.subscription_count, 1);
}

/// The value of an unlabelled gauge on `/metrics`.
fn gauge(prod: &rustforge_prod::ProductionLayer, name: &str) -> u64 {
    let text = prod.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Polls `condition` for up to 10 s.
async fn wait_for(condition: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_servers_share_events_and_presence_over_sharded_pub_sub() {
    let cluster = support::redis::RedisCluster::start();
    let (a, prod_a) = serve_on_redis(config(), &cluster.url(), "sharded").await;
    let (b, prod_b) = serve_on_redis(config(), &cluster.url(), "sharded").await;
    let mut on_a = Client::connect(a.addr).await;
    let mut on_b = Client::connect(b.addr).await;
    // Several channels, so their topics land on different shards.
    let channels = ["orders", "news", "alerts", "prices", "chat-1", "chat-2"];
    for channel in channels {
        on_a.subscribe(channel, None, None).await;
    }
    for channel in channels {
        prod_b
            .broadcaster()
            .unwrap()
            .publish([channel], "e", &json!(channel))
            .await
            .unwrap();
        let f = on_a.frame().await;
        assert_eq!(
            (f["channel"].as_str(), f["data"].as_str()),
            (Some(channel), Some(format!("\"{channel}\"").as_str()))
        );
    }
    on_a.subscribe_signed("presence-room", Some(USER_A)).await;
    let f = on_b.subscribe_signed("presence-room", Some(USER_B)).await;
    assert_eq!(data(&f)["presence"]["count"], 2, "{f}");
    assert_eq!(data(&on_a.frame().await)["user_id"], "bob");
    let names = channel_names(prod_b.broadcaster().unwrap()).await;
    let mut expected: Vec<&str> = channels.to_vec();
    expected.push("presence-room");
    expected.sort();
    assert_eq!(names, expected);
    drop(on_b);
    let removed = on_a.frame().await;
    assert_eq!(data(&removed)["user_id"], "bob");
    let _ = prod_a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channels_replay_the_last_event_from_any_server() {
    let redis = RedisServer::start();
    let ((a, _prod_a), (_b, prod_b)) = two_servers(&redis, config(), "cache").await;
    let mut first = Client::connect(a.addr).await;
    first.subscribe("cache-prices", None, None).await;
    assert_eq!(first.frame().await["event"], "pusher:cache_miss");
    let event = rustforge_prod::broadcast::Event::new(["cache-prices"], "tick", r#"{"p":7}"#);
    prod_b
        .broadcaster()
        .unwrap()
        .publish_event(event)
        .await
        .unwrap();
    assert_eq!(first.frame().await["data"], r#"{"p":7}"#);
    // A later subscriber on the other server gets the event B published, from Redis.
    let mut later = Client::connect(a.addr).await;
    later.subscribe("cache-prices", None, None).await;
    let replay = later.frame().await;
    assert_eq!(
        (replay["event"].as_str(), replay["data"].as_str()),
        (Some("tick"), Some(r#"{"p":7}"#))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_process_killed_with_sigkill_loses_its_members_within_the_timeout() {
    use std::io::BufRead;

    let redis = RedisServer::start();
    let port = support::free_port();
    // Server A is the full_stack example, a real process, configured by the environment.
    let mut a = std::process::Command::new(support::example("full_stack"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("REDIS_URL", redis.url())
        .env("RUSTFORGE_REDIS_PREFIX", "killed")
        .env("PUSHER_APP_ID", support::pusher::APP_ID)
        .env("PUSHER_APP_KEY", support::pusher::KEY)
        .env("PUSHER_APP_SECRET", support::pusher::SECRET)
        .env("RUSTFORGE_BROADCAST_NODE_TIMEOUT", "2s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("full_stack example");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stdout = a.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Read every line (the pipe must never fill), and say when the server listens.
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on http://") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("full_stack started");
    let (b, _prod_b) = serve_on_redis(fast_reaping(), &redis.url(), "killed").await;

    let addr_a = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ann = Client::connect(addr_a).await;
    ann.subscribe_signed("presence-room", Some(USER_A)).await;
    let mut bob = Client::connect(b.addr).await;
    let f = bob.subscribe_signed("presence-room", Some(USER_B)).await;
    assert_eq!(data(&f)["presence"]["count"], 2, "{f}");

    a.kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    a.wait().unwrap();
    let removed = bob.frame().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(data(&removed)["user_id"], "ann");
    drop(ann);
}
