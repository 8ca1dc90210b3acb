//! Connection recovery across a fleet: two servers sharing a real Redis (and a 3-node Redis
//! Cluster) keep one history per channel, so a client resumes on whichever server it comes back
//! to; the same positions on every server; `resume_failed` when the window was exceeded or Redis
//! restarted empty; the history endpoint on any server. pusher-js with `js/pusher-recovery`:
//! tests/js/recovery-fleet.test.js.

mod support;

use rustforge_prod::redis::{RedisConfig, RedisHandle};
use serde_json::{Value, json};
use support::pusher::{
    APP_ID, Client, api, config, data, frames, publish_n as publish, serve_on_redis,
    subscribe_recovering,
};
use support::redis::{RedisCluster, RedisServer};

/// The position of a reply or event frame.
fn position(frame: &Value) -> String {
    frame["position"]
        .as_str()
        .unwrap_or_else(|| panic!("no position: {frame}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_the_other_server_with_the_same_positions() {
    let redis = RedisServer::start();
    let (a, _prod_a) = serve_on_redis(config(), &redis.url(), "resume").await;
    let (b, _prod_b) = serve_on_redis(config(), &redis.url(), "resume").await;
    let (on_a, on_b) = (a.url(""), b.url(""));

    let mut ann = Client::connect(a.addr).await;
    let start = position(&subscribe_recovering(&mut ann, "private-orders", "", json!({})).await);
    let epoch = start.split(':').next().unwrap().to_owned();
    assert_eq!(start, format!("{epoch}:0"), "a new stream");
    // Without the extension, on either server: today's frames.
    let mut plain = Client::connect(a.addr).await;
    plain.subscribe_signed("private-orders", None).await;
    let mut watcher = Client::connect(b.addr).await;
    subscribe_recovering(&mut watcher, "private-orders", "", json!({})).await;

    // Published on B, then on A (ann's own server, whose positions come from Redis too).
    for n in 1..=3 {
        publish(&on_b, "private-orders", n, None).await;
    }
    for n in 4..=5 {
        publish(&on_a, "private-orders", n, None).await;
    }
    let expected: Vec<String> = (1..=5).map(|n| format!("{epoch}:{n}")).collect();
    for client in [&mut ann, &mut watcher] {
        let got = frames(client, 5).await;
        let numbers: Vec<&str> = got.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(numbers, ["1", "2", "3", "4", "5"]);
        let positions: Vec<String> = got.into_iter().map(|f| f.2.unwrap()).collect();
        assert_eq!(positions, expected, "one stream, the same on every server");
    }
    for n in 1..=5 {
        let frame = plain.frame().await;
        assert_eq!(
            frame,
            json!({ "event": "n", "channel": "private-orders", "data": n.to_string() })
        );
    }

    // Away: 6 and 8 on B, 7 on A but not for ann's old connection, 9 on A.
    let old_socket = ann.socket_id.clone();
    drop(ann);
    publish(&on_b, "private-orders", 6, None).await;
    publish(&on_a, "private-orders", 7, Some(&old_socket)).await;
    publish(&on_b, "private-orders", 8, None).await;
    publish(&on_a, "private-orders", 9, None).await;
    // Back on B.
    let mut back = Client::connect(b.addr).await;
    let had = format!("{epoch}:5");
    let extra = json!({ "previous_socket_id": old_socket });
    let succeeded = subscribe_recovering(&mut back, "private-orders", &had, extra).await;
    assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(position(&succeeded), had, "resumed where it was");
    publish(&on_a, "private-orders", 10, None).await;
    let got = frames(&mut back, 4).await;
    let numbers: Vec<&str> = got.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(numbers, ["6", "8", "9", "10"], "{got:?}");
    assert_eq!(got[3].2.as_deref(), Some(format!("{epoch}:10").as_str()));
    back.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_that_cannot_be_proven_say_why_then_live_events_follow() {
    let mut redis = RedisServer::start();
    let mut small = config();
    small.history_events = 3;
    let (a, _prod_a) = serve_on_redis(small.clone(), &redis.url(), "fail").await;
    let (b, prod_b) = serve_on_redis(small, &redis.url(), "fail").await;
    let on_a = a.url("");

    let mut ann = Client::connect(a.addr).await;
    let start = position(&subscribe_recovering(&mut ann, "private-feed", "", json!({})).await);
    drop(ann);
    for n in 1..=5 {
        publish(&on_a, "private-feed", n, None).await;
    }
    let epoch = start.split(':').next().unwrap().to_owned();
    let failed = |reason: &str| json!({ "reason": reason });
    // More missed than kept (3 a channel), on the other server.
    let mut client = Client::connect(b.addr).await;
    let succeeded = subscribe_recovering(&mut client, "private-feed", &start, json!({})).await;
    assert_eq!(
        position(&succeeded),
        format!("{epoch}:5"),
        "where it is now"
    );
    let reply = client.frame().await;
    assert_eq!(reply["event"], "pusher:resume_failed");
    assert_eq!(data(&reply), failed("too_old"));
    publish(&on_a, "private-feed", 6, None).await;
    assert_eq!(client.frame().await["data"], "6", "live events follow");
    drop(client);

    // Redis restarted empty: the stream is another one.
    redis.restart();
    let b_api = prod_b.broadcaster().unwrap();
    support::eventually("B to reach Redis again", || async {
        b_api.channel_info("private-feed").await.is_ok()
    })
    .await;
    let mut client = Client::connect(b.addr).await;
    let had = format!("{epoch}:6");
    let succeeded = subscribe_recovering(&mut client, "private-feed", &had, json!({})).await;
    let now = position(&succeeded);
    assert!(!now.starts_with(&epoch), "a new epoch: {now}");
    let reply = client.frame().await;
    assert_eq!(data(&reply), failed("reset"), "{reply}");
    publish(&on_a, "private-feed", 7, None).await;
    let live = client.frame().await;
    assert_eq!(live["data"], "7", "live events follow");
    assert_eq!(
        position(&live),
        format!("{}:1", now.split(':').next().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_age_bound_are_expired() {
    let redis = RedisServer::start();
    let mut short = config();
    short.history_age = std::time::Duration::from_millis(300);
    let (a, prod) = serve_on_redis(short, &redis.url(), "age").await;
    let mut ann = Client::connect(a.addr).await;
    let start = position(&subscribe_recovering(&mut ann, "private-feed", "", json!({})).await);
    drop(ann);
    publish(&a.url(""), "private-feed", 1, None).await;
    // Kept (the publish reaches Redis a moment after the API answered), then past the age.
    let broadcaster = prod.broadcaster().unwrap();
    let kept = |n: usize| async move {
        let page = broadcaster.history("private-feed", 10, None).await.unwrap();
        page.events.len() == n
    };
    support::eventually("the event to be kept", || kept(1)).await;
    support::eventually("the event to expire", || kept(0)).await;
    let mut client = Client::connect(a.addr).await;
    subscribe_recovering(&mut client, "private-feed", &start, json!({})).await;
    let reply = client.frame().await;
    assert_eq!(data(&reply), json!({ "reason": "expired" }), "{reply}");
}

/// The origins (server processes) recorded in the stream of `channel` (prefix `origins`), each
/// with its value: "<last sequence kept> <ms>".
async fn origins(redis: &RedisHandle, channel: &str) -> std::collections::BTreeMap<String, String> {
    let key = format!("{{origins:bc:{APP_ID}:c:{channel}}}:stream");
    let flat: Vec<String> = redis.query(redis::cmd("HGETALL").arg(key)).await.unwrap();
    flat.chunks(2)
        .filter(|pair| pair[0].starts_with("o:"))
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// Each server process that publishes on a recoverable channel leaves its last sequence number
/// in the channel's stream (so a batch it sends again is dropped); a process that starts
/// publishing forgets those that wrote nothing for a stream's idle time (an hour), so a busy
/// channel's stream does not grow with every deploy. An older version's entry (no time) is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_forgets_the_origins_of_servers_long_gone() {
    let redis = RedisServer::start();
    let handle = RedisHandle::connect(&RedisConfig::new(redis.url())).unwrap();
    let (a, prod_a) = serve_on_redis(config(), &redis.url(), "origins").await;
    let (b, prod_b) = serve_on_redis(config(), &redis.url(), "origins").await;
    let kept = |prod: &rustforge_prod::ProductionLayer, n: &'static str| {
        let broadcaster = prod.broadcaster().unwrap().clone();
        move || {
            let broadcaster = broadcaster.clone();
            async move {
                let page = broadcaster.history("private-feed", 1, None).await.unwrap();
                page.events.first().is_some_and(|e| e.data == n)
            }
        }
    };
    publish(&a.url(""), "private-feed", 1, None).await;
    support::eventually("event 1 to be kept", kept(&prod_a, "1")).await;
    let first = origins(&handle, "private-feed").await;
    assert_eq!(first.len(), 1, "{first:?}");
    let (origin_a, value) = first.iter().next().unwrap();
    let (seq, at) = value.split_once(' ').expect("sequence and time");
    let at: u64 = at.parse().unwrap();
    assert!(seq.parse::<u64>().is_ok(), "{value}");

    // Servers gone: one two hours before A's write, one a minute before; one of an older
    // version (no time).
    let key = format!("{{origins:bc:{APP_ID}:c:private-feed}}:stream");
    let hour = 3_600_000;
    let seeded: [(&str, String); 3] = [
        ("o:gone.1", format!("5 {}", at - 2 * hour)),
        ("o:recent.1", format!("5 {}", at - 60_000)),
        ("o:legacy.1", "5".to_owned()),
    ];
    for (field, value) in &seeded {
        let _: i64 = handle
            .query(redis::cmd("HSET").arg(&key).arg(*field).arg(value))
            .await
            .unwrap();
    }
    // B's first publish on the channel.
    publish(&b.url(""), "private-feed", 2, None).await;
    support::eventually("event 2 to be kept", kept(&prod_b, "2")).await;
    let after = origins(&handle, "private-feed").await;
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(after.len(), 4, "A, B, recent and legacy: {after:?}");
    assert!(!after.contains_key("o:gone.1"), "{names:?}");
    for kept_origin in [origin_a.as_str(), "o:recent.1", "o:legacy.1"] {
        assert!(
            after.contains_key(kept_origin),
            "{kept_origin} in {names:?}"
        );
    }
    assert_eq!(
        after["o:legacy.1"], "5",
        "left as an older version wrote it"
    );
    // A still publishes (its entry was kept, its sequence goes on).
    publish(&a.url(""), "private-feed", 3, None).await;
    support::eventually("event 3 to be kept", kept(&prod_a, "3")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_server_reads_the_fleets_history() {
    let redis = RedisServer::start();
    let (a, _prod_a) = serve_on_redis(config(), &redis.url(), "log").await;
    let (b, prod_b) = serve_on_redis(config(), &redis.url(), "log").await;
    for n in 1..=5 {
        publish(&a.url(""), "private-log", n, None).await;
    }
    // The last publish reaches Redis a moment after the API answered.
    let b_api = prod_b.broadcaster().unwrap();
    support::eventually("the last event to be kept", || async {
        let page = b_api.history("private-log", 1, None).await.unwrap();
        page.events.first().is_some_and(|e| e.data == "5")
    })
    .await;
    let path = format!("/apps/{APP_ID}/channels/private-log/events");
    let (status, first) = api(&b.url(""), "GET", &path, "", &[("limit", "2")]).await;
    assert_eq!(status, 200, "{first}");
    let data: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["5", "4"]);
    let next = first["next"].as_str().unwrap().parse().unwrap();
    let older = b_api.history("private-log", 100, Some(next)).await.unwrap();
    let data: Vec<&str> = older.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!((data, older.next), (vec!["3", "2", "1"], None));
}

/// pusher-js with the plugin: reset and refused on A while 80 events are published on B, back
/// on B (tests/js/recovery-fleet.test.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_recovers_on_the_other_server() {
    let redis = RedisServer::start();
    pusher_js_across(&redis.url()).await;
}

/// The same on a 3-node Redis Cluster (sharded pub/sub, the history in the topic's slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_recovers_on_the_other_server_of_a_cluster() {
    let cluster = RedisCluster::start();
    pusher_js_across(&cluster.url()).await;
}

async fn pusher_js_across(url: &str) {
    let (a, _prod_a) = serve_on_redis(config(), url, "js").await;
    let (b, _prod_b) = serve_on_redis(config(), url, "js").await;
    let env = [
        ("SERVER_A", a.addr.port().to_string()),
        ("SERVER_B", b.addr.port().to_string()),
    ];
    support::node::run_tests("recovery-fleet.test.js", 1, 150_000, &env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_channel_resumed_on_the_other_server_replays_no_member_events() {
    let redis = RedisServer::start();
    let (a, _prod_a) = serve_on_redis(config(), &redis.url(), "room").await;
    let (b, prod_b) = serve_on_redis(config(), &redis.url(), "room").await;
    let ann_data = json!({ "channel_data": r#"{"user_id":"ann","user_info":{"name":"Ann"}}"# });
    let mut ann = Client::connect(a.addr).await;
    let start =
        position(&subscribe_recovering(&mut ann, "presence-room", "", ann_data.clone()).await);
    let mut bob = Client::connect(b.addr).await;
    bob.subscribe_signed(
        "presence-room",
        Some(r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#),
    )
    .await;
    assert_eq!(ann.frame().await["event"], "pusher_internal:member_added");
    publish(&b.url(""), "presence-room", 1, None).await;
    assert_eq!(ann.frame().await["data"], "1");
    drop(ann);
    drop(bob); // member_removed while ann is away: not replayed, the snapshot says it
    let b_api = prod_b.broadcaster().unwrap();
    support::eventually("both to have left", || async {
        b_api
            .presence("presence-room")
            .await
            .unwrap()
            .ids
            .is_empty()
    })
    .await;
    publish(&a.url(""), "presence-room", 2, None).await;
    let mut back = Client::connect(b.addr).await;
    let succeeded = subscribe_recovering(&mut back, "presence-room", &start, ann_data).await;
    assert_eq!(
        data(&succeeded)["presence"]["ids"],
        json!(["ann"]),
        "the members of now"
    );
    let got = frames(&mut back, 2).await;
    let events: Vec<(&str, &str)> = got.iter().map(|f| (f.0.as_str(), f.1.as_str())).collect();
    assert_eq!(events, [("n", "1"), ("n", "2")], "app events only");
    back.assert_alive().await;
}
