//! `BENCH_RECOVERY=1`: what connection recovery costs, one server (the memory bus), in one run;
//! `BENCH_RECOVERY=redis`: the same across two servers sharing a private `redis-server` (events
//! published on one, the subscribers and the resuming client on the other; recovery on: every
//! event goes through the history script, kept in Redis and published with its position), plus
//! the Redis memory a kept event takes.
//!
//! 1. The same load on a server with recovery on (clients ask for positions: every event is
//!    positioned and kept) and on one with it off: `BENCH_CONNS` (100) subscribers of one private
//!    channel, `BENCH_EVENTS` (20,000) events published through `Broadcaster::publish` as fast as
//!    they are delivered (at most 128 outstanding): events/s until the last delivery; then
//!    `BENCH_PACED_EVENTS` (3,000) at `BENCH_RATE` (1,000) events a second, each carrying its send
//!    time: p99 delivery latency (at full speed the latency is the queue's length, not the
//!    delivery's). Medians of `BENCH_ROUNDS` (3) interleaved rounds, and on/off ratios.
//! 2. Replay: 100 events kept on a channel; a client subscribes with the position before the
//!    first, `BENCH_RESUMES` (300) times: time from its `pusher:subscribe` to the 100th replayed
//!    event, p50 and p99.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use rustforge_prod::broadcast::signature::channel_auth;
use rustforge_prod::broadcast::{AppConfig, BroadcastConfig, Broadcaster, Recoverable};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{KEY, SECRET, env, now_us, percentile};
use rustforge_prod::redis::{RedisConfig, RedisHandle};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A broadcaster with recovery `on` or off, served on a free port; on Redis at `redis` (key
/// prefix `prefix`) when given.
async fn server(on: bool, redis: Option<(&str, &str)>) -> (Broadcaster, u16) {
    let mut config = BroadcastConfig::default().app(AppConfig::new("1", KEY, SECRET));
    config.recovery = if on {
        Recoverable::Private
    } else {
        Recoverable::Off
    };
    let broadcaster = match redis {
        Some((url, prefix)) => {
            let handle = RedisHandle::connect(&RedisConfig::new(url).prefix(prefix)).unwrap();
            Broadcaster::with_redis(config, None, handle).unwrap()
        }
        None => Broadcaster::new(config, None).unwrap(),
    };
    let app: axum::Router = broadcaster.routes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // TCP_NODELAY on both ends, as the crate's own `serve` sets it (see `BENCH_NAGLE`).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (broadcaster, port)
}

/// A connection to the server on `port` (Nagle off) and its socket id.
async fn connected(port: u16) -> (Socket, String) {
    let url = format!("ws://127.0.0.1:{port}/app/{KEY}?protocol=7");
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap();
    let established = next_frame(&mut socket).await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap().to_owned();
    (socket, socket_id)
}

async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.expect("open").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A connection subscribed to `channel` (asking for positions with `position`); returns it and
/// its `subscription_succeeded`.
async fn subscriber(port: u16, channel: &str, position: Option<&str>) -> (Socket, Value) {
    let (mut socket, socket_id) = connected(port).await;
    let auth = channel_auth(KEY, SECRET, &socket_id, channel, None);
    let mut subscribe = json!({ "channel": channel, "auth": auth });
    if let Some(position) = position {
        subscribe["position"] = json!(position);
    }
    subscribe_at(&mut socket, subscribe).await;
    let succeeded = next_frame(&mut socket).await;
    assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
    (socket, succeeded)
}

async fn subscribe_at(socket: &mut Socket, data: Value) -> Instant {
    let frame = json!({ "event": "pusher:subscribe", "data": data }).to_string();
    let at = Instant::now();
    socket.send(Message::Text(frame.into())).await.unwrap();
    at
}

/// One round: events/s until the last delivery, and p99 delivery latency in µs, events published
/// through `broadcaster` to subscribers on `port`. Without a `rate`, as fast as the slowest
/// subscriber reads; with one, at that many events a second.
async fn round(
    broadcaster: &Broadcaster,
    port: u16,
    on: bool,
    conns: usize,
    events: usize,
    rate: Option<u64>,
) -> (f64, u64) {
    let channel = "private-bench";
    // Events each subscriber has read: the publisher keeps the slowest within 128 (its send
    // queue holds 256).
    let counts: Vec<Arc<AtomicU64>> = (0..conns).map(|_| Arc::default()).collect();
    let mut readers = Vec::new();
    for count in &counts {
        let (mut socket, _) = subscriber(port, channel, on.then_some("")).await;
        let count = count.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(events);
            while latencies.len() < events {
                let frame = next_frame(&mut socket).await;
                if frame["event"] != "tick" {
                    continue;
                }
                assert_eq!(frame["position"].is_string(), on, "{frame}");
                let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
                latencies.push(now_us().saturating_sub(data["sent"].as_u64().unwrap()));
                count.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let slowest = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    let start = Instant::now();
    for seq in 0..events as u64 {
        match rate {
            Some(rate) => {
                let due = start + std::time::Duration::from_secs_f64(seq as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            None => {
                while seq > slowest() + 128 {
                    tokio::task::yield_now().await;
                }
            }
        }
        let data = json!({ "sent": now_us(), "seq": seq });
        broadcaster.publish([channel], "tick", &data).await.unwrap();
    }
    let mut latencies = Vec::with_capacity(conns * events);
    for reader in readers {
        latencies.extend(reader.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    (
        events as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.99),
    )
}

/// Time from a resuming `pusher:subscribe` on `port` to its 100th replayed event, `resumes` times
/// (µs), the events published through `broadcaster`.
async fn replays(broadcaster: &Broadcaster, port: u16, resumes: usize) -> Vec<u64> {
    let channel = "private-replay";
    let (_first, succeeded) = subscriber(port, channel, Some("")).await;
    let start = succeeded["position"].as_str().unwrap().to_owned();
    for n in 0..100 {
        broadcaster
            .publish([channel], "kept", &json!({ "n": n }))
            .await
            .unwrap();
    }
    // On Redis the last publish lands a moment after it returned.
    while broadcaster
        .history(channel, 1, None)
        .await
        .map_or(true, |page| {
            page.events.first().is_none_or(|e| e.data != r#"{"n":99}"#)
        })
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut times = Vec::with_capacity(resumes);
    for _ in 0..resumes {
        let (mut socket, socket_id) = connected(port).await;
        let auth = channel_auth(KEY, SECRET, &socket_id, channel, None);
        let sent = subscribe_at(
            &mut socket,
            json!({ "channel": channel, "auth": auth, "position": start }),
        )
        .await;
        let mut replayed = 0;
        while replayed < 100 {
            if next_frame(&mut socket).await["event"] == "kept" {
                replayed += 1;
            }
        }
        times.push(sent.elapsed().as_micros() as u64);
    }
    times.sort_unstable();
    times
}

pub(crate) fn run() {
    let conns = env("BENCH_CONNS", 100) as usize;
    let events = env("BENCH_EVENTS", 20_000) as usize;
    let rounds = env("BENCH_ROUNDS", 3) as usize;
    let resumes = env("BENCH_RESUMES", 300) as usize;
    let paced_rate = env("BENCH_RATE", 1_000);
    let paced_events = env("BENCH_PACED_EVENTS", 3_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = std::env::var("BENCH_RECOVERY").is_ok_and(|v| v == "redis");
    let redis = redis.then(super::Redis::start);
    let url = redis.as_ref().map(super::Redis::url);
    runtime.block_on(async {
        // (publisher, subscribers' port): the same server, or two sharing Redis.
        let pair = |on: bool| {
            let url = url.clone();
            async move {
                let prefix = if on { "on" } else { "off" };
                let first = server(on, url.as_deref().map(|u| (u, prefix))).await;
                match &url {
                    Some(url) => {
                        let second = server(on, Some((url, prefix))).await;
                        (first.0, second.1)
                    }
                    None => first,
                }
            }
        };
        let on = pair(true).await;
        let off = pair(false).await;
        let where_ = if url.is_some() {
            "published on one server, delivered by another sharing Redis"
        } else {
            "one server"
        };
        let (mut rate, mut p99) = ([vec![], vec![]], [vec![], vec![]]);
        for _ in 0..rounds {
            for (i, (broadcaster, port)) in [&on, &off].into_iter().enumerate() {
                let (r, _) = round(broadcaster, *port, i == 0, conns, events, None).await;
                rate[i].push(r);
                let paced = Some(paced_rate);
                let (_, p) = round(broadcaster, *port, i == 0, conns, paced_events, paced).await;
                p99[i].push(p as f64);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (rate_on, rate_off) = (median(&mut rate[0]), median(&mut rate[1]));
        let (p99_on, p99_off) = (median(&mut p99[0]), median(&mut p99[1]));
        println!(
            "\n### Connection recovery ({where_}): {conns} subscribers of one private channel, {rounds} rounds (medians)\n"
        );
        println!(
            "| recovery | events/s, as fast as delivered ({events} events) | p99 delivery µs at {paced_rate} events/s ({paced_events} events) |"
        );
        println!("|---|---:|---:|");
        println!("| on (positions, history kept) | {rate_on:.0} | {p99_on:.0} |");
        println!("| off | {rate_off:.0} | {p99_off:.0} |");
        println!(
            "| **on / off** | **{:.2}** | **{:.2}** (off / on) |",
            rate_on / rate_off,
            p99_off / p99_on
        );
        let times = replays(&on.0, on.1, resumes).await;
        println!("\n### Replay of 100 events to one resuming client ({resumes} resumes)\n");
        println!("| p50 µs | p99 µs | max µs |");
        println!("|---:|---:|---:|");
        println!(
            "| {} | {} | {} |",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.last().copied().unwrap_or_default()
        );
        if let Some(redis) = &redis {
            println!("\n### Redis memory per kept event\n");
            let (kept, bytes) = redis_memory(&on.0, &redis.url()).await;
            println!("{kept} events of 200 bytes of data kept on 1,000 channels: {bytes} bytes of Redis memory, {} per event", bytes / kept as u64);
        }
    });
}

/// Fills 1,000 channels with 100 events of 200 bytes of data each; the growth of Redis's
/// `used_memory`, and the events kept.
async fn redis_memory(broadcaster: &Broadcaster, url: &str) -> (usize, u64) {
    let redis = RedisHandle::connect(&RedisConfig::new(url)).unwrap();
    let used = || async {
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        let info: String = redis.query(&info).await.unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("INFO memory")
    };
    let before = used().await;
    let data = json!({ "text": "x".repeat(188) });
    for channel in 0..1_000 {
        let name = format!("private-memory-{channel}");
        for _ in 0..100 {
            broadcaster.publish([&name], "kept", &data).await.unwrap();
        }
        // Kept before the next channel: the queue to Redis holds 10,000 events, more are lost.
        while broadcaster
            .history(&name, 100, None)
            .await
            .map_or(true, |page| page.events.len() < 100)
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    (100_000, used().await.saturating_sub(before))
}
