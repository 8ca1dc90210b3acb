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

/// Reads events `e` numbered 1..=`n` from `client` (each within 30 s): exactly those, in
/// order, and nothing more within a second (no duplicate).
async fn receives_once_in_order(client: &mut Client, n: u64) {
    let mut received = Vec::new();
    while received.len() < n as usize {
        let frame = tokio::time::timeout(Duration::from_secs(30), client.frame())
            .await
            .unwrap_or_else(|_| panic!("the client got only {received:?} of 1..={n}"));
        assert_eq!(frame["event"], "e", "{frame}");
        received.push(frame["data"].as_str().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(received, (1..=n).collect::<Vec<u64>>());
    let more = tokio::time::timeout(Duration::from_secs(1), client.frame()).await;
    assert!(more.is_err(), "a duplicate: {more:?}");
}

/// The sum of the `rustforge_broadcast_redis_events_total` samples of `outcome` on `prod`.
fn bus_events(prod: &rustforge_prod::ProductionLayer, outcome: &str) -> u64 {
    let prefix = format!("rustforge_broadcast_redis_events_total{{outcome=\"{outcome}\"}}");
    prod.metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Redis killed and started again empty while B publishes: nothing B published is lost. The
/// events B could not publish are held and published in order once Redis is back — and A, the
/// receiver, reconnects *after* B did (its connections go through a proxy that goes silent, so
/// A finds out only by its PING timeout): the events B published before A had subscribed again
/// reach A from the recovery log. A's client gets every event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_during_a_redis_restart_reach_a_server_that_reconnects_later() {
    published_during_a_restart_reach_a_late_server("feed").await;
}

/// The same on a private channel, whose events go through the fleet's history script (which
/// Redis, restarted empty, no longer has).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoverable_events_published_during_a_redis_restart_reach_a_late_server() {
    published_during_a_restart_reach_a_late_server("private-feed").await;
}

async fn published_during_a_restart_reach_a_late_server(channel: &str) {
    let mut redis = RedisServer::start();
    let proxy = support::proxy::StallingProxy::start(redis.port()).await;
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.port());
    let (a, prod_a) = serve_on_redis(config(), &via_proxy, "restart").await;
    let (_b, prod_b) = serve_on_redis(config(), &redis.url(), "restart").await;
    let mut on_a = Client::connect(a.addr).await;
    on_a.subscribe_signed(channel, None).await;
    let b_api = prod_b.broadcaster().unwrap();
    b_api.publish([channel], "e", &json!(0)).await.unwrap();
    assert_eq!(on_a.frame().await["data"], "0");

    redis.stop();
    proxy.stall();
    for n in 1..=20 {
        b_api.publish([channel], "e", &json!(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.restart();
    for n in 21..=40 {
        b_api.publish([channel], "e", &json!(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receives_once_in_order(&mut on_a, 40).await;
    assert_eq!(bus_events(&prod_b, "lost"), 0);
    assert_eq!(bus_events(&prod_a, "missed"), 0);
    let reconnects =
        prod_a.metrics().render().lines().any(|l| {
            l.starts_with("rustforge_broadcast_redis_reconnects_total") && !l.ends_with(" 0")
        });
    assert!(reconnects, "A's subscriber reconnected");
}

/// On a Redis Cluster: every node frozen (SIGSTOP) for 2 s while B publishes; B holds the events
/// it cannot publish (sharded `SPUBLISH` times out) and publishes them in order once the nodes
/// answer. A's client gets every event exactly once, in order; none is counted lost or missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_frozen_cluster_events_are_held_and_arrive_once_in_order() {
    use rustix::process::Signal;
    let cluster = support::redis::RedisCluster::start();
    let (a, prod_a) = serve_on_redis(config(), &cluster.url(), "frozen").await;
    let (_b, prod_b) = serve_on_redis(config(), &cluster.url(), "frozen").await;
    let mut on_a = Client::connect(a.addr).await;
    on_a.subscribe("feed", None, None).await;
    let b_api = prod_b.broadcaster().unwrap();
    b_api.publish(["feed"], "e", &json!(0)).await.unwrap();
    assert_eq!(on_a.frame().await["data"], "0");

    cluster.signal(Signal::STOP);
    for n in 1..=20 {
        b_api.publish(["feed"], "e", &json!(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = prod_b.metrics().render();
    cluster.signal(Signal::CONT);
    for n in 21..=40 {
        b_api.publish(["feed"], "e", &json!(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receives_once_in_order(&mut on_a, 40).await;
    // The freeze was met: B held events while the cluster did not answer.
    let held = held
        .lines()
        .find(|l| l.starts_with("rustforge_broadcast_redis_held"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(held.is_some_and(|n| n > 0.0), "B held nothing: {held:?}");
    assert_eq!(bus_events(&prod_b, "lost"), 0);
    assert_eq!(bus_events(&prod_a, "missed"), 0);
}

/// On `redis+sentinel://`: the primary SIGKILLed under a stream of events, the sentinels
/// promote the replica, both servers reconnect to the new primary — and every event B published
/// meanwhile reaches A's client once, in order (held while there was no primary, caught up from
/// the recovery log). The presence member written before the failover is still there (the
/// replica had it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_loses_no_event_and_keeps_presence() {
    let mut group = support::sentinel::SentinelGroup::start();
    let url = group.url();
    let (a, prod_a) = serve_on_redis(config(), &url, "failover").await;
    let (b, prod_b) = serve_on_redis(config(), &url, "failover").await;
    let mut on_a = Client::connect(a.addr).await;
    on_a.subscribe("feed", None, None).await;
    let mut member = Client::connect(b.addr).await;
    member.subscribe_signed("presence-room", Some(USER_A)).await;
    let b_api = prod_b.broadcaster().unwrap();
    b_api.publish(["feed"], "e", &json!(0)).await.unwrap();
    assert_eq!(on_a.frame().await["data"], "0");
    let old = group.primary_port();
    assert_eq!(
        support::redis::raw_command(old, "WAIT 1 2000").unwrap(),
        ":1"
    );

    // Events every 50 ms from before the kill until after the switch.
    let publishing = {
        let b_api = b_api.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                b_api.publish(["feed"], "e", &json!(n)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            n
        });
        (task, done)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    group.node(old).stop();
    tokio::task::block_in_place(|| group.wait_for_failover_from(old));
    tokio::time::sleep(Duration::from_millis(500)).await;
    publishing
        .1
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publishing.0.await.unwrap();
    receives_once_in_order(&mut on_a, published).await;
    assert_eq!(bus_events(&prod_b, "lost"), 0);
    assert_eq!(bus_events(&prod_a, "missed"), 0);
    let members = b_api.presence("presence-room").await.unwrap().ids;
    assert_eq!(members, ["ann"]);
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
    // Ann's member_added, published by A as she joined, may reach B after Bob's snapshot
    // already had her (pusher-js applies member events idempotently); then her removal.
    let mut removed = bob.frame().await;
    if removed["event"] == "pusher_internal:member_added" {
        assert_eq!(data(&removed)["user_id"], "ann", "{removed}");
        removed = bob.frame().await;
    }
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(data(&removed)["user_id"], "ann");
    drop(ann);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pub_sub_connection_that_goes_silent_is_replaced_within_ten_seconds() {
    let redis = RedisServer::start();
    // A reaches Redis through a proxy that can go silent; B directly.
    let proxy = support::proxy::StallingProxy::start(redis.port()).await;
    let through_proxy = format!("redis://127.0.0.1:{}", proxy.port());
    let (a, prod_a) = serve_on_redis(config(), &through_proxy, "silent").await;
    let (_b, prod_b) = serve_on_redis(config(), &redis.url(), "silent").await;
    let mut on_a = Client::connect(a.addr).await;
    on_a.subscribe("feed", None, None).await;
    let b_api = prod_b.broadcaster().unwrap();
    b_api
        .publish(["feed"], "e", &json!("before"))
        .await
        .unwrap();
    assert_eq!(on_a.frame().await["data"], r#""before""#);
    let reconnects = "rustforge_broadcast_redis_reconnects_total";
    assert_eq!(gauge(&prod_a, reconnects), 0);

    proxy.stall();
    let stalled = std::time::Instant::now();
    // Nothing closes: only A's PINGs can tell. Publish until A, on a new connection, receives.
    let mut received = None;
    while stalled.elapsed() < Duration::from_secs(15) {
        b_api.publish(["feed"], "e", &json!("after")).await.unwrap();
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), on_a.frame()).await {
            received = Some(frame);
            break;
        }
    }
    let frame = received.expect("A receives B's events again on a new connection");
    assert_eq!(frame["data"], r#""after""#);
    let waited = stalled.elapsed();
    assert!(
        waited <= Duration::from_secs(10),
        "the silent connection was replaced after {waited:?} (documented bound: 6 s)"
    );
    assert!(gauge(&prod_a, reconnects) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_frozen_past_the_node_timeout_is_reaped_and_announces_itself_again() {
    use rustix::process::{Pid, Signal, kill_process};

    let redis = RedisServer::start();
    let url = redis.url();
    // Server A is the full_stack example (a process that can be frozen with SIGSTOP).
    let a = full_stack_on(&url, "frozen", ("RUSTFORGE_BROADCAST_NODE_TIMEOUT", "2s"));
    let (b, prod_b) = serve_on_redis(fast_reaping(), &url, "frozen").await;
    let addr_a = format!("127.0.0.1:{}", a.port).parse().unwrap();
    let mut ann = Client::connect(addr_a).await;
    ann.subscribe_signed("presence-room", Some(USER_A)).await;
    let mut bob = Client::connect(b.addr).await;
    let f = bob.subscribe_signed("presence-room", Some(USER_B)).await;
    assert_eq!(data(&f)["presence"]["count"], 2, "{f}");
    assert_eq!(data(&ann.frame().await)["user_id"], "bob");

    let pid = Pid::from_raw(a.child.id() as i32).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    // B takes the silent A for dead and removes Ann...
    let removed = bob.frame().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(data(&removed)["user_id"], "ann");
    kill_process(pid, Signal::CONT).unwrap();
    // ... and A, awake, finds its heartbeat record gone and announces Ann again.
    let added = bob.frame().await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");
    assert_eq!(data(&added)["user_id"], "ann");
    let presence = prod_b
        .broadcaster()
        .unwrap()
        .presence("presence-room")
        .await
        .unwrap();
    assert_eq!(presence.ids, ["ann", "bob"]);
    // Ann's own connection never noticed.
    ann.assert_alive().await;
}

/// A rolling deploy with real pusher-js presence clients behind a round-robin balancer: server A
/// (a process) gets SIGTERM; its clients come back through the balancer to B. Nothing of A
/// survives it: the members everyone sees converge to the users connected, and each user got
/// member events in pairs at most (removed on A, added on B), never a lone removal or a ghost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deploy_with_pusher_js_leaves_no_ghost() {
    use std::io::{BufRead, Write};

    const HINT: &str = "needs Node.js ≥ 20 and `npm ci` in tests/js (scripts/test.sh does both)";
    const USERS: usize = 10;
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(js.join("node_modules/pusher-js").is_dir(), "{HINT}");
    let redis = RedisServer::start();
    let url = redis.url();
    let a = full_stack_on(&url, "deploy", ("RUSTFORGE_SHUTDOWN_DRAIN", "2s"));
    let (b, _prod_b) = serve_on_redis(config(), &url, "deploy").await;
    let balancer = support::proxy::RoundRobin::start(vec![a.port, b.addr.port()]).await;

    let mut node = std::process::Command::new("node")
        .arg("rolling-deploy.js")
        .current_dir(&js)
        .env("PROXY_PORT", balancer.port().to_string())
        .env("B_PORT", b.addr.port().to_string())
        .env("USERS", USERS.to_string())
        .env("PUSHER_APP_ID", support::pusher::APP_ID)
        .env("PUSHER_APP_KEY", support::pusher::KEY)
        .env("PUSHER_APP_SECRET", support::pusher::SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): {HINT}"));
    let mut stdin = node.stdin.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from rolling-deploy.js")
    };
    assert_eq!(next_line(), "READY");
    // Half the clients are on A (round robin): SIGTERM it and let it finish its shutdown.
    let b_api = tokio::task::spawn_blocking(move || {
        a.terminate();
    });
    b_api.await.unwrap();
    writeln!(stdin, "TERMINATED").unwrap();
    let summary: serde_json::Value = serde_json::from_str(&next_line()).unwrap();
    let _ = node.wait();
    let mut everyone: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    everyone.push("observer".into());
    everyone.sort();
    assert_eq!(summary["members"], json!(everyone), "{summary}");
    assert_eq!(summary["api"], json!(everyone), "{summary}");
    assert!(
        summary["moved"].as_u64().unwrap() >= 1,
        "some clients were on A: {summary}"
    );
    assert_eq!(
        summary["resubscribed"], summary["moved"],
        "every client that moved subscribed again: {summary}"
    );
    // No ghost: one subscription per client and the observer, whatever the user ids (each user
    // came back under the same id, so member lists alone cannot show a stale subscription).
    let connected = USERS as u64 + 1;
    assert_eq!(
        summary["info"],
        json!({"occupied": true, "user_count": connected, "subscription_count": connected}),
        "{summary}"
    );
    // And nothing of A in Redis: B is the only node.
    let nodes = support::redis::raw_command(redis.port(), "ZCARD {deploy:bc}:nodes").unwrap();
    assert_eq!(
        nodes, ":1",
        "the stopped server's node entry is left in Redis"
    );
    for (user, counts) in summary["events"].as_object().unwrap() {
        let (added, removed) = (counts["added"].as_u64(), counts["removed"].as_u64());
        assert_eq!(added, removed, "{user}: {counts} ({summary})");
        assert!(added <= Some(1), "{user}: {counts} ({summary})");
    }
}

/// The full_stack example as a broadcasting server on `url` under the key prefix `prefix`, with
/// the test app's credentials and one more variable.
/// `serve` returns only once the broadcaster's own shutdown is done: when the process has
/// exited after SIGTERM, its presence member and its node entry are already gone from Redis
/// (before, the process could exit while the removal was still on its way). Also a real process
/// accepting `RUSTFORGE_SHUTDOWN_DRAIN=0s`, its documented default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_has_removed_its_presence_from_redis_when_it_exits() {
    let redis = RedisServer::start();
    let a = full_stack_on(&redis.url(), "exit", ("RUSTFORGE_SHUTDOWN_DRAIN", "0s"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    let mut client = Client::connect(addr).await;
    let f = client.subscribe_signed("presence-room", Some(USER_A)).await;
    assert_eq!(data(&f)["presence"]["count"], 1, "{f}");
    let port = redis.port();
    let zcard = move || support::redis::raw_command(port, "ZCARD {exit:bc}:nodes").unwrap();
    let members_key = format!(
        "{{exit:bc:{}:presence-room}}:members",
        support::pusher::APP_ID
    );
    let members =
        move || support::redis::raw_command(port, &format!("EXISTS {members_key}")).unwrap();
    assert_eq!((zcard(), members()), (":1".to_owned(), ":1".to_owned()));
    tokio::task::spawn_blocking(move || a.terminate())
        .await
        .unwrap();
    assert_eq!(
        (zcard(), members()),
        (":0".to_owned(), ":0".to_owned()),
        "the stopped server's node and member are left in Redis"
    );
}

fn full_stack_on(url: &str, prefix: &str, extra: (&str, &str)) -> support::process::Running {
    support::process::Running::start(
        "full_stack",
        &[
            ("REDIS_URL", url),
            ("RUSTFORGE_REDIS_PREFIX", prefix),
            ("PUSHER_APP_ID", support::pusher::APP_ID),
            ("PUSHER_APP_KEY", support::pusher::KEY),
            ("PUSHER_APP_SECRET", support::pusher::SECRET),
            extra,
        ],
    )
}
