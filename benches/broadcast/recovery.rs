//! `BENCH_RECOVERY=1`: what connection recovery costs, one server (the memory bus), in one run.
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A broadcaster with recovery `on` or off, served on a free port.
async fn server(on: bool) -> (Broadcaster, u16) {
    let mut config = BroadcastConfig::default().app(AppConfig::new("1", KEY, SECRET));
    config.recovery = if on {
        Recoverable::Private
    } else {
        Recoverable::Off
    };
    let broadcaster = Broadcaster::new(config, None).unwrap();
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

/// One round: events/s until the last delivery, and p99 delivery latency in µs. Without a
/// `rate`, as fast as the slowest subscriber reads; with one, at that many events a second.
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

/// Time from a resuming `pusher:subscribe` to its 100th replayed event, `resumes` times (µs).
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
    runtime.block_on(async {
        let on = server(true).await;
        let off = server(false).await;
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
            "\n### Connection recovery: {conns} subscribers of one private channel, {rounds} rounds (medians)\n"
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
    });
}
